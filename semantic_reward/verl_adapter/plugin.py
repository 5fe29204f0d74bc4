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



def _register_hf_rollout() -> None:
    """``rollout.name=hf`` (semantic_reward.verl_adapter.hf_rollout), imported only when used."""
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    def load_replica():
        from .hf_rollout import HFReplica

        return HFReplica

    _ROLLOUT_REGISTRY[("hf", "async")] = "semantic_reward.verl_adapter.hf_rollout.HFServerAdapter"
    RolloutReplicaRegistry.register("hf", load_replica)


try:
    _register_hf_rollout()
except Exception as exc:  # pragma: no cover - depends on the installed verl
    logging.getLogger(__name__).warning("semantic_reward: hf rollout for verl not registered: %r", exc)
