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

Beside the means, each step gets the reward-hacking diagnostics of
``semantic_reward.diagnostics`` as ``semantic_reward/diagnostics/<name>``: reference
specificity (R_sim and similarity against the own reference minus against the row's
decoy reference), the share of groups with no reward spread, the share of samples at
the tau floor and, on the V1 trainer (which has the tokenizer to read the outputs),
distinct-1/2 within groups and over the step, distinct outputs and the repeated 4-gram
ratio. The hook's own time is logged as ``timing_s/semantic_reward_diagnostics``.

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
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..diagnostics import step_diagnostics
from ..import_patches import patch_on_import
from ..text import normalize, strip_reasoning

__all__ = [
    "METRIC_PREFIX",
    "SWITCH",
    "VERL_VERSION",
    "MetricsHookError",
    "component_means",
    "diagnostic_metrics",
    "legacy_diagnostics",
    "v1_step_metrics",
    "install",
    "patch_legacy_trainer",
    "patch_v1_trainer",
]

logger = logging.getLogger(__name__)

VERL_VERSION = "0.9.1"
"""The verl release whose trainers this patch was written against and tested with."""

METRIC_PREFIX = "semantic_reward/"
DIAGNOSTIC_PREFIX = "semantic_reward/diagnostics/"
DIAGNOSTIC_TIMING = "timing_s/semantic_reward_diagnostics"
NGRAM = 4
"""The repeated n-gram order of the diagnostics: fixed, so that runs with other penalty settings compare."""
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


def diagnostic_metrics(
    infos: list[Mapping[str, Any]], groups: list[Any], outputs: list[str] | None = None
) -> dict[str, float]:
    """``{"semantic_reward/diagnostics/<name>": value}`` of one step; ``{}`` unless the samples are ours."""
    if not infos or not all(isinstance(i, Mapping) and all(m in i for m in _MARKERS) for i in infos):
        return {}
    values = step_diagnostics(infos, groups, outputs, n=NGRAM)
    return {f"{DIAGNOSTIC_PREFIX}{k}": v for k, v in values.items()}


def _reasoning_tags(config: Any) -> tuple[str, str] | None:
    """The reward's reasoning tags when it strips a reasoning block (the default), else None."""
    from ..config import SemanticRewardConfig

    try:
        kwargs = config.get("reward").get("reward_kwargs") or {}
        if not hasattr(kwargs, "items"):
            kwargs = {}
        try:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(kwargs, DictConfig):
                kwargs = OmegaConf.to_container(kwargs, resolve=True)
        except ImportError:  # pragma: no cover - omegaconf comes with verl
            pass
        reasoning = SemanticRewardConfig.from_mapping(
            {k: v for k, v in dict(kwargs).items() if k not in ("reward_router_address", "reward_model_tokenizer")}
        ).reasoning
    except Exception:  # another reward's settings, or none: read outputs as the default reward would
        reasoning = SemanticRewardConfig().reasoning
    return (reasoning.open_tag, reasoning.close_tag) if reasoning.strip else None


def read_outputs(texts: Iterable[str], tags: tuple[str, str] | None) -> list[str]:
    """Decoded responses as the reward reads them: reasoning block removed, normalised."""
    out = []
    for text in texts:
        if tags is not None:
            text, _ = strip_reasoning(text, *tags)
        out.append(normalize(text))
    return out


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


def _warn_once(state: dict, message: str, exc: BaseException, what: str = "reward component metrics") -> None:
    if not state.get("warned"):
        state["warned"] = True
        logger.warning("%s (%r); %s are skipped from now on", message, exc, what)


