"""Settings of ``python -m semantic_reward.evaluation run CONFIG.yaml``: validated dataclasses.

Built with :func:`semantic_reward.settings.build_dataclass` (unknown keys fail with a
did-you-mean hint); ranges live on the fields (``setting(ge=...)``), the rest in
``validate``; every check raises ``ConfigError`` naming the dotted setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..config import device_problem
from ..languages import LanguageError, LanguageRegistry
from ..settings import Choice, ConfigError, Settings, build_dataclass, setting

__all__ = ["Backend", "GenerationSettings", "SystemSpec", "EvalRunConfig", "load_config", "WHAT"]

WHAT = "evaluation setting"


class Backend(Choice):
    """Who generates: vLLM with a GPU when installed (auto), else transformers."""

    auto = "auto"
    vllm = "vllm"
    hf = "hf"


def _path_problem(path: Any) -> str | None:
    if not isinstance(path, str) or not path:
        return f"must be a path, got {path!r}"
    if not os.path.exists(os.path.expanduser(path)):
        return f"{path!r} does not exist"
    return None


class _EvalSettings(Settings):
    WHAT = WHAT

    def check_path(self, name: str, required: bool = False) -> None:
        """An optional input file must exist when it is given."""
        value = getattr(self, name)
        if value is None:
            if required:
                self.fail(name, "is required")
            return
        problem = _path_problem(value)
        if problem:
            self.fail(name, problem)


@dataclass
class GenerationSettings(_EvalSettings):
    """Greedy decoding for every model system."""

    SECTION = "generation"

    max_new_tokens: int = setting(256, ge=1)
    cmrc_max_new_tokens: int = setting(64, ge=1, help="CMRC answers are short spans")
    batch_size: int = setting(8, ge=1)
    backend: Backend = Backend.auto


@dataclass
class SystemSpec(_EvalSettings):
    """One system: a model to generate with, a file of its generations, or both (the file is then
    used for the test split and the model for CMRC and drift). Built under ``systems.NAME.``."""

    model: str | None = None
    generations: str | None = None
    cmrc_generations: str | None = setting(None, help="JSONL with 'answer' per CMRC question, for systems "
                                                      "without a model")

    def validate(self) -> None:
        if self.model is not None and not self.model:
            self.fail("model", f"must be a path or hub id, got {self.model!r}")
        self.check_path("generations")
        self.check_path("cmrc_generations")


@dataclass
class EvalRunConfig(_EvalSettings):
    """What to evaluate, on what, and where the report goes."""

    output_dir: str = setting(help="the folder the report is written to")
    test_file: str = setting(help="data_tools' RL parquet (test split) or JSONL with source/reference")
    source_language: str = setting(help="e.g. zh")
    target_language: str = setting(help="e.g. bo")
    max_examples: int | None = setting(None, ge=1)
    encoder: str | None = setting(None, help="path or hub id; without it there is no semantic_similarity column")
    cmrc_file: str | None = None
    cmrc_max_examples: int | None = setting(64, ge=1)
    drift_max_texts: int = setting(32, ge=1, help="out-of-domain texts for drift: the first distinct CMRC passages")
    base_model: str | None = setting(None, help="drift is measured against it")
    thinking: bool = setting(False, help="passed as enable_thinking to the chat template")
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    n_bootstrap: int = setting(1000, ge=1, help="sacrebleu bootstrap resamples (intervals and the paired test)")
    ar_trials: int = setting(10000, ge=1, help="approximate-randomisation trials of the paired test")
    paired_reference: str | None = "cold_start"
    systems: dict[str, Any] = field(default_factory=dict)
    reward_curve: str | None = setting(None, help="JSON list of {step, reward_mean, <component>: mean}")
    device: str = "auto"
    title: str = "Evaluation report"

    def validate(self) -> None:
        if not self.output_dir:
            self.fail("output_dir", "is required (the folder the report is written to)")
        self.check_path("test_file", required=True)
        for name in ("source_language", "target_language"):
            if not getattr(self, name):
                self.fail(name, "is required (e.g. zh, bo)")
        try:
            LanguageRegistry().get(self.target_language)  # its scripts give language consistency
        except LanguageError as exc:
            self.fail("target_language", str(exc))
        self.check_path("cmrc_file")
        self.check_path("reward_curve")
        problem = device_problem(self.device)
        if problem:
            self.fail("device", problem)
        if self.encoder is not None and not self.encoder:
            self.fail("encoder", f"must be a path or hub id, got {self.encoder!r}")
        if not isinstance(self.systems, dict) or not self.systems:
            self.fail("systems", "needs at least one system: {name: {model: PATH} | {generations: FILE}}")
        built = {}
        for name, spec in self.systems.items():
            if not isinstance(spec, SystemSpec):
                spec = build_dataclass(SystemSpec, spec, f"systems.{name}.")
            if spec.model is None and spec.generations is None:
                self.fail(f"systems.{name}", "needs 'model' (a path or hub id) or 'generations' (a JSONL file)")
            built[str(name)] = spec
        self.systems = built
        if self.paired_reference is not None and self.paired_reference not in self.systems:
            self.fail("paired_reference", f"{self.paired_reference!r} is not a system "
                                          f"(systems: {sorted(self.systems)}); name one or set it to null")

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
