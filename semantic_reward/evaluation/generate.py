"""Greedy generation for evaluation through one engine per system: vLLM with a GPU, transformers otherwise.

An engine (:class:`VllmEngine`, :class:`HfEngine`, or a test's stand-in: anything with
``generate`` and ``shutdown``) is opened once per system, serves that system's test and
CMRC prompts, and is shut down, its memory freed, before the next system's opens: a
vLLM V1 engine refuses to start while less than ``gpu_memory_utilization`` x the GPU's
memory is free, so an engine left alive stops the evaluation at a later system.

What is evaluated is what was trained: the weights load in ``EngineSpec.dtype``
(float32 by default: a GRPO update at lr 5e-7 is below half a bf16 step of typical
weights, so a bf16 load of a merged hand-off can be the parent plus rounding), and a
LoRA system can be served as its base + adapter (vLLM ``LoRARequest``, PEFT on the
transformers path) instead of a merged copy.

Prompts are chat messages rendered with the model's own chat template, with one
explicit thinking choice (``enable_thinking``, read by Qwen3-style templates and
ignored by others). The answer of an output is :func:`semantic_reward.text.strip_reasoning`'s,
the same function the reward reads it with.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..text import strip_reasoning

__all__ = [
    "Engine",
    "EngineFactory",
    "EngineSpec",
    "HfEngine",
    "SystemEngine",
    "VllmEngine",
    "answer_text",
    "free_accelerator_memory",
    "open_engine",
    "pick_backend",
    "write_generations",
]

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")

Prompt = list[dict[str, str]]


def answer_text(output: str) -> str:
    """The answer part of a raw model output, read as the reward reads it (``text.strip_reasoning``).

    Only the ends' whitespace is trimmed (``normalize``, which every metric and the reward apply, trims it too).
    """
    return strip_reasoning(output)[0].strip()


@dataclass(frozen=True)
class EngineSpec:
    """What one engine loads and how it decodes (greedy)."""

    model: str
    adapter: str | None = None  # a PEFT LoRA adapter folder served on top of ``model``
    dtype: str = "float32"
    enable_thinking: bool = False
    batch_size: int = 8
    gpu_memory_utilization: float = 0.85
    device: str = "auto"
    progress: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"engine dtype {self.dtype!r} is not one of {DTYPES}")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"gpu_memory_utilization {self.gpu_memory_utilization} is not in (0, 1]")


class Engine(Protocol):
    """One loaded model: greedy completions for chat prompts, then ``shutdown`` (frees its memory)."""

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[str]: ...

    def shutdown(self) -> None: ...


EngineFactory = Callable[[str, EngineSpec], Engine]
"""``(backend, spec) -> Engine``: :func:`open_engine`, or a stand-in in tests."""


def free_accelerator_memory() -> None:
    """Collect garbage and return PyTorch's cached GPU blocks to the driver (where there is a GPU)."""
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def pick_backend(backend: str = "auto") -> str:
    if backend not in ("auto", "vllm", "hf"):
        raise ValueError(f"generation backend {backend!r} is not auto, vllm or hf")
    if backend != "auto":
        return backend
    try:
        import torch
        import vllm  # noqa: F401

        return "vllm" if torch.cuda.is_available() else "hf"
    except ImportError:
        return "hf"


def _adapter_rank(adapter: str) -> int:
    """The LoRA rank in a PEFT adapter's ``adapter_config.json`` (vLLM must be started with at least it)."""
    path = Path(adapter) / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the LoRA adapter's config ({exc})") from exc
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"{path}: field 'r' (the LoRA rank) must be a positive integer, got {rank!r}")
    return rank


