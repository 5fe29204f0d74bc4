"""Task metrics on the paper's 0-1 scale, with bootstrap intervals and a paired test.

BLEU-4 and chrF++ come from sacrebleu with the tokenisation right for the target
language (``tokenize.py``); ROUGE-L is the LCS F-measure over characters (Chinese)
or syllables (Tibetan); language consistency reuses the reward's script check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sacrebleu

from ..languages import LanguageRegistry, script_share
from .tokenize import bleu_tokenizer, pretokenize, rouge_units

__all__ = ["bleu", "chrf", "lcs_length", "rouge_l", "rouge_l_corpus", "language_consistency",
           "bootstrap_ci", "paired_bootstrap", "Interval"]


def bleu(hyps: Sequence[str], refs: Sequence[str], language: str) -> float:
    """Corpus BLEU-4 in [0, 1]."""
    tok = bleu_tokenizer(language)
    h = [pretokenize(x, language) for x in hyps]
    r = [pretokenize(x, language) for x in refs]
    return sacrebleu.corpus_bleu(h, [r], tokenize=tok).score / 100.0


def chrf(hyps: Sequence[str], refs: Sequence[str], language: str) -> float:
    """Corpus chrF++ (character 6-grams plus word 2-grams) in [0, 1]."""
    h = [pretokenize(x, language) for x in hyps]
    r = [pretokenize(x, language) for x in refs]
    return sacrebleu.metrics.CHRF(word_order=2).corpus_score(h, [r]).score / 100.0


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(hyp: str, ref: str, language: str) -> float:
    """Sentence ROUGE-L F1 (beta = 1) over script-aware units, in [0, 1]."""
    h, r = rouge_units(hyp, language), rouge_units(ref, language)
    lcs = lcs_length(h, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(h), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def rouge_l_corpus(hyps: Sequence[str], refs: Sequence[str], language: str) -> float:
    """Mean sentence ROUGE-L."""
    return float(np.mean([rouge_l(h, r, language) for h, r in zip(hyps, refs, strict=True)])) if hyps else 0.0


def language_consistency(hyps: Sequence[str], language: str, purity: float = 0.9) -> float:
    """Share of outputs whose letters are at least ``purity`` in the target script (the reward's R_lang)."""
    scripts = LanguageRegistry().get(language).scripts
    ok = [s.total_letters > 0 and s.share >= purity for s in (script_share(h, scripts) for h in hyps)]
    return float(np.mean(ok)) if ok else 0.0


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


Metric = Callable[[Sequence[str], Sequence[str]], float]


def bootstrap_ci(metric: Metric, hyps: Sequence[str], refs: Sequence[str], n: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> Interval:
    """Percentile bootstrap over sentences of a corpus-level metric."""
    hyps, refs = list(hyps), list(refs)
    rng = np.random.default_rng(seed)
    k = len(hyps)
    stats = [metric([hyps[i] for i in idx], [refs[i] for i in idx])
             for idx in (rng.integers(0, k, k) for _ in range(n))] if k else [0.0]
    return Interval(metric(hyps, refs), float(np.percentile(stats, 100 * alpha / 2)),
                    float(np.percentile(stats, 100 * (1 - alpha / 2))))


def paired_bootstrap(metric: Metric, hyps_a: Sequence[str], hyps_b: Sequence[str], refs: Sequence[str],
                     n: int = 1000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap resampling (Koehn 2004): how often does B beat A on resampled test sets?

    Returns the observed difference (B - A) and a two-sided p-value for "no difference".
    """
    a, b, r = list(hyps_a), list(hyps_b), list(refs)
    if not len(a) == len(b) == len(r):
        raise ValueError("paired test needs the same number of outputs from both systems")
    rng = np.random.default_rng(seed)
    k = len(r)
    observed = metric(b, r) - metric(a, r)
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, k, k)
        rr = [r[i] for i in idx]
        diffs.append(metric([b[i] for i in idx], rr) - metric([a[i] for i in idx], rr))
    diffs = np.asarray(diffs)
    # share of resamples on the other side of zero from the observed difference, doubled
    if observed == 0:
        p = 1.0
    else:
        p = min(1.0, 2 * float(np.mean(diffs <= 0) if observed > 0 else np.mean(diffs >= 0)))
    return {"difference": float(observed), "p_value": p, "b_wins_share": float(np.mean(diffs > 0))}
