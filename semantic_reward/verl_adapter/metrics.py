"""Each reward component's per-step mean in verl's training metrics (a patch for verl 0.9.1).

verl 0.9.1 logs the components our reward returns (``reward_extra_info``) only at
validation. During training they are in the batch, but neither trainer offers a hook
to add metrics from it, and ``Tracking`` takes no custom backend. So this module
wraps, in the trainer's own process, the one function each trainer uses to turn the
batch into step metrics, and adds ``semantic_reward/<component>/mean``:

* legacy trainer (``trainer.use_v1=false``): ``compute_data_metrics`` as bound in
  ``verl.trainer.ppo.ray_trainer``; the components are in ``batch.non_tensor_batch``.
* V1 trainer: ``PPOTrainer._compute_metrics`` in ``verl.trainer.ppo.v1.trainer_base``;
  the components are read from TransferQueue's ``extra_fields["reward_extra_info"]``
  of the step's (non-padding) samples, before verl clears them.

The metrics then reach every logger the user picked (console, file, wandb,
tensorboard...), because both trainers pass that one metrics dict to ``Tracking.log``.
Components are the reward's ``REWARD_KEYS`` (similarity, R_sim, R_lang, script share,
penalties, and any later key such as a reasoning length); nothing is added unless the
batch holds the semantic reward's own keys, so other rewards are untouched.

Activation: ``install()``, which ``semantic_reward.verl_adapter.manager`` calls when
it is imported, i.e. in every verl process through the ``verl.plugins`` entry point.
It patches the trainer modules if already imported, else the moment they are
(``import_patches.patch_on_import``, shared with ``batch_terms``).
``SEMANTIC_REWARD_TRAIN_METRICS=0`` turns it off. On a verl other than 0.9.1 the
trainer module's import fails with a ``MetricsHookError`` saying so (set the variable
to 0 to train without these metrics).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..import_patches import patch_on_import

__all__ = [
    "METRIC_PREFIX",
    "SWITCH",
    "VERL_VERSION",
    "MetricsHookError",
    "component_means",
    "install",
    "patch_legacy_trainer",
    "patch_v1_trainer",
]

logger = logging.getLogger(__name__)

VERL_VERSION = "0.9.1"
"""The verl release whose trainers this patch was written against and tested with."""

METRIC_PREFIX = "semantic_reward/"
SWITCH = "SEMANTIC_REWARD_TRAIN_METRICS"
_MARKERS = ("semantic_similarity", "language_reward")  # present in every semantic reward result
_LEGACY = "verl.trainer.ppo.ray_trainer"
_V1 = "verl.trainer.ppo.v1.trainer_base"
_FLAG = "_semantic_reward_metrics"


class MetricsHookError(RuntimeError):
    """The installed verl is not the one this patch was written for."""


def _component_keys() -> tuple[str, ...]:
    from ..reward_math import REWARD_KEYS

    return tuple(REWARD_KEYS)


def component_means(columns: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, float]:
    """``{"semantic_reward/<key>/mean": mean}`` over the samples of each reward component.

    ``columns`` maps a component to its per-sample values (an array or list). Values
    that are missing or not finite numbers are left out of that mean; a batch without
    the semantic reward's marker keys gives ``{}``.
    """
    if not all(marker in columns for marker in _MARKERS):
        return {}
    means: dict[str, float] = {}
    for key in keys if keys is not None else _component_keys():
        if key not in columns:
            continue
        values = [_number(v) for v in _as_list(columns[key])]
        values = [v for v in values if v is not None]
        if values:
            means[f"{METRIC_PREFIX}{key}/mean"] = math.fsum(values) / len(values)
    return means


def _as_list(values: Any) -> list:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def columns_from_extra_fields(extra_fields: Iterable[Any]) -> dict[str, list]:
    """Per-sample ``extra_fields["reward_extra_info"]`` dicts (V1's layout) as component columns."""
    infos = [f.get("reward_extra_info") or {} if isinstance(f, Mapping) else {} for f in extra_fields]
    keys = dict.fromkeys(k for info in infos for k in info)
    return {key: [info.get(key) for info in infos] for key in keys}


# -- version check and the two patches -------------------------------------------------------------
def _check_version() -> None:
    import verl

    found = getattr(verl, "__version__", "unknown")
    if found != VERL_VERSION:
        raise MetricsHookError(
            f"semantic_reward.verl_adapter.metrics was written for verl {VERL_VERSION} and verl {found} is "
            f"installed: the reward components cannot be added to the training metrics. Use verl {VERL_VERSION}, "
            f"or set {SWITCH}=0 to train without them."
        )


def _warn_once(state: dict, message: str, exc: BaseException) -> None:
    if not state.get("warned"):
        state["warned"] = True
        logger.warning("%s (%r); reward component metrics are skipped from now on", message, exc)


def patch_legacy_trainer(module: Any) -> None:
    """Wrap ``compute_data_metrics`` as the legacy ``RayPPOTrainer.fit`` looks it up."""
    _check_version()
    original = getattr(module, "compute_data_metrics", None)
    if original is None:
        raise MetricsHookError(f"{module.__name__} has no compute_data_metrics: not verl {VERL_VERSION}'s trainer")
    if getattr(original, _FLAG, False):
        return
    state: dict = {}

    @functools.wraps(original)
    def compute_data_metrics(batch, use_critic: bool = True):
        metrics = original(batch=batch, use_critic=use_critic)
        if not state.get("warned"):
            try:
                metrics.update(component_means(batch.non_tensor_batch))
            except Exception as exc:  # a metric must never stop training
                _warn_once(state, "semantic reward: cannot read reward components from the batch", exc)
        return metrics

    setattr(compute_data_metrics, _FLAG, True)
    module.compute_data_metrics = compute_data_metrics


def v1_component_means(batch: Any, kv_batch_get: Callable[..., Any]) -> dict[str, float]:
    """The component means of a V1 step, read from TransferQueue (padding samples left out)."""
    keys = [key for key, tag in zip(batch.keys, batch.tags, strict=True) if not (tag or {}).get("is_padding", False)]
    if not keys:
        return {}
    data = kv_batch_get(keys=keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
    return component_means(columns_from_extra_fields(_as_list(data["extra_fields"])))


def patch_v1_trainer(module: Any) -> None:
    """Wrap ``PPOTrainer._compute_metrics`` (every V1 trainer mode inherits it)."""
    _check_version()
    trainer = getattr(module, "PPOTrainer", None)
    original = getattr(trainer, "_compute_metrics", None)
    if original is None or not hasattr(module, "tq"):
        raise MetricsHookError(f"{module.__name__} has no PPOTrainer._compute_metrics: not verl {VERL_VERSION}'s")
    if getattr(original, _FLAG, False):
        return
    state: dict = {}

    @functools.wraps(original)
    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        result = original(self, batch, metrics, timing_raw, global_steps, epoch)
        if not state.get("warned"):
            try:
                metrics.update(v1_component_means(batch, module.tq.kv_batch_get))
            except Exception as exc:  # a metric must never stop training
                _warn_once(state, "semantic reward: cannot read reward components from TransferQueue", exc)
        return result

    setattr(_compute_metrics, _FLAG, True)
    trainer._compute_metrics = _compute_metrics


_PATCHES: dict[str, Callable[[Any], None]] = {_LEGACY: patch_legacy_trainer, _V1: patch_v1_trainer}


def install() -> bool:
    """Add the reward components to both trainers' step metrics; False when switched off.

    Trainer modules already imported are patched now (raising ``MetricsHookError`` on
    another verl, after every patch is registered); the others are patched when imported
    (see ``import_patches``).
    """
    if os.environ.get(SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    failure: MetricsHookError | None = None
    for name, patch in _PATCHES.items():
        try:
            patch_on_import(name, patch, key=f"{__name__}.{patch.__name__}")
        except MetricsHookError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return True
