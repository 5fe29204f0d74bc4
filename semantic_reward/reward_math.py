"""The reward as pure functions: no encoder, no verl, no Ray.

Everything the reward needs from an encoder is one or two cosine similarities;
the rest (thresholding, language check, penalties, combination) is plain
arithmetic on strings and floats, unit-tested against hand-computed values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .config import SemanticRewardConfig
from .languages import UnitShare, passes_language, unit_share
from .penalties import length_penalty, repeated_ngram_ratio, repetition_penalty
from .text import text_units

__all__ = [
    "REWARD_KEYS",
    "cosine_similarity",
    "similarity_reward",
    "language_reward",
    "combine_additive",
    "combine_gated",
    "mix_similarity",
    "mix_terms",
    "reward_components",
    "empty_components",
    "is_empty_output",
    "batch_median_length",
    "apply_batch_median_length_penalty",
]

REWARD_KEYS: tuple[str, ...] = (
    "score",
    "semantic_similarity",
    "similarity_reference",
    "similarity_source",
    "similarity_embedding",
    "similarity_bleu",
    "similarity_chrf",
    "semantic_reward",
    "language_reward",
    "target_script_share",
    "length_penalty",
    "repetition_penalty",
    "repeated_ngram_ratio",
    "length_ratio",
    "length_units",
    "is_empty",
    "reasoning_length",
)
"""Keys of every reward result, always all present (verl needs the same keys per sample)."""


def _finite(x: float, default: float = 0.0) -> float:
    x = float(x)
    return x if math.isfinite(x) else default


def cosine_similarity(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Cosine of the L2-normalised vectors, in [-1, 1]; 0 for zero or non-finite vectors."""
    va = np.asarray(a, dtype=np.float64).ravel()
    vb = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(va), np.linalg.norm(vb)
    if not (np.isfinite(na) and np.isfinite(nb)) or na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.clip(_finite(np.dot(va / na, vb / nb)), -1.0, 1.0))


def similarity_reward(s: float, tau: float) -> float:
    """The paper's R_sim: 0 if s <= tau, else (s - tau) / (1 - tau)."""
    s = min(_finite(s), 1.0)
    if s <= tau:
        return 0.0
    return (s - tau) / (1.0 - tau)


def language_reward(share: UnitShare, purity: float, min_letters: int = 1) -> float:
    """R_lang in {0, 1}: at least ``min_letters`` letter units, ``purity`` of them in the target scripts."""
    return 1.0 if passes_language(share, purity, min_letters) else 0.0


def combine_additive(
    r_sim: float,
    r_lang: float,
    p_len: float = 0.0,
    p_rep: float = 0.0,
    *,
    semantic_weight: float = 1.5,
    language_weight: float = 1.0,
    length_weight: float = 0.0,
    repetition_weight: float = 0.0,
) -> float:
    """The paper's sum, with optional penalties subtracted."""
    return semantic_weight * r_sim + language_weight * r_lang - length_weight * p_len - repetition_weight * p_rep


def combine_gated(
    r_sim: float,
    gate: float,
    p_len: float = 0.0,
    p_rep: float = 0.0,
    *,
    semantic_weight: float = 1.0,
    length_weight: float = 0.20,
    repetition_weight: float = 0.05,
) -> float:
    """SG-SRL: g * max(r_sem - w_len * p_len - w_rep * p_rep, 0), the language as a hard gate."""
    return gate * max(semantic_weight * r_sim - length_weight * p_len - repetition_weight * p_rep, 0.0)


def mix_similarity(mode: str, sim_reference: float, sim_source: float, hybrid_weight: float) -> float:
    """The similarity s the reward thresholds, by mode."""
    if mode == "reference":
        return sim_reference
    if mode == "source":
        return sim_source
    return hybrid_weight * sim_reference + (1.0 - hybrid_weight) * sim_source


