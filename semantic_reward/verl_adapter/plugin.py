"""Target of the ``verl.plugins`` entry point.

verl imports every such entry point in every process when ``verl`` is imported,
so ``reward.reward_manager.name=semantic`` resolves in the driver and in each
reward worker without the recipe importing anything. The CPU platform is
registered here too; it only acts when ``VERL_PLATFORM=cpu`` selects it.
"""

import logging

from .manager import SemanticRewardManager  # noqa: F401  (registers "semantic")

try:  # a failure here must not take the reward manager down with it
    from . import cpu_platform  # noqa: F401
except Exception as exc:  # pragma: no cover - depends on the installed verl
    logging.getLogger(__name__).warning("semantic_reward: CPU platform for verl not registered: %r", exc)
