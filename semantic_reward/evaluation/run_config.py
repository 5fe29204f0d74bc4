"""Settings of ``python -m semantic_reward.evaluation run CONFIG.yaml``: validated dataclasses.

Built with ``semantic_reward.config.build_dataclass`` (unknown keys fail with a
did-you-mean hint); each check raises ``ConfigError`` naming the dotted setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError, build_dataclass
from ..languages import LanguageError, LanguageRegistry

__all__ = ["GenerationSettings", "SystemSpec", "EvalRunConfig", "load_config", "WHAT"]

WHAT = "evaluation setting"
BACKENDS = ("auto", "vllm", "hf")


def _fail(name: str, message: str) -> None:
    raise ConfigError(f"{WHAT} '{name}': {message}")


def _positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        _fail(name, f"must be an integer > 0{' or null' if allow_none else ''}, got {value!r}")


def _existing(name: str, path: str | None, required: bool = False) -> None:
    if path is None:
        if required:
            _fail(name, "is required")
        return
    if not isinstance(path, str) or not path:
        _fail(name, f"must be a path, got {path!r}")
    if not os.path.exists(os.path.expanduser(path)):
        _fail(name, f"{path!r} does not exist")


@dataclass
class GenerationSettings:
    """Greedy decoding for every model system."""

    max_new_tokens: int = 256
    cmrc_max_new_tokens: int = 64  # CMRC answers are short spans
    batch_size: int = 8
    backend: str = "auto"  # auto: vLLM with a GPU when installed, else transformers

    def __post_init__(self) -> None:
        _positive_int("generation.max_new_tokens", self.max_new_tokens)
        _positive_int("generation.cmrc_max_new_tokens", self.cmrc_max_new_tokens)
        _positive_int("generation.batch_size", self.batch_size)
        if self.backend not in BACKENDS:
            _fail("generation.backend", f"{self.backend!r} is not one of {BACKENDS}")


@dataclass
class SystemSpec:
    """One system: a model to generate with, a file of its generations, or both (the file is then
    used for the test split and the model for CMRC and drift)."""

    model: str | None = None
    generations: str | None = None
    cmrc_generations: str | None = None  # JSONL with 'answer' per CMRC question, for systems without a model

    def validate(self, prefix: str) -> None:
        if self.model is None and self.generations is None:
            _fail(prefix.rstrip("."), "needs 'model' (a path or hub id) or 'generations' (a JSONL file)")
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            _fail(f"{prefix}model", f"must be a path or hub id, got {self.model!r}")
        _existing(f"{prefix}generations", self.generations)
        _existing(f"{prefix}cmrc_generations", self.cmrc_generations)


@dataclass
class EvalRunConfig:
    """What to evaluate, on what, and where the report goes."""

    output_dir: str | None = None
    test_file: str | None = None  # data_tools' RL parquet (test split) or JSONL with source/reference
    source_language: str | None = None
    target_language: str | None = None
    max_examples: int | None = None
    encoder: str | None = None  # path or hub id; without it there is no semantic_similarity column
    cmrc_file: str | None = None
    cmrc_max_examples: int | None = 64
    drift_max_texts: int = 32  # out-of-domain texts for drift: the first distinct CMRC passages
    base_model: str | None = None  # drift is measured against it
    thinking: bool = False  # passed as enable_thinking to the chat template
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    n_bootstrap: int = 1000  # sacrebleu bootstrap resamples (intervals and the paired bootstrap test)
    ar_trials: int = 10000  # approximate-randomisation trials of the paired test
    paired_reference: str | None = "cold_start"
    systems: dict[str, Any] = field(default_factory=dict)
    reward_curve: str | None = None  # JSON list of {step, reward_mean, <component>: mean}
    device: str = "auto"
    title: str = "Evaluation report"

    def __post_init__(self) -> None:
        if not isinstance(self.output_dir, str) or not self.output_dir:
            _fail("output_dir", "is required (the folder the report is written to)")
        _existing("test_file", self.test_file, required=True)
        for name in ("source_language", "target_language"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                _fail(name, "is required (e.g. zh, bo)")
        try:
            LanguageRegistry().get(self.target_language)  # its scripts give language consistency
        except LanguageError as exc:
            _fail("target_language", str(exc))
        _positive_int("max_examples", self.max_examples, allow_none=True)
        _positive_int("cmrc_max_examples", self.cmrc_max_examples, allow_none=True)
        _positive_int("drift_max_texts", self.drift_max_texts)
        _positive_int("n_bootstrap", self.n_bootstrap)
        _positive_int("ar_trials", self.ar_trials)
        _existing("cmrc_file", self.cmrc_file)
        _existing("reward_curve", self.reward_curve)
        device = str(self.device)
        if not (device in ("auto", "cpu", "cuda", "mps") or device.startswith("cuda:")):
            _fail("device", f"{device!r} is not auto, cpu, cuda, cuda:N or mps")
        if not isinstance(self.thinking, bool):
            _fail("thinking", f"must be true or false, got {self.thinking!r}")
        if self.encoder is not None and (not isinstance(self.encoder, str) or not self.encoder):
            _fail("encoder", f"must be a path or hub id, got {self.encoder!r}")
        if not isinstance(self.systems, dict) or not self.systems:
            _fail("systems", "needs at least one system: {name: {model: PATH} | {generations: FILE}}")
        built = {}
        for name, spec in self.systems.items():
            if not isinstance(spec, SystemSpec):
                spec = build_dataclass(SystemSpec, spec, f"systems.{name}.", what=WHAT)
            spec.validate(f"systems.{name}.")
            built[str(name)] = spec
        self.systems = built
        if self.paired_reference is not None and self.paired_reference not in self.systems:
            _fail("paired_reference", f"{self.paired_reference!r} is not a system (systems: {sorted(self.systems)}); "
                                      "name one or set it to null")

    def is_base(self, name: str) -> bool:
        """A system whose model is ``base_model`` is the base: it has no drift from itself."""
        model = self.systems[name].model
        if model is None or self.base_model is None:
            return False
        return os.path.realpath(os.path.expanduser(model)) == os.path.realpath(os.path.expanduser(self.base_model))


def load_config(path: str, overrides: list[str] | None = None) -> EvalRunConfig:
    """The YAML at ``path`` with ``key=value`` overrides (dotted keys, OmegaConf syntax) applied."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not os.path.exists(path):
        raise ConfigError(f"{WHAT}: config file {path!r} does not exist")
    try:
        merged = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides or [])))
        mapping = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{WHAT}: cannot read {path!r} with overrides {overrides}: {exc}") from exc
    return build_dataclass(EvalRunConfig, mapping or {}, what=WHAT)
