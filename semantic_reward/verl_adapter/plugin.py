"""Target of the ``semantic_reward`` entry point in the ``verl.plugins`` group: the reward manager only.

verl imports every such entry point in every process when ``verl`` is imported,
so ``reward.reward_manager.name=semantic`` resolves in the driver and in each
reward worker without the recipe importing anything. The CPU platform and the hf
rollout have their own entry point (``semantic_reward.verl_cpu.plugin``).
"""

from .manager import SemanticRewardManager  # noqa: F401  (registers "semantic")
