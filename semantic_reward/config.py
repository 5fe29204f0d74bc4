"""Reward settings as validated dataclasses (built by :mod:`semantic_reward.settings`).

Every setting comes from the recipe YAML (``reward.reward_kwargs`` for the reward
manager, ``reward.custom_reward_function.reward_kwargs`` for ``compute_score``).
A wrong setting fails when the config is loaded, with the setting's dotted name in
the message, instead of minutes into a GPU run.
"""

from __future__ import annotations

import functools
import json
import re
import os
from dataclasses import dataclass
from typing import Any

from .languages import LanguageError, LanguageRegistry
from .settings import Choice, ConfigError, Settings, build_dataclass, setting, to_container, to_plain

__all__ = [
    "Combine",
    "ConfigError",
    "Dtype",
    "EncoderConfig",
    "LengthPenaltyConfig",
    "LengthReference",
    "Mode",
    "RepetitionPenaltyConfig",
    "ReasoningConfig",
    "SemanticRewardConfig",
    "ServiceBackend",
    "ServiceConfig",
    "SimilarityConfig",
    "build_dataclass",
    "device_problem",
    "resolve_model_path",
]

WHAT = "semantic reward setting"


class Mode(Choice):
    """What the response is compared with."""

    reference = "reference"
    source = "source"
    hybrid = "hybrid"


class Combine(Choice):
    additive = "additive"
    gated = "gated"


class Dtype(Choice):
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


class ServiceBackend(Choice):
    auto = "auto"
    local = "local"
    ray = "ray"


class LengthReference(Choice):
    reference = "reference"
    batch_median = "batch_median"


def _looks_like_local_path(model: str) -> bool:
    if os.path.isabs(model) or model.startswith((".", "~")):
        return True
    # A hub id is "name" or "org/name"; anything deeper is a filesystem path.
    return model.count("/") > 1 or "\\" in model


_DEVICE = re.compile(r"auto|cpu|cuda|mps|cuda:\d+")


def device_problem(device: object) -> str | None:
    """Why ``device`` is not a torch device spelling we accept, or None (one check for every device setting)."""
    if isinstance(device, str) and _DEVICE.fullmatch(device.strip()):
        return None
    return f"{device!r} is not auto, cpu, cuda, cuda:N or mps"


def resolve_model_path(model: str) -> str:
    """A local path with ``~`` expanded; hub ids are left as they are."""
    return os.path.expanduser(model)


@dataclass(frozen=True)
class EncoderConfig(Settings):
    """The frozen sentence encoder f of the paper.

    The default is LaBSE, a public cross-lingual encoder covering Tibetan and
    Chinese; the paper's own encoder was XLM-R/CINO trained contrastively on
    Chinese-Tibetan pairs, which is what a serious run should use.
    """

    SECTION = "encoder"
    WHAT = WHAT

    model: str = "sentence-transformers/LaBSE"
    device: str = "auto"
    dtype: Dtype = Dtype.float32
    max_length: int = setting(128, ge=1)
    batch_size: int = setting(32, ge=1)
    cache_size: int = setting(65536, ge=0)
    num_threads: int = setting(0, ge=0)

    def validate(self) -> None:
        if not self.model.strip():
            self.fail("model", "must be a sentence-transformers hub name or a local path")
        if _looks_like_local_path(self.model):
            path = os.path.expanduser(self.model)
            if not os.path.exists(path):
                self.fail("model", f"local path {path!r} does not exist")
        problem = device_problem(self.device)
        if problem:
            self.fail("device", problem)


@dataclass(frozen=True)
class ServiceConfig(Settings):
    """Where encoding runs: in-process, or one named Ray actor shared by all reward workers."""

    SECTION = "service"
    WHAT = WHAT

    backend: ServiceBackend = ServiceBackend.auto
    actor_name: str = "semantic_reward_embedding_service"
    namespace: str | None = None
    num_cpus: float = setting(1.0, ge=0)
    num_gpus: float = setting(0.0, ge=0)
    max_batch_size: int = setting(512, ge=1)
    max_wait_ms: float = setting(5.0, ge=0, le=10000)
    max_restarts: int = setting(3, ge=0)
    request_timeout_s: float = setting(600.0, gt=0)

    def validate(self) -> None:
        if not self.actor_name:
            self.fail("actor_name", "must be a non-empty string")


SIMILARITY_TERMS: tuple[str, ...] = ("embedding", "bleu", "chrf")
"""The similarity terms, in the order their components are reported."""


@dataclass(frozen=True)
class SimilarityConfig(Settings):
    """s as a weighted mean of terms: embedding cosine, sentence BLEU, sentence chrF++.

    The paper's ablation rows are mixes of these (embedding; BLEU; BLEU + embedding).
    How it mixed them was not published: here s = sum(w_k * t_k) / sum(w_k), so s stays
    on one 0-1 scale (cosines of a trained encoder, BLEU/100, chrF/100) and tau keeps one
    meaning for every mix. A term with weight 0 is not computed (no encoder is loaded
    when ``embedding`` is 0). Lexical terms compare with the reference only.
    """

    SECTION = "similarity"
    WHAT = WHAT

    embedding: float = setting(1.0, ge=0)
    bleu: float = setting(0.0, ge=0)
    chrf: float = setting(0.0, ge=0)

    def validate(self) -> None:
        if not any(self.weights().values()):
            self.fail("embedding", "at least one similarity weight (embedding, bleu, chrf) must be > 0")

    def weights(self) -> dict[str, float]:
        """Every term's weight, in ``SIMILARITY_TERMS`` order."""
        return {term: float(getattr(self, term)) for term in SIMILARITY_TERMS}

    def active(self) -> dict[str, float]:
        """The terms with a weight above 0, normalised to sum to 1."""
        total = sum(self.weights().values())
        return {term: w / total for term, w in self.weights().items() if w > 0}

    @property
    def lexical(self) -> bool:
        """True when a term compares words with the reference (BLEU or chrF)."""
        return self.bleu > 0 or self.chrf > 0

    @property
    def uses_encoder(self) -> bool:
        return self.embedding > 0