def mix_terms(terms: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """s = sum(w_k * t_k) / sum(w_k) over the terms with a weight above 0 (a missing term counts 0)."""
    active = {k: float(w) for k, w in weights.items() if w > 0}
    total = math.fsum(active.values())
    if total <= 0:
        raise ValueError("at least one similarity weight must be > 0")
    return math.fsum(w * _finite(terms.get(k, 0.0)) for k, w in active.items()) / total


def is_empty_output(response: str) -> bool:
    """No text units at all: only spaces, punctuation, symbols, control characters or stray combining marks."""
    return not text_units(response)


def empty_components(config: SemanticRewardConfig | None = None) -> dict[str, float]:
    """An empty output: every component 0 and the score at the bottom of the reward range.

    The bottom, not 0: with penalties an additive reward can go below 0, and an empty
    output must never rank above a genuine but penalised attempt (an invitation to
    collapse). Without penalties the bottom is 0.
    """
    result = dict.fromkeys(REWARD_KEYS, 0.0)
    result["is_empty"] = 1.0
    result["score"] = float((config or SemanticRewardConfig()).reward_range[0])
    return result


def _total(config: SemanticRewardConfig, r_sim: float, r_lang: float, p_len: float, p_rep: float) -> float:
    """The configured combination, clipped to the reward range."""
    lp, rp = config.length_penalty, config.repetition_penalty
    if config.combine == "gated":
        total = combine_gated(r_sim, r_lang, p_len, p_rep, semantic_weight=config.semantic_weight,
                              length_weight=lp.weight, repetition_weight=rp.weight)
    else:
        total = combine_additive(r_sim, r_lang, p_len, p_rep, semantic_weight=config.semantic_weight,
                                 language_weight=config.language_weight, length_weight=lp.weight,
                                 repetition_weight=rp.weight)
    low, high = config.reward_range
    return float(min(max(_finite(total), low), high))


def reward_components(
    response: str,
    *,
    scripts: Sequence[str],
    config: SemanticRewardConfig,
    sim_reference: float = 0.0,
    sim_source: float = 0.0,
    length_basis: float | None = 0.0,
    bleu: float = 0.0,
    chrf: float = 0.0,
) -> dict[str, float]:
    """Total reward and every component for one output, given its similarity terms.

    ``sim_reference`` / ``sim_source`` are the embedding cosines (mixed by ``mode`` into
    the embedding term); ``bleu`` and ``chrf`` the sentence scores on a 0-1 scale. The
    terms are mixed by ``config.similarity``'s weights into s, which is thresholded at
    tau. ``length_basis`` is the length (in text units) the output is compared with:
    the reference's; None when it is the batch median, not known yet: the length penalty
    is then 0 until :func:`apply_batch_median_length_penalty` sets it for the whole batch.
    """
    units = text_units(response)
    if not units:  # nothing but spaces, punctuation, symbols, control characters or stray marks
        return empty_components(config)
    sim_reference = float(np.clip(_finite(sim_reference), -1.0, 1.0))
    sim_source = float(np.clip(_finite(sim_source), -1.0, 1.0))
    terms = {
        "embedding": mix_similarity(config.mode, sim_reference, sim_source, config.hybrid_weight),
        "bleu": float(np.clip(_finite(bleu), 0.0, 1.0)),
        "chrf": float(np.clip(_finite(chrf), 0.0, 1.0)),
    }
    weights = config.similarity.weights()
    terms = {k: (v if weights[k] > 0 else 0.0) for k, v in terms.items()}  # an unused term reports 0
    s = mix_terms(terms, weights)
    r_sim = similarity_reward(s, config.tau)

    share = unit_share(response, scripts)
    r_lang = language_reward(share, config.purity, config.min_letters)

    ratio = repeated_ngram_ratio(units, config.repetition_penalty.n)
    p_rep = repetition_penalty(ratio, config.repetition_penalty.threshold)
    lp = config.length_penalty
    if length_basis is None:
        length_ratio, p_len = 0.0, 0.0
    else:
        length_ratio = len(units) / max(float(length_basis), 1.0)
        p_len = length_penalty(len(units), length_basis, lp.start, lp.full)

    total = _total(config, r_sim, r_lang, p_len, p_rep)
    return {
        "score": total,
        "semantic_similarity": float(s),
        "similarity_reference": sim_reference,
        "similarity_source": sim_source,
        "similarity_embedding": terms["embedding"],
        "similarity_bleu": terms["bleu"],
        "similarity_chrf": terms["chrf"],
        "semantic_reward": float(r_sim),
        "language_reward": float(r_lang),
        "target_script_share": float(share.share),
        "length_penalty": float(p_len),
        "repetition_penalty": float(p_rep),
        "repeated_ngram_ratio": float(ratio),
        "length_ratio": float(length_ratio),
        "length_units": float(len(units)),
        "is_empty": 0.0,
        "reasoning_length": 0.0,
    }


def batch_median_length(results: Sequence[Mapping[str, float]]) -> float:
    """Median length in text units of one batch's non-empty outputs (0 when all are empty)."""
    lengths = [float(r["length_units"]) for r in results if not r.get("is_empty")]
    return float(np.median(lengths)) if lengths else 0.0


def apply_batch_median_length_penalty(
    results: Sequence[Mapping[str, float]], config: SemanticRewardConfig, median: float | None = None
) -> list[dict[str, float]]:
    """The follow-up's length penalty against the median length of THIS batch (one step's outputs).

    Takes the components of every output of one batch, scored without a length basis,
    and returns them with ``length_penalty``, ``length_ratio`` and ``score`` recomputed;
    everything else is kept. Empty outputs keep their bottom score. Nothing outside
    ``results`` is used, so a training step never sees another step's or a validation
    batch's lengths. ``median`` overrides the batch's own (verl pads a step with copies
    of real samples, which must not move the median).
    """
    median = batch_median_length(results) if median is None else float(median)
    lp = config.length_penalty
    out = []
    for r in results:
        r = dict(r)
        if not r.get("is_empty"):
            r["length_penalty"] = float(length_penalty(int(r["length_units"]), median, lp.start, lp.full))
            r["length_ratio"] = float(r["length_units"]) / max(median, 1.0)
            r["score"] = _total(config, r["semantic_reward"], r["language_reward"], r["length_penalty"],
                                r["repetition_penalty"])
        out.append(r)
    return out