def patch_legacy_trainer(module: Any) -> None:
    """Wrap ``compute_data_metrics`` as the legacy ``RayPPOTrainer.fit`` looks it up."""
    _check_version()
    original = getattr(module, "compute_data_metrics", None)
    if original is None:
        raise MetricsHookError(f"{module.__name__} has no compute_data_metrics: not verl {VERL_VERSION}'s trainer")
    if getattr(original, _FLAG, False):
        return
    state: dict = {}
    diagnostics_state: dict = {}

    @functools.wraps(original)
    def compute_data_metrics(batch, use_critic: bool = True):
        metrics = original(batch=batch, use_critic=use_critic)
        if not state.get("warned"):
            try:
                metrics.update(component_means(batch.non_tensor_batch))
            except Exception as exc:  # a metric must never stop training
                _warn_once(state, "semantic reward: cannot read reward components from the batch", exc)
        if not diagnostics_state.get("warned"):
            try:
                metrics.update(legacy_diagnostics(batch.non_tensor_batch))
            except Exception as exc:  # nor a diagnostic
                _warn_once(diagnostics_state, "semantic reward: cannot compute the step diagnostics", exc,
                           "the step diagnostics")
        return metrics

    setattr(compute_data_metrics, _FLAG, True)
    module.compute_data_metrics = compute_data_metrics


def _real_keys(batch: Any) -> list[str]:
    return [key for key, tag in zip(batch.keys, batch.tags, strict=True) if not (tag or {}).get("is_padding", False)]


def legacy_diagnostics(columns: Mapping[str, Any]) -> dict[str, float]:
    """The legacy trainer's step diagnostics, from the component columns and ``uid`` (no text: no tokenizer here)."""
    if "uid" not in columns or not all(marker in columns for marker in _MARKERS):
        return {}
    start = time.perf_counter()
    keys = [k for k in columns if k != "uid"]
    lists = {k: _as_list(columns[k]) for k in keys}
    groups = _as_list(columns["uid"])
    infos = [{k: lists[k][i] for k in keys} for i in range(len(groups))]
    metrics = diagnostic_metrics(infos, groups)
    if metrics:
        metrics[DIAGNOSTIC_TIMING] = time.perf_counter() - start
    return metrics


def v1_step_metrics(batch: Any, kv_batch_get: Callable[..., Any], tokenizer: Any = None, config: Any = None,
                    state: dict | None = None) -> dict[str, float]:
    """A V1 step's component means and diagnostics, from one TransferQueue read (padding samples left out).

    The diagnostics read the prompt uids and the decoded responses as well; when they
    fail (a warning, once), the means are still returned.
    """
    keys = _real_keys(batch)
    if not keys:
        return {}
    data = kv_batch_get(keys=keys, partition_id=batch.partition_id, select_fields=["uid", "responses", "extra_fields"])
    extra = _as_list(data["extra_fields"])
    metrics = component_means(columns_from_extra_fields(extra))
    if not metrics or (state is not None and state.get("warned")):
        return metrics
    start = time.perf_counter()
    try:
        infos = [(f.get("reward_extra_info") or {}) if isinstance(f, Mapping) else {} for f in extra]
        groups = [str(u) for u in _as_list(data["uid"])]
        outputs = None
        if tokenizer is not None:
            rows = data["responses"].unbind() if hasattr(data["responses"], "unbind") else list(data["responses"])
            outputs = read_outputs((tokenizer.decode(row, skip_special_tokens=True) for row in rows),
                                   _reasoning_tags(config))
        diagnostics = diagnostic_metrics(infos, groups, outputs)
    except Exception as exc:  # a diagnostic must never stop training, nor take the means with it
        _warn_once(state if state is not None else {}, "semantic reward: cannot compute the step diagnostics", exc,
                   "the step diagnostics")
        return metrics
    if diagnostics:
        diagnostics[DIAGNOSTIC_TIMING] = time.perf_counter() - start
    return {**metrics, **diagnostics}


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
    diagnostics_state: dict = {}

    @functools.wraps(original)
    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        result = original(self, batch, metrics, timing_raw, global_steps, epoch)
        if not state.get("warned"):
            try:
                metrics.update(v1_step_metrics(batch, module.tq.kv_batch_get, getattr(self, "tokenizer", None),
                                               getattr(self, "config", None), diagnostics_state))
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
