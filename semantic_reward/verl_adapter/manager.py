"""``SemanticRewardManager``: verl's reward-loop manager for the semantic reward.

Registered under the name ``semantic`` (through the ``verl.plugins`` entry point,
see ``semantic_reward.verl.plugin``) and loadable with ``source=importlib``.
Settings come from ``reward.reward_kwargs`` in the recipe. Building the manager
validates them and loads the encoder (in this worker or in the shared Ray actor),
so a bad setting fails here, in seconds, with one line naming it. verl builds
managers inside its reward-loop worker actors, which start in the background: the
trainer sees that failure at its first reward call (wrapped by Ray), and the same
line is logged by the worker as soon as it happens. To fail before verl starts at
all, run ``validate_reward_kwargs`` (``semantic_reward.recipe_check`` does).
"""

from __future__ import annotations

import logging
from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from ..config import ConfigError, SemanticRewardConfig
from ..encoders import EncoderError
from ..scorer import SemanticScorer
from ..keys import DECOY_REFERENCE_KEY, DECOY_SOURCE_KEY, LANGUAGE_KEY, SOURCE_KEY

__all__ = ["SemanticRewardManager", "settings_from_verl_config"]

logger = logging.getLogger(__name__)

try:  # reward components in the trainer's step metrics (see metrics.py); never a reason to lose the manager
    from .metrics import MetricsHookError, install

    install()
except MetricsHookError as exc:
    logger.error("%s", exc)

# the batch-median length penalty, applied once a V1 step's outputs are all in (see batch_terms.py). It wraps
# PPOTrainer._compute_advantage, the metrics hook PPOTrainer._compute_metrics: the order of the two is free
# (import_patches applies them in registration order, the metrics hook first)
from .batch_terms import install as _install_batch_terms  # noqa: E402

_install_batch_terms()


def settings_from_verl_config(config: Any) -> SemanticRewardConfig:
    """Read and validate ``reward.reward_kwargs`` of a full verl config."""
    reward = config.get("reward") if hasattr(config, "get") else None
    kwargs = reward.get("reward_kwargs") if reward is not None and hasattr(reward, "get") else None
    return SemanticRewardConfig.from_mapping(kwargs or {})


def _check_batch_terms(settings: SemanticRewardConfig, config: Any) -> None:
    """The batch-median length penalty is applied by the V1 trainer hook only; refuse it elsewhere."""
    if settings.length_penalty.relative_to != "batch_median" or settings.length_penalty.weight == 0:
        return
    trainer = config.get("trainer") if hasattr(config, "get") else None
    if trainer is not None and hasattr(trainer, "get") and trainer.get("use_v1") is False:
        raise ConfigError(
            "reward.reward_kwargs.length_penalty.relative_to: batch_median is applied once a step's outputs are all "
            "in, which semantic_reward does in verl's V1 trainer only; set trainer.use_v1=true or relative_to=reference"
        )


@register("semantic")
class SemanticRewardManager(RewardManagerBase):
    """Scores one trajectory per call through the shared embedding service."""

    def __init__(
        self,
        config,
        tokenizer,
        compute_score=None,
        reward_router_address=None,
        reward_model_tokenizer=None,
        scorer: SemanticScorer | None = None,
    ):
        super().__init__(config, tokenizer, compute_score)
        try:
            self.settings = scorer.config if scorer is not None else settings_from_verl_config(config)
            self.scorer = scorer if scorer is not None else SemanticScorer(self.settings)
            _check_batch_terms(self.settings, config)
        except (ConfigError, EncoderError) as exc:
            logger.error("semantic reward manager cannot start: %s", exc)
            raise type(exc)(str(exc)) from None  # one line, not a chain of tracebacks
        reward_cfg = config.get("reward", {}) if hasattr(config, "get") else {}
        custom = (reward_cfg.get("custom_reward_function") or {}) if hasattr(reward_cfg, "get") else {}
        if custom.get("path"):
            logger.warning(
                "reward.custom_reward_function.path=%s is ignored: the 'semantic' reward manager computes "
                "the reward itself", custom.get("path")
            )

    async def run_single(self, data: DataProto) -> dict:
        item = data[-1]  # multi-sequence outputs: score the last sequence, as verl's managers do
        response_ids = item.batch["responses"]
        valid_length = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        valid_ids = response_ids[:valid_length]
        response = await self.loop.run_in_executor(
            None, lambda: self.tokenizer.decode(valid_ids, skip_special_tokens=True)
        )
        reward_model = item.non_tensor_batch.get("reward_model") or {}
        extra_info = item.non_tensor_batch.get("extra_info") or {}
        result = await self.scorer.score(
            response,
            reference=reward_model.get("ground_truth"),
            source=extra_info.get(SOURCE_KEY),
            language=extra_info.get(LANGUAGE_KEY),
            decoy_reference=extra_info.get(DECOY_REFERENCE_KEY),
            decoy_source=extra_info.get(DECOY_SOURCE_KEY),
        )
        return {"reward_score": result["score"], "reward_extra_info": result}
