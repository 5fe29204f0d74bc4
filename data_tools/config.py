"""Settings of a dataset build, validated at load; the command line is generated from them.

``BuildConfig.from_mapping`` is the one constructor of a build's settings: the
command line (``data_tools.cli``), ``data.raw_corpus`` (``data_tools.verl_dataset``)
and recipes all go through it, so task-dependent defaults (:func:`task_defaults`)
are resolved in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from semantic_reward.config import ConfigError
from semantic_reward.settings import Choice, Settings, build_dataclass, deep_merge, setting, to_container

__all__ = [
    "BuildConfig",
    "ConfigError",
    "FilterConfig",
    "InputConfig",
    "InputFormat",
    "InstructionLanguage",
    "NormalizeConfig",
    "PromptConfig",
    "SplitConfig",
    "Task",
    "TokenConfig",
    "TASKS",
    "FORMATS",
    "task_defaults",
]

WHAT = "data_tools setting"


class Task(Choice):
    mt = "mt"
    headline = "headline"


class InputFormat(Choice):
    auto = "auto"
    jsonl = "jsonl"
    json = "json"
    tsv = "tsv"
    csv = "csv"
    aligned = "aligned"
    text = "text"
    hf = "hf"


class InstructionLanguage(Choice):
    zh = "zh"
    en = "en"
    bo = "bo"


TASKS = Task.values()
FORMATS = InputFormat.values()

HEADLINE_SOURCE_TOKENS = 2048
"""[default] headline passage budget in policy tokens. Measured with Qwen's tokenizer on the headline stand-in
(../shared/data/bo_title_generation.jsonl, docs GPU_PATH.md): passages run 1,171-5,041 tokens, median 2,712,
about 5.5 tokens per syllable; 2,048 tokens keep the lead (~370 syllables, three quarters of a median passage),
where a headline's content sits, at a prompt length a 4B policy trains on with n = 8."""

_TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "mt": {},
    # A headline is far shorter than its passage: a length-ratio bound would drop every row. Passages are
    # truncated to a token budget instead of dropped for their length.
    "headline": {"direction": "bo-bo", "filters": {"max_length_ratio": None},
                 "tokens": {"source_tokens": HEADLINE_SOURCE_TOKENS}},
}


def task_defaults(task: str) -> dict[str, Any]:
    """The settings whose default depends on the task, as a nested mapping (the one place they live)."""
    return {key: dict(value) if isinstance(value, dict) else value
            for key, value in _TASK_DEFAULTS.get(str(task), {}).items()}


@dataclass(frozen=True)
class InputConfig(Settings):
    """Where rows come from. Field names default from the task (``zh``/``bo``, ``text``/``title``)."""

    SECTION = "input"
    WHAT = WHAT

    paths: tuple[str, ...] = setting((), flag="input", help="input file(s)")
    format: InputFormat = setting(InputFormat.auto, help="input format; auto reads the file suffix")
    target_paths: tuple[str, ...] = setting((), flag="target-input",
                                            help="target-language files for --format aligned")
    source_field: str | None = setting(None, help="default: the source language code (mt) or 'text' (headline)")
    target_field: str | None = setting(None, help="default: the target language code (mt) or 'title' (headline)")
    id_field: str = setting("id", help="field holding the row id")
    source_only: bool = setting(False, help="no targets: RL rows for source-grounded reward")
    hf_name: str | None = setting(None, help="Hugging Face dataset name or local path (with --format hf)")
    hf_config: str | None = setting(None, help="Hugging Face dataset config")
    hf_split: str = setting("train", help="Hugging Face dataset split")
    skip_invalid: bool = setting(False, help="skip and count malformed rows instead of failing")

    def validate(self) -> None:
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))
        object.__setattr__(self, "target_paths", tuple(str(p) for p in self.target_paths))
        if self.format == InputFormat.aligned and len(self.target_paths) != len(self.paths):
            self.fail("target_paths", f"aligned input needs one target file per source file, got "
                      f"{len(self.target_paths)} for {len(self.paths)}")

    def check_given(self) -> None:
        """A build needs input; the default (empty) node alone is not an error, so the build checks this."""
        if self.format == InputFormat.hf:
            if not self.hf_name:
                self.fail("hf_name", "format 'hf' needs a dataset name")
        elif not self.paths:
            self.fail("paths", "no input file given")


