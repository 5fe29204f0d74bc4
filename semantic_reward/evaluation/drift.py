"""Drift of a tuned model from its base on out-of-domain text (the paper's analysis).

For each token of each text: NLL under the tuned model minus NLL under the base
model, and KL(base || tuned) between the two next-token distributions. Reported:
mean and 90th percentile of the NLL increase, 90th percentile of the token KL.
Both models must share the tokenizer (a fine-tune of the base does).

Both models load in one dtype (float32 by default): a base in bf16 beside an fp32
tuned model measures rounding as drift. :func:`drift_floor` measures that noise
itself: the base against the base loaded the same way (the kernels' own noise) and
against the base in the other precision (what a dtype mismatch would add), so a
reader can tell whether a system's drift is above it. Models loaded from paths are
released (and CUDA's cache emptied) before a function returns, so the next system's
engine finds the GPU free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .generate import DTYPES, free_accelerator_memory

__all__ = ["drift_floor", "drift_summary", "token_drift"]


def _load(model: Any, device: str, dtype: str, adapter: str | None = None):
    if isinstance(model, str):
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)  # base + adapter, unmerged
    elif adapter:
        raise ValueError("an adapter is applied to a model path, not to a loaded model")
    return model.to(device).eval()


def token_drift(base: Any, tuned: Any, tokenizer: Any, texts: Sequence[str], max_length: int = 512,
                device: str = "cpu", progress: bool = True, dtype: str = "float32",
                tuned_adapter: str | None = None) -> dict[str, np.ndarray]:
    """Per-token NLL increase and KL(base || tuned) over ``texts`` (arrays over all tokens).

    ``base`` and ``tuned`` are paths (loaded in ``dtype``, released on return) or loaded models (left to the
    caller); ``tuned_adapter`` makes the tuned model ``tuned`` + that LoRA adapter.
    """
    import torch
    from tqdm.auto import tqdm

    if dtype not in DTYPES:
        raise ValueError(f"drift dtype {dtype!r} is not one of {DTYPES}")
    owned = isinstance(base, str) or isinstance(tuned, str)
    base_m, tuned_m = _load(base, device, dtype), _load(tuned, device, dtype, tuned_adapter)
    increases, kls = [], []
    try:
        with torch.inference_mode():
            for text in tqdm(texts, desc="drift", disable=not progress):
                ids = tokenizer(text, return_tensors="pt", truncation=True,
                                max_length=max_length)["input_ids"].to(device)
                if ids.shape[1] < 2:
                    continue
                targets = ids[:, 1:]
                lp_base = torch.log_softmax(base_m(ids).logits[:, :-1].float(), dim=-1)
                lp_tuned = torch.log_softmax(tuned_m(ids).logits[:, :-1].float(), dim=-1)
                nll_base = -lp_base.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                nll_tuned = -lp_tuned.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                increases.append((nll_tuned - nll_base).flatten().cpu().numpy())
                kl = (lp_base.exp() * (lp_base - lp_tuned)).sum(-1).clamp_min(0.0)
                kls.append(kl.flatten().cpu().numpy())
    finally:
        del base_m, tuned_m
        if owned:
            free_accelerator_memory()
    cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0))
    return {"nll_increase": cat(increases), "kl": cat(kls)}


def drift_summary(drift: dict[str, np.ndarray]) -> dict[str, float]:
    inc, kl = drift["nll_increase"], drift["kl"]
    if inc.size == 0:
        return {"nll_increase_mean": 0.0, "nll_increase_p90": 0.0, "kl_p90": 0.0, "tokens": 0}
    return {"nll_increase_mean": float(inc.mean()), "nll_increase_p90": float(np.percentile(inc, 90)),
            "kl_p90": float(np.percentile(kl, 90)), "tokens": int(inc.size)}


def _other_dtype(dtype: str) -> str:
    return "bfloat16" if dtype == "float32" else "float32"


def drift_floor(base: str, tokenizer: Any, texts: Sequence[str], dtype: str = "float32", device: str = "cpu",
                max_length: int = 512, progress: bool = True) -> dict[str, Any]:
    """The drift a system would show without any training: the base against itself.

    ``same_dtype``: both copies in ``dtype`` (zero up to nondeterministic kernels);
    ``other_dtype``: the tuned side loaded in the other precision (bf16 for an fp32
    evaluation), i.e. the size of the rounding noise a dtype mismatch would report as drift.
    """
    same = drift_summary(token_drift(base, base, tokenizer, texts, max_length=max_length, device=device,
                                     progress=progress, dtype=dtype))
    other = _other_dtype(dtype)
    base_m = _load(base, device, dtype)
    other_m = _load(base, device, other)
    try:
        # the other-precision copy computes in its own dtype; logits are compared in fp32
        moved = drift_summary(token_drift(base_m, other_m, tokenizer, texts, max_length=max_length, device=device,
                                          progress=progress, dtype=dtype))
    finally:
        del base_m, other_m
        free_accelerator_memory()
    return {"dtype": dtype, "same_dtype": same, "other_dtype": {"dtype": other, **moved}}
