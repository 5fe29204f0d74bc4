"""Target of the ``verl.plugins`` entry point.

verl imports every such entry point in every process when ``verl`` is imported,
so ``reward.reward_manager.name=semantic`` resolves in the driver and in each
reward worker without the recipe importing anything.
"""

from .manager import SemanticRewardManager  # noqa: F401  (registers "semantic")
