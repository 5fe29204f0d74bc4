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

__all__ = ["Backend", "ModelDtype", "QualityMetric", "GenerationSettings", "SystemSpec", "EvalRunConfig",
           "load_config", "WHAT"]

WHAT = "evaluation setting"


class Backend(Choice):
    """Who generates: vLLM with a GPU when installed (auto), else transformers."""

    auto = "auto"
    vllm = "vllm"
    hf = "hf"


class ModelDtype(Choice):
    """The precision every evaluated model (generation and drift, base included) is loaded in."""

    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


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


class QualityMetric(Choice):
    """The task metric on the quality axis of quality_vs_tax.png: ROUGE-L when the task writes in its source
    language (headline generation), chrF++ for translation (auto); never an embedding similarity."""

    auto = "auto"
    chrf = "chrf"
    rouge_l = "rouge_l"
    bleu = "bleu"


@dataclass
class GenerationSettings(_EvalSettings):
    """Greedy decoding for every model system."""

    SECTION = "generation"

    max_new_tokens: int = setting(256, ge=1)
    cmrc_max_new_tokens: int = setting(64, ge=1, help="CMRC answers are short spans")
    batch_size: int = setting(8, ge=1)
    backend: Backend = Backend.auto
    dtype: ModelDtype = setting(ModelDtype.float32, help="weights of generation and drift models: float32 keeps a "
                                "GRPO update of lr 5e-7 that a bf16 load of a merged hand-off rounds away")
    gpu_memory_utilization: float = setting(0.85, gt=0.0, le=1.0, help="vLLM's share of the GPU for one system's "
                                            "engine (each engine is shut down before the next starts)")


@dataclass
class SystemSpec(_EvalSettings):
    """One system: a model to generate with, a file of its generations, or both (the file is then
    used for the test split and the model for CMRC and drift). Built under ``systems.NAME.``."""

    model: str | None = None
    adapter: str | None = setting(None, help="a PEFT LoRA adapter folder: the system is 'model' + this adapter, "
                                            "served unmerged (vLLM LoRARequest, PEFT on the transformers path)")
    generations: str | None = None
    cmrc_generations: str | None = setting(None, help="JSONL with 'answer' per CMRC question, for systems "
                                                      "without a model")

    def validate(self) -> None:
        if self.model is not None and not self.model:
            self.fail("model", f"must be a path or hub id, got {self.model!r}")
        self.check_path("generations")
        self.check_path("adapter")
        if self.adapter is not None and self.model is None:
            self.fail("adapter", "needs 'model' (the adapter's base model)")
        if self.adapter is not None and not os.path.isfile(os.path.join(os.path.expanduser(self.adapter),
                                                                        "adapter_config.json")):
            self.fail("adapter", f"{self.adapter!r} holds no adapter_config.json (not a PEFT adapter folder)")
        self.check_path("cmrc_generations")


@dataclass
class EvalRunConfig(_EvalSettings):
    """What to evaluate, on what, and where the report goes."""

    output_dir: str = setting(help="the folder the report is written to")
    test_file: str = setting(help="data_tools' RL parquet (test split) or JSONL with source/reference")
    source_language: str = setting(help="e.g. zh")
    target_language: str = setting(help="e.g. bo")
    max_examples: int | None = setting(None, ge=1)
    encoder: str | None = setting(None, help="the reward encoder (path or hub id): its similarity is reported as "
                                             "reward_encoder_similarity, the score GRPO optimised")
    eval_encoder: str | None = setting(None, help="an evaluation encoder independent of the reward's (path or hub "
                                                  "id): its similarity is reported as eval_encoder_similarity")
    quality_metric: QualityMetric = QualityMetric.auto
    max_top_output_share: float = setting(0.5, gt=0, le=1, help="a system whose most common output answers this "
                                          "share of the prompts is flagged prompt-independent and gets no paired test")
    cmrc_file: str | None = None
    cmrc_max_examples: int | None = setting(64, ge=1)
    drift_max_texts: int = setting(32, ge=1, help="out-of-domain texts for drift: the first distinct passages of the CMRC file")
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
        if self.eval_encoder is not None:
            if not self.eval_encoder:
                self.fail("eval_encoder", f"must be a path or hub id, got {self.eval_encoder!r}")
            if self.encoder is not None and _same_model(self.encoder, self.eval_encoder):
                self.fail("eval_encoder", f"{self.eval_encoder!r} is the reward encoder: an evaluation encoder must "
                                          "be another model (or leave it unset)")
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

    def task_metric(self) -> str:
        """The quality axis: ``quality_metric``, or for auto ROUGE-L when source and target language agree (a
        headline is written in its passage's language) and chrF++ otherwise (translation)."""
        if self.quality_metric != QualityMetric.auto:
            return str(self.quality_metric)
        registry = LanguageRegistry()
        try:
            same = registry.get(self.source_language) == registry.get(self.target_language)
        except LanguageError:  # a source language the registry does not know is not the target's
            same = False
        return "rouge_l" if same else "chrf"

    def is_base(self, name: str) -> bool:
        """A system whose model is ``base_model`` is the base: it has no drift from itself."""
        model = self.systems[name].model
        if model is None or self.base_model is None or self.systems[name].adapter is not None:
            return False  # base + an adapter is a tuned system
        return os.path.realpath(os.path.expanduser(model)) == os.path.realpath(os.path.expanduser(self.base_model))


def _same_model(a: str, b: str) -> bool:
    """Two model names point at one model: the same hub id, or paths to the same folder."""
    return a == b or os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))


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
