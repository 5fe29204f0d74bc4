"""Drift of a tuned model from its base on out-of-domain text (the paper's analysis).

For each token of each text: NLL under the tuned model minus NLL under the base
model, and KL(base || tuned) between the two next-token distributions. Reported:
mean and 90th percentile of the NLL increase, 90th percentile of the token KL.
Both models must share the tokenizer (a fine-tune of the base does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["token_drift", "drift_summary"]


def _load(model: Any, device: str):
    if isinstance(model, str):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model, dtype="auto")
    return model.to(device).eval()


def token_drift(base: Any, tuned: Any, tokenizer: Any, texts: Sequence[str], max_length: int = 512,
                device: str = "cpu", progress: bool = True) -> dict[str, np.ndarray]:
    """Per-token NLL increase and KL(base || tuned) over ``texts`` (arrays over all tokens)."""
    import torch
    from tqdm.auto import tqdm

    base_m, tuned_m = _load(base, device), _load(tuned, device)
    increases, kls = [], []
    with torch.inference_mode():
        for text in tqdm(texts, desc="drift", disable=not progress):
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)["input_ids"].to(device)
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
    cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0))
    return {"nll_increase": cat(increases), "kl": cat(kls)}


def drift_summary(drift: dict[str, np.ndarray]) -> dict[str, float]:
    inc, kl = drift["nll_increase"], drift["kl"]
    if inc.size == 0:
        return {"nll_increase_mean": 0.0, "nll_increase_p90": 0.0, "kl_p90": 0.0, "tokens": 0}
    return {"nll_increase_mean": float(inc.mean()), "nll_increase_p90": float(np.percentile(inc, 90)),
            "kl_p90": float(np.percentile(kl, 90)), "tokens": int(inc.size)}
