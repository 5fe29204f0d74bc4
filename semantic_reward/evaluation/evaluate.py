"""One system's scores: task metrics on translation/headline outputs, and CMRC.

Functions that need an encoder take it explicitly (a path or hub id, or an object
with ``embed_sync``); nothing defaults to a test model.

Embedding similarity is reported under the encoder that computed it: ``reward_encoder_similarity``
under the reward's own encoder (the very score GRPO optimised, so it rises with reward hacking and is
no independent measure of quality), ``eval_encoder_similarity`` under a separate evaluation encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .cmrc import QA_PROMPT, cmrc_scores
from .metrics import language_consistency, rouge_l_corpus, rouge_l_interval, sacrebleu_scores, segmentation

__all__ = ["TaskMetrics", "task_metrics", "semantic_similarity", "open_encoder", "cmrc_prompts", "cmrc_metrics",
           "REWARD_SIMILARITY", "EVAL_SIMILARITY"]

REWARD_SIMILARITY = "reward_encoder_similarity"  # cosine under the reward encoder: not independent of GRPO
EVAL_SIMILARITY = "eval_encoder_similarity"  # cosine under an evaluation encoder that is not the reward's


class Embedder(Protocol):
    def embed_sync(self, texts: list[str]) -> np.ndarray: ...


def open_encoder(encoder: str):
    """The reward's own in-process embedding service for ``encoder`` (so the column matches the reward's
    similarity); close it when done."""
    from ..config import EncoderConfig, ServiceConfig
    from ..service import LocalEmbeddingService

    return LocalEmbeddingService(EncoderConfig(model=encoder), ServiceConfig())


def semantic_similarity(hyps: Sequence[str], refs: Sequence[str], encoder: str | Embedder) -> float:
    """Mean cosine between outputs and references under ``encoder`` (a path/hub id or an open service)."""
    from ..reward_math import cosine_similarity

    if not hyps:
        return 0.0
    service = open_encoder(encoder) if isinstance(encoder, str) else encoder
    try:
        vecs = service.embed_sync(list(hyps) + list(refs))
    finally:
        if isinstance(encoder, str):
            service.close()
    n = len(hyps)
    return float(sum(cosine_similarity(vecs[i], vecs[n + i]) for i in range(n)) / n)


@dataclass
class TaskMetrics:
    """Scores on the 0-1 scale, their 95% intervals, and sacrebleu's signatures."""

    values: dict[str, float]
    intervals: dict[str, dict[str, float]] = field(default_factory=dict)
    signatures: dict[str, str] = field(default_factory=dict)


def task_metrics(hyps: Sequence[str], refs: Sequence[str], language: str, *,
                 reward_encoder: str | Embedder | None, eval_encoder: str | Embedder | None = None,
                 n_bootstrap: int = 1000) -> TaskMetrics:
    """BLEU-4, chrF++, ROUGE-L, language consistency and embedding similarity under each encoder given.

    ``reward_encoder`` (required by keyword; None leaves it out) gives ``reward_encoder_similarity``,
    ``eval_encoder`` gives ``eval_encoder_similarity``: the two are never merged into one column.
    """
    sacre = sacrebleu_scores(hyps, refs, language, n_bootstrap=n_bootstrap)
    out = TaskMetrics(values={
        "bleu": sacre["bleu"].score,
        "chrf": sacre["chrf"].score,
        "rouge_l": rouge_l_corpus(hyps, refs, language),
        "language_consistency": language_consistency(hyps, language),
    })
    if reward_encoder is not None:
        out.values[REWARD_SIMILARITY] = semantic_similarity(hyps, refs, reward_encoder)
    if eval_encoder is not None:
        out.values[EVAL_SIMILARITY] = semantic_similarity(hyps, refs, eval_encoder)
    for name, score in sacre.items():
        out.signatures[name] = score.signature
        if score.interval:
            out.intervals[name] = score.interval.to_dict()
    out.signatures["segmentation"] = segmentation(language)
    rouge = rouge_l_interval(hyps, refs, language, n_bootstrap)
    if rouge:
        out.intervals["rouge_l"] = rouge.to_dict()
    return out


def cmrc_prompts(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": QA_PROMPT.format(context=r["context"], question=r["question"])}]
            for r in rows]


def cmrc_metrics(predictions: Sequence[str], rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """EM/F1/Avg (0-100, as CMRC reports them) for rows whose ``answers`` is a list of strings."""
    s = cmrc_scores(predictions, [r["answers"] for r in rows])
    return {"cmrc_em": s["em"], "cmrc_f1": s["f1"], "cmrc_avg": s["avg"], "cmrc_questions": s["questions"]}
