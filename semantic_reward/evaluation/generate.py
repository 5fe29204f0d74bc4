"""Greedy generation for evaluation: vLLM when it is installed and a GPU is present, transformers otherwise.

Prompts are chat messages rendered with the model's own chat template, with one
explicit thinking choice (``enable_thinking``, read by Qwen3-style templates and
ignored by others). Writes JSONL rows with ``id``, ``source``, ``reference`` and ``hypothesis``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["pick_backend", "generate", "write_generations", "strip_reasoning"]

logger = logging.getLogger(__name__)

_LEADING_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def strip_reasoning(text: str) -> str:
    """The answer after a leading ``<think>...</think>`` block (the text unchanged when there is none)."""
    return _LEADING_THINK.sub("", text, count=1)


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


def generate(model_path: str, prompts: Sequence[list[dict[str, str]]], backend: str = "auto", batch_size: int = 8,
             max_new_tokens: int = 256, enable_thinking: bool = False, device: str = "auto",
             progress: bool = True) -> list[str]:
    """One greedy completion per chat prompt."""
    backend = pick_backend(backend)
    logger.info("generating %d completions with %s (%s, enable_thinking=%s)", len(prompts), model_path, backend,
                enable_thinking)
    if backend == "vllm":
        from vllm import LLM, SamplingParams

        llm = LLM(model=model_path)
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        outputs = llm.chat(list(prompts), params, use_tqdm=progress,
                           chat_template_kwargs={"enable_thinking": enable_thinking})
        return [o.outputs[0].text for o in outputs]
    return _generate_hf(model_path, prompts, batch_size, max_new_tokens, enable_thinking, device, progress)


def _generate_hf(model_path: str, prompts: Sequence[list[dict[str, str]]], batch_size: int, max_new_tokens: int,
                 enable_thinking: bool, device: str, progress: bool) -> list[str]:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    tok = AutoTokenizer.from_pretrained(model_path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto").to(device).eval()
    texts = [tok.apply_chat_template(list(p), add_generation_prompt=True, tokenize=False,
                                     enable_thinking=enable_thinking) for p in prompts]
    outputs: list[str] = []
    for start in tqdm(range(0, len(texts), batch_size), desc=f"generating ({Path(model_path).name})",
                      disable=not progress):
        batch = tok(texts[start : start + batch_size], return_tensors="pt", padding=True,
                    add_special_tokens=False).to(device)
        with torch.inference_mode():
            gen = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)
        outputs += tok.batch_decode(gen[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return outputs


def write_generations(rows: Sequence[dict[str, Any]], hypotheses: Sequence[str], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row, hyp in zip(rows, hypotheses, strict=True):
            fh.write(json.dumps({"id": row.get("id"), "source": row.get("source"), "reference": row.get("reference"),
                                 "hypothesis": hyp}, ensure_ascii=False) + "\n")