@dataclass(frozen=True)
class LengthPenaltyConfig(Settings):
    """SG-SRL length penalty: starts at ``start`` x the basis length, full at ``full`` x.

    The basis is the reference's length, or (``batch_median``, the follow-up's choice)
    the median length of the outputs of the same batch: one training step's outputs,
    applied once the step is complete (``SemanticScorer.finish_batch``).
    """

    SECTION = "length_penalty"
    WHAT = WHAT

    weight: float = setting(0.0, ge=0)
    start: float = setting(2.5, ge=0)
    full: float = setting(5.0, ge=0)
    relative_to: LengthReference = LengthReference.reference

    def validate(self) -> None:
        if self.full <= self.start:
            self.fail("full", f"must be greater than start ({self.start}), got {self.full!r}")


@dataclass(frozen=True)
class ReasoningConfig(Settings):
    """A leading reasoning block (Qwen3's ``<think>...</think>``) is not part of the answer.

    With ``strip`` on, the block is removed before both terms are computed (its tags would
    otherwise count as Latin units and fail the language check), and its length in
    characters is reported as the ``reasoning_length`` component.
    """

    SECTION = "reasoning"
    WHAT = WHAT

    strip: bool = True
    open_tag: str = "<think>"
    close_tag: str = "</think>"

    def validate(self) -> None:
        for name in ("open_tag", "close_tag"):
            if not getattr(self, name).strip():
                self.fail(name, "must be a non-empty tag")


@dataclass(frozen=True)
class RepetitionPenaltyConfig(Settings):
    """SG-SRL penalty on the repeated n-gram ratio above ``threshold``."""

    SECTION = "repetition_penalty"
    WHAT = WHAT

    weight: float = setting(0.0, ge=0)
    n: int = setting(4, ge=1)
    threshold: float = setting(0.15, ge=0, lt=1)


@dataclass(frozen=True)
class SemanticRewardConfig(Settings):
    """All settings of the reward. Defaults reproduce the paper: 1.5 * R_sim + 1.0 * R_lang.

    ``tau`` defaults to 0.5: the paper did not publish it, only that it is the
    cold-start model's minimal adequacy; its cold-start models averaged 0.56-0.58
    similarity, so 0.5 leaves a typical cold-start output a small positive reward.
    ``purity`` (share of target-script letters needed for R_lang = 1) defaults to
    0.9, which lets a Latin acronym through but fails a sentence half in Chinese.
    """

    WHAT = WHAT

    mode: Mode = Mode.reference
    similarity: SimilarityConfig = setting(default_factory=SimilarityConfig)
    language: str = "tibetan"
    languages: dict[str, Any] = setting(default_factory=dict)
    tau: float = setting(0.5, ge=0, lt=1)
    semantic_weight: float = setting(1.5, ge=0)
    language_weight: float = setting(1.0, ge=0)
    purity: float = setting(0.9, gt=0, le=1)
    min_letters: int = setting(1, ge=1)
    combine: Combine = Combine.additive
    hybrid_weight: float = setting(0.5, ge=0, le=1)
    length_penalty: LengthPenaltyConfig = setting(default_factory=LengthPenaltyConfig)
    repetition_penalty: RepetitionPenaltyConfig = setting(default_factory=RepetitionPenaltyConfig)
    reasoning: ReasoningConfig = setting(default_factory=ReasoningConfig)
    encoder: EncoderConfig = setting(default_factory=EncoderConfig)
    service: ServiceConfig = setting(default_factory=ServiceConfig)

    def validate(self) -> None:
        if self.similarity.lexical and self.mode != Mode.reference:
            self.fail("similarity", "lexical terms (bleu, chrf) compare with the reference: "
                      f"they need mode 'reference', not '{self.mode}'")
        try:
            registry = LanguageRegistry(self.languages)
            registry.get(self.language)
        except LanguageError as exc:
            self.fail("language" if "unknown language" in str(exc) else "languages", str(exc))

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_mapping(cls, mapping: Any) -> SemanticRewardConfig:
        """Build from a plain or OmegaConf mapping; unknown keys, wrong types and ranges are errors."""
        plain = to_container(mapping) if mapping is not None else {}
        try:
            key = json.dumps(plain, sort_keys=True)
        except TypeError:  # not JSON-able: build without the memo
            return build_dataclass(cls, plain)
        return _from_json(key)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def cache_key(self) -> str:
        """A stable string identifying these settings (used to share scorers)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def language_registry(self) -> LanguageRegistry:
        return LanguageRegistry(self.languages)

    @property
    def reward_range(self) -> tuple[float, float]:
        """The closed interval every total reward lies in."""
        if self.combine == Combine.gated:
            return 0.0, self.semantic_weight
        low = -(self.length_penalty.weight + self.repetition_penalty.weight)
        return low, self.semantic_weight + self.language_weight


@functools.lru_cache(maxsize=256)
def _from_json(key: str) -> SemanticRewardConfig:
    """``compute_score`` rebuilds the settings on every call; the frozen result is shared."""
    return build_dataclass(SemanticRewardConfig, json.loads(key))
