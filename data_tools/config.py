"""Settings of a dataset build, validated at load (CLI flags and recipe YAML share them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from semantic_reward.config import build_dataclass

__all__ = [
    "BuildConfig",
    "ConfigError",
    "FilterConfig",
    "InputConfig",
    "NormalizeConfig",
    "PromptConfig",
    "SplitConfig",
    "TASKS",
    "FORMATS",
]

TASKS = ("mt", "headline")
FORMATS = ("auto", "jsonl", "json", "tsv", "csv", "aligned", "text", "hf")
INSTRUCTION_LANGUAGES = ("zh", "en", "bo")


class ConfigError(ValueError):
    """A data-tools setting is wrong; the message names it."""


def _fail(name: str, message: str) -> None:
    raise ConfigError(f"data_tools setting '{name}': {message}")


@dataclass(frozen=True)
class InputConfig:
    """Where rows come from. Field names default from the task (``zh``/``bo``, ``text``/``title``)."""

    paths: tuple[str, ...] = ()
    format: str = "auto"
    target_paths: tuple[str, ...] = ()
    source_field: str | None = None
    target_field: str | None = None
    id_field: str = "id"
    source_only: bool = False
    hf_name: str | None = None
    hf_config: str | None = None
    hf_split: str = "train"
    skip_invalid: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))
        object.__setattr__(self, "target_paths", tuple(str(p) for p in self.target_paths))
        if self.format not in FORMATS:
            _fail("input.format", f"{self.format!r} is not one of {FORMATS}")
        if self.format == "hf":
            if not self.hf_name:
                _fail("input.hf_name", "format 'hf' needs a dataset name")
        elif not self.paths:
            _fail("input.paths", "no input file given")
        if self.format == "aligned" and len(self.target_paths) != len(self.paths):
            _fail("input.target_paths", f"aligned input needs one target file per source file, got "
                  f"{len(self.target_paths)} for {len(self.paths)}")


@dataclass(frozen=True)
class NormalizeConfig:
    """Unicode clean-up for Tibetan and Chinese (see ``data_tools.normalize``)."""

    nfc: bool = True
    tsheg: bool = True
    strip_invisible: bool = True
    collapse_whitespace: bool = True
    shad_spacing: bool = True
    traditional_to_simplified: bool = False


@dataclass(frozen=True)
class FilterConfig:
    """Row filters; every dropped row is counted under its reason."""

    min_units: int = 1
    max_source_units: int = 1024
    max_target_units: int = 1024
    max_length_ratio: float | None = 4.0
    ratio_min_units: int = 4
    min_script_share: float = 0.8
    drop_duplicates: bool = True
    drop_target_equals_source: bool = True

    def __post_init__(self) -> None:
        if self.min_units < 0:
            _fail("filters.min_units", "must be >= 0")
        if self.max_length_ratio is not None and self.max_length_ratio < 1.0:
            _fail("filters.max_length_ratio", f"must be >= 1 or null, got {self.max_length_ratio}")
        if not 0.0 <= self.min_script_share <= 1.0:
            _fail("filters.min_script_share", f"must be in [0, 1], got {self.min_script_share}")


@dataclass(frozen=True)
class SplitConfig:
    """Deterministic splits that stay put when rows are appended.

    ``test`` and ``dev`` are hash fractions of the normalised source text.
    ``cold_start``: an integer is a row count (default 5,000 as in the paper),
    taken in input order among rows whose second hash is below ``cold_start_gate``
    (so later rows never displace earlier ones); a float < 1 is a hash fraction.
    """

    seed: int = 0
    test: float = 0.05
    dev: float = 0.05
    cold_start: float | int = 5000
    cold_start_gate: float = 0.5
    few_shot: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "few_shot", tuple(int(k) for k in self.few_shot))
        for name in ("test", "dev"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                _fail(f"splits.{name}", f"must be a fraction in [0, 1), got {value}")
        if self.test + self.dev >= 1.0:
            _fail("splits.dev", "test + dev must leave rows for training")
        cs = self.cold_start
        if isinstance(cs, bool) or not isinstance(cs, int | float) or cs < 0 or (isinstance(cs, float) and cs >= 1):
            _fail("splits.cold_start", f"must be a row count (int >= 0) or a fraction in [0, 1), got {cs!r}")
        if not 0.0 < self.cold_start_gate <= 1.0:
            _fail("splits.cold_start_gate", f"must be in (0, 1], got {self.cold_start_gate}")
        if any(k <= 0 for k in self.few_shot):
            _fail("splits.few_shot", f"sizes must be positive, got {self.few_shot}")


@dataclass(frozen=True)
class PromptConfig:
    """Prompt templates are data: ``data_tools/prompts.yaml`` or a file of yours."""

    instruction_language: str = "zh"
    system_prompt: str | None = None
    templates_file: str | None = None

    def __post_init__(self) -> None:
        if self.instruction_language not in INSTRUCTION_LANGUAGES:
            _fail("prompts.instruction_language", f"{self.instruction_language!r} is not one of {INSTRUCTION_LANGUAGES}")


@dataclass(frozen=True)
class BuildConfig:
    """One dataset build: a task over one corpus."""

    task: str = "mt"
    direction: str = "zh-bo"
    data_source: str | None = None
    input: InputConfig = field(default_factory=InputConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    splits: SplitConfig = field(default_factory=SplitConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            _fail("task", f"{self.task!r} is not one of {TASKS}")
        parts = self.direction.split("-")
        if len(parts) != 2 or not all(parts):
            _fail("direction", f"expected SRC-TGT such as zh-bo, got {self.direction!r}")
        if self.task == "headline" and parts[0] != parts[1]:
            _fail("direction", f"headline generation stays in one language (e.g. bo-bo), got {self.direction!r}")

    @property
    def source_language(self) -> str:
        return self.direction.split("-")[0]

    @property
    def target_language(self) -> str:
        return self.direction.split("-")[1]

    @property
    def source_field(self) -> str:
        default = "text" if self.task == "headline" else self.source_language
        return self.input.source_field or default

    @property
    def target_field(self) -> str:
        default = "title" if self.task == "headline" else self.target_language
        return self.input.target_field or default

    @classmethod
    def from_mapping(cls, mapping: Any) -> BuildConfig:
        return build_dataclass(cls, mapping or {}, error=ConfigError, what="data_tools setting")
