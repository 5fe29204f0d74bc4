"""An async ``compute_score`` for ``reward.custom_reward_function.path``.

For projects that keep verl's ``naive`` manager (or their own) and only swap the
reward function. Settings arrive as keyword arguments from
``reward.custom_reward_function.reward_kwargs``; one scorer (and one embedding
service) is built per distinct settings and reused by every call in the process.

When settings can be checked: verl 0.9.1 imports this module by name and binds the
settings with ``functools.partial`` (``verl.trainer.ppo.reward.get_custom_reward_fn``);
no code of ours runs with the settings until the first call, in a reward-loop worker,
after the first rollout. So check them before the run with
``validate_reward_kwargs`` (``semantic_reward.recipe_check`` calls it), which builds
the settings and checks the encoder's device and model folder. At the first call, a
bad setting raises one line; later calls repeat that line at once, without retrying
the load. The ``semantic`` reward manager validates and loads when verl builds it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..config import ConfigError, SemanticRewardConfig
from ..encoders import EncoderError, check_device, check_model
from ..scorer import SemanticScorer
from ..keys import DECOY_REFERENCE_KEY, DECOY_SOURCE_KEY, LANGUAGE_KEY, SOURCE_KEY

__all__ = ["compute_score", "get_scorer", "validate_reward_kwargs"]

# Arguments verl itself may add to the call; they are not reward settings.
_VERL_CALL_KWARGS = ("reward_router_address", "reward_model_tokenizer")

_SCORERS: dict[str, SemanticScorer] = {}
_FAILED: dict[str, Exception] = {}
_LOCK = threading.Lock()


def validate_reward_kwargs(
    mapping: Mapping[str, Any] | None,
    where: str = "reward.custom_reward_function.reward_kwargs",
    hardware: bool = False,
) -> SemanticRewardConfig:
    """Build and check reward settings as a recipe gives them; a ``ConfigError`` names the setting.

    Checks everything that needs no model load: every field, ``encoder.device``'s
    spelling (and, with ``hardware=True``, that this machine has that device), and
    that ``encoder.model`` is an existing folder or, with the hub online, a hub id.
    Relative folders are taken from the working directory, as verl's workers do.
    Arguments verl adds to the call (``reward_router_address``...) are ignored.
    """
    settings = dict(_plain_mapping(mapping))
    for name in _VERL_CALL_KWARGS:
        settings.pop(name, None)
    try:
        config = SemanticRewardConfig.from_mapping(settings)
        if config.similarity.uses_encoder:
            check_device(config.encoder.device, hardware=hardware)
            check_model(config.encoder.model)
    except (ConfigError, EncoderError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return config


def _plain_mapping(mapping: Any) -> Mapping[str, Any]:
    if mapping is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(mapping, DictConfig):
            return OmegaConf.to_container(mapping, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf comes with verl
        pass
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"reward kwargs must be a mapping, got {type(mapping).__name__}")
    return mapping


def get_scorer(settings: dict[str, Any]) -> SemanticScorer:
    """The process's scorer for these settings, built (encoder loaded) on first use.

    A failure is remembered: every later call with the same settings raises the same
    one-line error at once instead of loading again per sample.
    """
    config = SemanticRewardConfig.from_mapping(settings)
    key = config.cache_key()
    with _LOCK:
        scorer = _SCORERS.get(key)
        if scorer is not None:
            return scorer
        failed = _FAILED.get(key)
        if failed is not None:
            raise type(failed)(str(failed))
        try:
            scorer = SemanticScorer(config)
        except (ConfigError, EncoderError) as exc:
            _FAILED[key] = exc
            raise type(exc)(str(exc)) from None
        _SCORERS[key] = scorer
        return scorer


async def compute_score(
    data_source: str | None = None,
    solution_str: str | None = None,
    ground_truth: Any = None,
    extra_info: dict | None = None,
    **settings: Any,
) -> dict[str, float]:
    """verl's reward-function signature; returns ``score`` plus every component."""
    for name in _VERL_CALL_KWARGS:
        settings.pop(name, None)
    extra_info = extra_info or {}
    scorer = get_scorer(settings)
    return await scorer.score(
        solution_str,
        reference=ground_truth,
        source=extra_info.get(SOURCE_KEY),
        language=extra_info.get(LANGUAGE_KEY),
        decoy_reference=extra_info.get(DECOY_REFERENCE_KEY),
        decoy_source=extra_info.get(DECOY_SOURCE_KEY),
    )
