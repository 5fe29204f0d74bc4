"""The follow-up's batch-median length penalty over ONE training step's outputs (verl 0.9.1, V1 trainer).

Where a step's outputs are all visible: verl 0.9.1 scores each trajectory in a reward-loop
worker the moment its rollout finishes (agent loop -> ``RewardLoopWorker.compute_score`` ->
our manager's ``run_single``), on whichever of ``reward.num_workers`` workers it picks at
random; no reward manager ever holds one step's outputs together
(``RewardLoopManager.compute_rm_score`` does, but only with a colocated reward *model*).
They are together in the trainer, in TransferQueue's ``train`` partition, between the
rollout and the advantage. So the per-trajectory score leaves this penalty at 0
(``SemanticScorer.score``), and this module wraps ``PPOTrainer._compute_advantage`` to
apply it there: it reads the step's ``rm_scores`` and reward components, re-scores them
against the median length of that step's non-padding outputs
(``reward_math.apply_batch_median_length_penalty``) and writes score and components
back before the advantage is computed. Validation batches live in the ``val`` partition
and never reach ``_compute_advantage``: they never mix into a training median (their
scores carry no length penalty). The step's median is logged as
``semantic_reward/batch_median_length``.

The legacy trainer (``trainer.use_v1=false``) has no such hook here: the manager refuses
``relative_to: batch_median`` with it instead of training without the penalty.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

from ..config import SemanticRewardConfig
from ..reward_math import REWARD_KEYS, apply_batch_median_length_penalty, batch_median_length
from ..import_patches import patch_on_import
from .metrics import _as_list

__all__ = ["V1_MODULE", "install", "patch_v1_trainer", "rescore_step", "step_settings"]

logger = logging.getLogger(__name__)

V1_MODULE = "verl.trainer.ppo.v1.trainer_base"
_FLAG = "_semantic_reward_batch_terms"
MEDIAN_METRIC = "semantic_reward/batch_median_length"


def step_settings(config: Any) -> SemanticRewardConfig | None:
    """The reward settings of a verl config when they need a batch-level term, else None."""
    reward = config.get("reward") if hasattr(config, "get") else None
    if reward is None:
        return None
    custom = reward.get("custom_reward_function") or {}
    kwargs = reward.get("reward_kwargs") if reward.get("reward_manager", {}).get("name") == "semantic" else None
    if kwargs is None and custom.get("path") and "semantic_reward" in str(custom.get("path")):
        kwargs = custom.get("reward_kwargs")
    if kwargs is None:
        return None
    settings = SemanticRewardConfig.from_mapping(
        {k: v for k, v in _plain(kwargs).items() if k not in ("reward_router_address", "reward_model_tokenizer")}
    )
    return settings if settings.length_penalty.relative_to == "batch_median" else None


def _plain(mapping: Any) -> dict:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(mapping, DictConfig):
            return OmegaConf.to_container(mapping, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf comes with verl
        pass
    return dict(mapping)


def _is_ours(info: Mapping[str, Any]) -> bool:
    return all(key in info for key in REWARD_KEYS)


def rescore_step(
    infos: list[Mapping[str, Any]], padding: list[bool], settings: SemanticRewardConfig
) -> tuple[list[dict[str, float]], float] | None:
    """New components for one step's samples (median over the non-padding ones), or None if not ours."""
    if not infos or not all(_is_ours(info) for info in infos):
        return None
    real = [info for info, pad in zip(infos, padding, strict=True) if not pad]
    median = batch_median_length(real)
    return apply_batch_median_length_penalty(infos, settings, median=median), median


def apply_to_step(batch: Any, settings: SemanticRewardConfig, tq: Any) -> dict[str, float]:
    """Re-score one V1 step in TransferQueue; returns the step's median as a metric."""
    import torch

    from verl.utils import tensordict_utils as tu

    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["rm_scores", "extra_fields"])
    extra = [dict(e or {}) for e in _as_list(data["extra_fields"])]
    infos = [dict(e.get("reward_extra_info") or {}) for e in extra]
    padding = [bool((tag or {}).get("is_padding", False)) for tag in batch.tags]
    done = rescore_step(infos, padding, settings)
    if done is None:
        return {}
    new_infos, median = done
    scores = []
    for row, info in zip(data["rm_scores"].unbind(), new_infos, strict=True):
        row = row.clone()
        if row.numel():
            row[-1] = info["score"]  # the agent loop puts the score on the last response token
        scores.append(row)
    for e, info in zip(extra, new_infos, strict=True):
        e["reward_extra_info"] = info
    fields = {"rm_scores": torch.nested.as_nested_tensor(scores, layout=torch.jagged), "extra_fields": extra}
    tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=tu.get_tensordict(fields))
    return {MEDIAN_METRIC: median}


def patch_v1_trainer(module: Any) -> None:
    """Wrap ``PPOTrainer._compute_advantage`` (every V1 trainer mode inherits it)."""
    trainer = getattr(module, "PPOTrainer", None)
    original = getattr(trainer, "_compute_advantage", None)
    if original is None or not hasattr(module, "tq"):
        raise RuntimeError(f"{module.__name__} has no PPOTrainer._compute_advantage: not verl 0.9.1's V1 trainer")
    if getattr(original, _FLAG, False):
        return

    @functools.wraps(original)
    def _compute_advantage(self, batch, metrics):
        settings = step_settings(self.config)
        if settings is not None:  # a failure here must stop the run: training without the penalty is wrong
            metrics.update(apply_to_step(batch, settings, module.tq))
        return original(self, batch, metrics)

    setattr(_compute_advantage, _FLAG, True)
    trainer._compute_advantage = _compute_advantage


def install() -> None:
    """Patch the V1 trainer now if imported, else when it is imported (``import_patches``).

    A module that is not verl 0.9.1's V1 trainer raises ``RuntimeError``: here if it is
    already imported, else at its import.
    """
    patch_on_import(V1_MODULE, patch_v1_trainer, key=f"{__name__}.patch_v1_trainer")