@dataclass(frozen=True)
class NormalizeConfig(Settings):
    """Unicode clean-up for Tibetan and Chinese (see ``data_tools.normalize``)."""

    SECTION = "normalize"
    WHAT = WHAT

    nfc: bool = setting(True, help="NFC composition")
    tsheg: bool = setting(True, help="map the non-breaking tsheg U+0F0C to U+0F0B")
    strip_invisible: bool = setting(True, help="remove zero-width and control characters")
    collapse_whitespace: bool = setting(True, help="one space per whitespace run, ends trimmed")
    shad_spacing: bool = setting(True, help="no space before a shad, one between shads")
    traditional_to_simplified: bool = setting(False, flag="t2s",
                                              help="convert Traditional Chinese to Simplified (OpenCC)")


@dataclass(frozen=True)
class FilterConfig(Settings):
    """Row filters; every dropped row is counted under its reason."""

    SECTION = "filters"
    WHAT = WHAT

    min_units: int = setting(1, ge=0, help="drop rows with fewer units on either side")
    max_source_units: int = setting(1024, ge=1, help="drop rows with a longer source (not applied when "
                                                      "--source-tokens truncates sources instead)")
    max_target_units: int = setting(1024, ge=1, help="drop rows with a longer target")
    max_length_ratio: float | None = setting(4.0, ge=1, help="drop pairs whose longer side exceeds this many "
                                                              "times the shorter (null: no bound)")
    ratio_min_units: int = setting(4, ge=0, help="apply the ratio bound only from this many units on")
    min_script_share: float = setting(0.8, ge=0, le=1, help="share of letters that must be in the language's script")
    drop_duplicates: bool = setting(True, help="drop exact and normalised duplicates")
    drop_target_equals_source: bool = setting(True, help="drop rows whose target equals the source")


@dataclass(frozen=True)
class SplitConfig(Settings):
    """Deterministic splits that stay put when rows are appended.

    ``test`` and ``dev`` are hash fractions of the normalised source text.
    ``cold_start``: an integer is a row count (default 5,000 as in the paper),
    taken in input order among rows whose second hash is below ``cold_start_gate``
    (so later rows never displace earlier ones); a float < 1 is a hash fraction.
    """

    SECTION = "splits"
    WHAT = WHAT

    seed: int = setting(0, help="seed of the split hashes")
    test: float = setting(0.05, ge=0, lt=1, help="fraction for test")
    dev: float = setting(0.05, ge=0, lt=1, help="fraction for dev")
    # Any: OmegaConf 2.3 has no int|float union, and the type carries the meaning (count or fraction).
    cold_start: Any = setting(5000, help="cold-start SFT rows (integer) or fraction (< 1); 5000 as in the paper")
    cold_start_gate: float = setting(0.5, gt=0, le=1, help="second-hash bound for counted cold-start rows")
    few_shot: tuple[int, ...] = setting((), nargs="*", help="few-shot subset sizes, e.g. 1000")

    def validate(self) -> None:
        object.__setattr__(self, "few_shot", tuple(int(k) for k in self.few_shot))
        if self.test + self.dev >= 1.0:
            self.fail("dev", "test + dev must leave rows for training")
        cs = self.cold_start
        if isinstance(cs, float) and cs >= 1 and cs.is_integer():
            object.__setattr__(self, "cold_start", cs := int(cs))  # 5000.0 from YAML or a flag is a count
        if isinstance(cs, bool) or not isinstance(cs, int | float) or cs < 0 or (isinstance(cs, float) and cs >= 1):
            self.fail("cold_start", f"must be a row count (int >= 0) or a fraction in [0, 1), got {cs!r}")
        if any(k <= 0 for k in self.few_shot):
            self.fail("few_shot", f"sizes must be positive, got {self.few_shot}")


