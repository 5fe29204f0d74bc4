"""One system's evaluation: task metrics on translation/headline outputs, CMRC, drift."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .cmrc import QA_PROMPT, cmrc_scores
from .metrics import bleu, bootstrap_ci, chrf, language_consistency, rouge_l_corpus

__all__ = ["task_metrics", "semantic_similarity", "cmrc_prompts", "cmrc_metrics"]


def semantic_similarity(hyps: Sequence[str], refs: Sequence[str], encoder: str = "packaged-minilm") -> float:
    """Mean cosine between outputs and references under the reward's encoder."""
    from ..config import EncoderConfig, ServiceConfig
    from ..reward_math import cosine_similarity
    from ..service import LocalEmbeddingService

    service = LocalEmbeddingService(EncoderConfig(model=encoder), ServiceConfig())
    try:
        vecs = service.embed_sync(list(hyps) + list(refs))
    finally:
        service.close()
    n = len(hyps)
    return float(sum(cosine_similarity(vecs[i], vecs[n + i]) for i in range(n)) / n) if n else 0.0


def task_metrics(hyps: Sequence[str], refs: Sequence[str], language: str, encoder: str | None = "packaged-minilm",
                 bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """BLEU, chrF++, ROUGE-L (0-1), embedding similarity, language consistency, bootstrap intervals."""
    out: dict[str, Any] = {
        "bleu": bleu(hyps, refs, language),
        "chrf": chrf(hyps, refs, language),
        "rouge_l": rouge_l_corpus(hyps, refs, language),
        "language_consistency": language_consistency(hyps, language),
        "outputs": len(hyps),
    }
    if encoder:
        out["semantic_similarity"] = semantic_similarity(hyps, refs, encoder)
    if bootstrap:
        ci = {}
        for name, fn in (("bleu", lambda h, r: bleu(h, r, language)), ("rouge_l", lambda h, r: rouge_l_corpus(h, r, language))):
            interval = bootstrap_ci(fn, hyps, refs, n=bootstrap, seed=seed)
            ci[name] = [interval.low, interval.high]
        out["ci95"] = ci
    return out


def cmrc_prompts(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": QA_PROMPT.format(context=r["context"], question=r["question"])}]
            for r in rows]


def cmrc_metrics(predictions: Sequence[str], rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """EM/F1/Avg for CMRC rows whose ``answers`` is a list of strings or {'text': [...]}."""
    answers = []
    for r in rows:
        a = r["answers"]
        answers.append(list(a["text"]) if isinstance(a, dict) else [x["text"] if isinstance(x, dict) else x for x in a])
    s = cmrc_scores(predictions, answers)
    return {"cmrc_em": s["em"], "cmrc_f1": s["f1"], "cmrc_avg": s["avg"], "cmrc_questions": s["questions"]}
