"""Generation for evaluation: vLLM when it is installed and a GPU is present, transformers otherwise.

Batched and greedy by default. Reads the RL test parquet that ``data_tools`` writes
and writes JSONL rows with ``id``, ``source``, ``reference`` and ``hypothesis``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["read_eval_rows", "pick_backend", "generate", "write_generations"]


def read_eval_rows(parquet: str | Path) -> list[dict[str, Any]]:
    """id, source, reference, prompt messages and target language of each RL row."""
    import pyarrow.parquet as pq

    rows = []
    for row in pq.read_table(parquet).to_pylist():
        extra = row.get("extra_info") or {}
        rows.append({"id": extra.get("id"), "source": extra.get("source"),
                     "reference": (row.get("reward_model") or {}).get("ground_truth"),
                     "prompt": row["prompt"], "target_language": extra.get("target_language")})
    return rows


def pick_backend(backend: str = "auto") -> str:
    if backend != "auto":
        return backend
    try:
        import torch
        import vllm  # noqa: F401

        return "vllm" if torch.cuda.is_available() else "hf"
    except ImportError:
        return "hf"


def generate(model_path: str, prompts: Sequence[list[dict[str, str]]], backend: str = "auto", batch_size: int = 8,
             max_new_tokens: int = 256, temperature: float = 0.0, device: str = "auto",
             progress: bool = True) -> list[str]:
    """One completion per chat prompt."""
    backend = pick_backend(backend)
    if backend == "vllm":
        from vllm import LLM, SamplingParams

        llm = LLM(model=model_path)
        params = SamplingParams(temperature=temperature, max_tokens=max_new_tokens)
        outputs = llm.chat(list(prompts), params, use_tqdm=progress)
        return [o.outputs[0].text for o in outputs]
    return _generate_hf(model_path, prompts, batch_size, max_new_tokens, temperature, device, progress)


def _generate_hf(model_path, prompts, batch_size, max_new_tokens, temperature, device, progress) -> list[str]:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    tok = AutoTokenizer.from_pretrained(model_path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto").to(device).eval()
    texts = [tok.apply_chat_template(list(p), add_generation_prompt=True, tokenize=False) for p in prompts]
    outputs: list[str] = []
    sample = temperature > 0
    for start in tqdm(range(0, len(texts), batch_size), desc="generating", disable=not progress):
        batch = tok(texts[start : start + batch_size], return_tensors="pt", padding=True,
                    add_special_tokens=False).to(device)
        with torch.inference_mode():
            gen = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=sample,
                                 temperature=temperature if sample else None, top_p=None, top_k=None,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = gen[:, batch["input_ids"].shape[1] :]
        outputs += tok.batch_decode(new, skip_special_tokens=True)
    return outputs


def write_generations(rows: Sequence[dict[str, Any]], hypotheses: Sequence[str], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row, hyp in zip(rows, hypotheses, strict=True):
            fh.write(json.dumps({"id": row.get("id"), "source": row.get("source"), "reference": row.get("reference"),
                                 "hypothesis": hyp}, ensure_ascii=False) + "\n")
