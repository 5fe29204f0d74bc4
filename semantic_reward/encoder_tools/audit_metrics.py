"""Pure metrics of an encoder audit, computed on embeddings and similarity lists (retrieval P@1 is
sentence-transformers' TranslationEvaluator, run by ``audit.AuditEvaluator``).

Kept free of any model so each can be tested on hand-made vectors with known answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "normalize_rows",
    "pair_similarities",
    "random_pair_similarities",
    "roc_auc",
    "propose_tau",
    "distinct_pair_similarities",
    "share_above",
    "shuffle_sensitivity",
]


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def pair_similarities(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Cosine of each aligned pair."""
    return np.sum(normalize_rows(src) * normalize_rows(tgt), axis=1)


def random_pair_similarities(src: np.ndarray, tgt: np.ndarray, seed: int = 0) -> np.ndarray:
    """Cosine of each source with a different, randomly chosen target (a derangement)."""
    n = len(src)
    if n < 2:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    shift = rng.integers(1, n, size=n)
    partner = (np.arange(n) + shift) % n
    return np.sum(normalize_rows(src) * normalize_rows(tgt)[partner], axis=1)


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a true pair outscores a random pair (ties count half)."""
    from sklearn.metrics import roc_auc_score

    pos, neg = np.asarray(positives, float), np.asarray(negatives, float)
    if pos.size == 0 or neg.size == 0:
        return 0.5
    labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    return float(roc_auc_score(labels, np.r_[pos, neg]))


def propose_tau(similarities: Sequence[float], percentile: float = 25.0) -> float:
    """A tau from a cold-start model's output/reference similarities.

    The paper defines tau as the cold-start model's minimal semantic adequacy: a
    low percentile of its similarity distribution, so the typical cold-start
    output already earns some reward and the worst ones earn none. Clipped to [0, 0.99].
    """
    values = np.asarray([s for s in similarities if np.isfinite(s)], dtype=float)
    if values.size == 0:
        raise ValueError("no finite similarities to propose tau from")
    return float(np.clip(np.percentile(values, percentile), 0.0, 0.99))


def distinct_pair_similarities(x: np.ndarray) -> np.ndarray:
    """Cosine of every unordered pair of different rows (i < j): how close each text comes to every other."""
    n = len(x)
    if n < 2:
        return np.zeros(0)
    unit = normalize_rows(x)
    rows, cols = np.triu_indices(n, k=1)
    return np.sum(unit[rows] * unit[cols], axis=1)


def share_above(values: Sequence[float], floor: float) -> float:
    """Share of ``values`` strictly above ``floor`` (0 for no values)."""
    v = np.asarray(values, dtype=float)
    return float(np.mean(v > floor)) if v.size else 0.0


def shuffle_sensitivity(shuffled_similarity: float, floor: float) -> float:
    """How far a shuffled reference moves from the reference, as a share of the way to an unrelated one.

    1 - s_shuffled over 1 - floor: 0 when the shuffle changes nothing (similarity 1), 1 when a shuffled
    reference is as far from the reference as an unrelated reference typically is (the floor).
    """
    if floor >= 1.0:
        return 0.0
    return float((1.0 - shuffled_similarity) / (1.0 - floor))