class VllmEngine:
    """A vLLM ``LLM`` for one system; ``shutdown`` tears it down the way vLLM's maintainers document.

    vLLM has no stable public teardown across versions: ``LLM.shutdown()`` where the
    installed version has it, else the V1 engine core's ``shutdown()``; then the last
    reference is dropped and ``vllm.distributed.parallel_state.cleanup_dist_env_and_memory``
    destroys the model-parallel groups and the process group, collects garbage and
    empties the CUDA cache.
    """

    def __init__(self, spec: EngineSpec) -> None:
        from vllm import LLM

        self.spec = spec
        kwargs: dict[str, Any] = {"model": spec.model, "dtype": spec.dtype,
                                  "gpu_memory_utilization": spec.gpu_memory_utilization, "seed": spec.seed}
        self._lora = None
        if spec.adapter:
            from vllm.lora.request import LoRARequest

            kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=_adapter_rank(spec.adapter))
            self._lora = LoRARequest("evaluated_adapter", 1, spec.adapter)
        self._llm: Any = LLM(**kwargs)

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[str]:
        from vllm import SamplingParams

        if self._llm is None:
            raise RuntimeError(f"the vLLM engine of {self.spec.model} was shut down")
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, seed=self.spec.seed)
        outputs = self._llm.chat(list(prompts), params, use_tqdm=self.spec.progress, lora_request=self._lora,
                                 chat_template_kwargs={"enable_thinking": self.spec.enable_thinking})
        return [o.outputs[0].text for o in outputs]

    def shutdown(self) -> None:
        llm, self._llm = self._llm, None
        if llm is None:
            return
        if callable(getattr(llm, "shutdown", None)):
            llm.shutdown()
        else:
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if callable(getattr(core, "shutdown", None)):
                core.shutdown()
        del llm
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        cleanup_dist_env_and_memory()
        free_accelerator_memory()


class HfEngine:
    """A transformers model for one system (PEFT on top when the spec names an adapter: never merged here)."""

    def __init__(self, spec: EngineSpec) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if spec.device == "auto" else spec.device
        self.tokenizer = AutoTokenizer.from_pretrained(spec.model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(spec.model, dtype=getattr(torch, spec.dtype))
        if spec.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, spec.adapter)
        self.model: Any = model.to(self.device).eval()

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[str]:
        import torch
        from tqdm.auto import tqdm

        if self.model is None:
            raise RuntimeError(f"the transformers engine of {self.spec.model} was shut down")
        tok = self.tokenizer
        texts = [tok.apply_chat_template(list(p), add_generation_prompt=True, tokenize=False,
                                         enable_thinking=self.spec.enable_thinking) for p in prompts]
        outputs: list[str] = []
        size = self.spec.batch_size
        for start in tqdm(range(0, len(texts), size), desc=f"generating ({Path(self.spec.model).name})",
                          disable=not self.spec.progress):
            batch = tok(texts[start : start + size], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(self.device)
            with torch.inference_mode():
                gen = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                          top_p=None, top_k=None, pad_token_id=tok.pad_token_id,
                                          eos_token_id=tok.eos_token_id)
            outputs += tok.batch_decode(gen[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        return outputs

    def shutdown(self) -> None:
        self.model = None
        free_accelerator_memory()


def open_engine(backend: str, spec: EngineSpec) -> Engine:
    """The engine of ``backend`` (auto: vLLM when installed with a GPU, else transformers) for ``spec``."""
    backend = pick_backend(backend)
    logger.info("opening a %s engine for %s%s (%s, enable_thinking=%s)", backend, spec.model,
                f" + adapter {spec.adapter}" if spec.adapter else "", spec.dtype, spec.enable_thinking)
    return VllmEngine(spec) if backend == "vllm" else HfEngine(spec)


class SystemEngine:
    """One system's engine, opened on its first ``generate`` and shut down by ``close`` (idempotent)."""

    def __init__(self, backend: str, spec: EngineSpec, factory: EngineFactory | None = None) -> None:
        self.backend, self.spec = backend, spec
        self._factory = factory or open_engine
        self._engine: Engine | None = None
        self.closed = False

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[str]:
        if self.closed:
            raise RuntimeError(f"the engine of {self.spec.model} was already closed")
        if self._engine is None:
            self._engine = self._factory(self.backend, self.spec)
        return self._engine.generate(prompts, max_new_tokens)

    def close(self) -> None:
        engine, self._engine = self._engine, None
        self.closed = True
        if engine is not None:
            engine.shutdown()


def write_generations(rows: Sequence[dict[str, Any]], hypotheses: Sequence[str], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row, hyp in zip(rows, hypotheses, strict=True):
            fh.write(json.dumps({"id": row.get("id"), "source": row.get("source"), "reference": row.get("reference"),
                                 "hypothesis": hyp}, ensure_ascii=False) + "\n")