@dataclass(frozen=True)
class PromptConfig(Settings):
    """Prompt templates are data: ``data_tools/prompts.yaml`` or a file of yours."""

    SECTION = "prompts"
    WHAT = WHAT

    instruction_language: InstructionLanguage = setting(InstructionLanguage.zh, help="language of the instruction")
    system_prompt: str | None = setting(None, help="system message of every prompt")
    templates_file: str | None = setting(None, flag="templates",
                                         help="YAML file of prompt templates (default: data_tools/prompts.yaml)")


@dataclass(frozen=True)
class TokenConfig(Settings):
    """Lengths in the policy's tokens: the source budget, and the percentiles the recipes' lengths come from.

    A source longer than ``source_tokens`` is cut at its last whole syllable (or Han character) that fits,
    and counted in stats.json, instead of being dropped. With a tokenizer, stats.json also holds token
    percentiles of the prompts (chat template applied), references and whole SFT conversations, which
    ``recipe_check --stats`` compares with a recipe's lengths.
    """

    SECTION = "tokens"
    WHAT = WHAT

    tokenizer: str | None = setting(None, help="the policy's tokenizer: a model folder or hub name (e.g. "
                                               "Qwen/Qwen3-4B); needed by --source-tokens; in data.raw_corpus "
                                               "verl's own tokenizer is used when unset")
    source_tokens: int | None = setting(None, ge=1, help="truncate each source to this many tokens at a syllable "
                                                         "boundary (null: no truncation)")
    enable_thinking: bool = setting(False, help="the chat template's thinking switch when prompt tokens are "
                                                "counted (the profile's 'thinking')")


@dataclass(frozen=True)
class BuildConfig(Settings):
    """One dataset build: a task over one corpus."""

    WHAT = WHAT

    task: Task = setting(Task.mt, help="mt (translation, either direction) or headline (text -> headline)")
    direction: str = setting("zh-bo", help="SRC-TGT language codes")
    data_source: str | None = setting(None, help="value of the data_source column (default: <file stem>/<task>)")
    input: InputConfig = setting(default_factory=InputConfig)
    normalize: NormalizeConfig = setting(default_factory=NormalizeConfig)
    filters: FilterConfig = setting(default_factory=FilterConfig)
    splits: SplitConfig = setting(default_factory=SplitConfig)
    prompts: PromptConfig = setting(default_factory=PromptConfig)
    tokens: TokenConfig = setting(default_factory=TokenConfig)

    def validate(self) -> None:
        self.input.check_given()
        parts = self.direction.split("-")
        if len(parts) != 2 or not all(parts):
            self.fail("direction", f"expected SRC-TGT such as zh-bo, got {self.direction!r}")
        if self.task == Task.headline and parts[0] != parts[1]:
            self.fail("direction", f"headline generation stays in one language (e.g. bo-bo), got {self.direction!r}")

    @property
    def source_language(self) -> str:
        return self.direction.split("-")[0]

    @property
    def target_language(self) -> str:
        return self.direction.split("-")[1]

    @property
    def source_field(self) -> str:
        default = "text" if self.task == Task.headline else self.source_language
        return self.input.source_field or default

    @property
    def target_field(self) -> str:
        default = "title" if self.task == Task.headline else self.target_language
        return self.input.target_field or default

    @classmethod
    def from_mapping(cls, mapping: Any, prefix: str = "") -> BuildConfig:
        """The build's settings: ``task_defaults`` of its task under the given mapping, validated."""
        plain = to_container(mapping) if mapping is not None else {}
        if isinstance(plain, dict):
            task = plain.get("task", Task.mt)
            plain = deep_merge(task_defaults(task), plain)
        return build_dataclass(cls, plain, prefix)
