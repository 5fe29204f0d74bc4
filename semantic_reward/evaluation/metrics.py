"""Task metrics on the paper's 0-1 scale, with sacrebleu's intervals, paired tests and signatures.

BLEU-4 and chrF++ are sacrebleu's own: corpus scores with its bootstrap interval
(``corpus_score(..., n_bootstrap=)``) and its paired significance tests
(``sacrebleu.significance.PairedTest``: paired bootstrap resampling and approximate
randomisation). Each carries sacrebleu's signature, which names the tokeniser; the
RNG seed is sacrebleu's (``SACREBLEU_SEED``, default 12345) and is in the signature.
sacrebleu has no Tibetan tokeniser, so Tibetan is cut into syllables first and
scored with ``tokenize="none"``; ``segmentation`` names that step next to the signature.

ROUGE-L is the LCS F-measure over syllables (Tibetan) or characters (Chinese). It is
ours because the stock ``rouge-score`` tokeniser keeps only ``[a-z0-9]`` and so
drops all Tibetan and Chinese text. Language consistency reuses the reward's script check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

from ..languages import DEFAULT_PURITY, LanguageRegistry, passes_language, unit_share
from ..text import SEGMENTER, normalize, pretokenize

__all__ = ["bleu", "chrf", "lcs_length", "rouge_l", "rouge_l_corpus", "language_consistency", "Interval",
           "SacreScore", "sacrebleu_scores", "paired_significance", "segmentation", "rouge_l_interval"]

SACREBLEU_METRICS = ("bleu", "chrf")


# --- the one place that calls the segmentation (semantic_reward.text, the reward's own units) ------------------
def _segmented(texts: Sequence[str], language: str) -> list[str]:
    """Texts as sacrebleu should see them: the reward's units joined by spaces (``tokenize="none"`` after)."""
    return [pretokenize(t) for t in texts]


def _rouge_units(text: str, language: str) -> list[str]:
    return SEGMENTER(text)


def segmentation(language: str) -> str:
    """What ran before sacrebleu's own tokeniser (stored beside its signature): the same for every language."""
    return SEGMENTER.signature()
# -------------------------------------------------------------------------------------------------------------


def _float_scores(metric: BLEU | CHRF) -> BLEU | CHRF:
    """Make every score the metric computes a Python float.

    sacrebleu's bootstrap (2.x) scores resamples from float32 statistics: BLEU returns a
    Python 0.0 for a resample without matches and a numpy float32 otherwise, and
    ``Score.estimate_ci`` then fails in ``statistics.mean`` ("can't coerce float and
    float32"). Weak systems (the tiny CPU policies, early checkpoints) hit exactly that.
    """
    compute = metric._compute_score_from_stats

    def compute_as_float(stats):
        score = compute(stats)
        score.score = float(score.score)
        return score

    metric._compute_score_from_stats = compute_as_float
    return metric


def _metric(name: str, language: str) -> BLEU | CHRF:
    """A fresh sacrebleu metric: BLEU-4 with the language's tokeniser, or chrF++ (word n-grams up to 2)."""
    if name == "bleu":
        return _float_scores(BLEU(tokenize="none"))
    if name == "chrf":
        return _float_scores(CHRF(word_order=2))
    raise ValueError(f"unknown sacrebleu metric {name!r}; known: {SACREBLEU_METRICS}")


@dataclass(frozen=True)
class Interval:
    """A 95% interval on the 0-1 scale. For sacrebleu metrics it is sacrebleu's: the mean of the
    bootstrap scores plus or minus half the width of their 2.5-97.5 percentile range."""

    value: float
    low: float
    high: float
    mean: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high, "mean": self.mean}


@dataclass(frozen=True)
class SacreScore:
    score: float  # 0-1
    interval: Interval | None
    signature: str


def _corpus(name: str, hyps: Sequence[str], refs: Sequence[str], language: str, n_bootstrap: int) -> SacreScore:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    metric = _metric(name, language)
    score = metric.corpus_score(_segmented(hyps, language), [_segmented(refs, language)], n_bootstrap=n_bootstrap)
    signature = str(metric.get_signature())
    interval = None
    if n_bootstrap > 1:
        # sacrebleu's documented JSON output carries the bootstrap mean and half-width
        info = json.loads(score.format(width=6, signature=signature, is_json=True))
        mean, half = info.get("confidence_mean", 0.0), info.get("confidence_var", 0.0)
        interval = Interval(score.score / 100, (mean - half) / 100, (mean + half) / 100, mean / 100)
    return SacreScore(score.score / 100, interval, signature)


def sacrebleu_scores(hyps: Sequence[str], refs: Sequence[str], language: str,
                     n_bootstrap: int = 1000) -> dict[str, SacreScore]:
    """Corpus BLEU and chrF++ with sacrebleu's bootstrap interval (none when n_bootstrap < 2)."""
    return {name: _corpus(name, hyps, refs, language, n_bootstrap) for name in SACREBLEU_METRICS}


def bleu(hyps: Sequence[str], refs: Sequence[str], language: str) -> float:
    """Corpus BLEU-4 in [0, 1]."""
    return _corpus("bleu", hyps, refs, language, 1).score


def chrf(hyps: Sequence[str], refs: Sequence[str], language: str) -> float:
    """Corpus chrF++ (character 6-grams plus word 2-grams) in [0, 1]."""
    return _corpus("chrf", hyps, refs, language, 1).score


def paired_significance(reference: tuple[str, Sequence[str]], systems: Sequence[tuple[str, Sequence[str]]],
                        refs: Sequence[str], language: str, n_bootstrap: int = 1000,
                        ar_trials: int = 10000) -> dict[str, Any]:
    """Each system against ``reference`` with sacrebleu's paired bootstrap and approximate randomisation.

    Returns {"reference": name, "signatures": {test: {metric: signature}},
    "systems": {name: {metric: {"difference", "p_value_bootstrap", "p_value_ar"}}}}; differences
    are system minus reference on the 0-1 scale; p-values are two-sided for "no difference".
    """
    ref_name, ref_hyps = reference
    for name, hyps in [reference, *systems]:
        if len(hyps) != len(refs):
            raise ValueError(f"paired test: system {name!r} has {len(hyps)} outputs for {len(refs)} references")
    if not systems:
        return {"reference": ref_name, "signatures": {}, "systems": {}}
    named = [(ref_name, _segmented(ref_hyps, language))] + [(n, _segmented(h, language)) for n, h in systems]
    seg_refs = [_segmented(refs, language)]
    out: dict[str, Any] = {"reference": ref_name, "signatures": {},
                           "systems": {name: {m: {} for m in SACREBLEU_METRICS} for name, _ in systems}}
    for test, key, samples in (("bs", "p_value_bootstrap", n_bootstrap), ("ar", "p_value_ar", ar_trials)):
        metrics = {m: _metric(m, language) for m in SACREBLEU_METRICS}
        signatures, results = PairedTest(named, metrics, seg_refs, test_type=test, n_samples=samples)()
        # sacrebleu keys its results by score name ("BLEU", "chrF2++"), in the order of ``metrics``
        score_names = list(signatures)
        out["signatures"][test] = {m: str(signatures[s]) for m, s in zip(SACREBLEU_METRICS, score_names, strict=True)}
        for metric, score_name in zip(SACREBLEU_METRICS, score_names, strict=True):
            baseline, *rest = results[score_name]
            for (name, _), result in zip(systems, rest, strict=True):
                entry = out["systems"][name][metric]
                entry["difference"] = (result.score - baseline.score) / 100
                # sacrebleu counts resampled differences strictly above the observed one: with no observed
                # difference and degenerate resamples (identical outputs, or both scoring 0 everywhere) that
                # gives p = 1/(n+1). A difference of zero is never significant: p = 1
                entry[key] = 1.0 if result.score == baseline.score else float(result.p_value)
    return out


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
    h, r = _rouge_units(hyp, language), _rouge_units(ref, language)
    lcs = lcs_length(h, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(h), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def rouge_l_corpus(hyps: Sequence[str], refs: Sequence[str], language: str) -> float:
    """Mean sentence ROUGE-L."""
    return float(np.mean([rouge_l(h, r, language) for h, r in zip(hyps, refs, strict=True)])) if hyps else 0.0


def rouge_l_interval(hyps: Sequence[str], refs: Sequence[str], language: str, n_bootstrap: int = 1000,
                     seed: int = 12345) -> Interval | None:
    """Percentile bootstrap interval of mean ROUGE-L (scipy.stats.bootstrap); None below two sentences."""
    from scipy.stats import bootstrap

    scores = np.array([rouge_l(h, r, language) for h, r in zip(hyps, refs, strict=True)])
    if scores.size < 2 or n_bootstrap < 2:
        return None
    value = float(scores.mean())
    if np.all(scores == scores[0]):
        return Interval(value, value, value, value)
    res = bootstrap((scores,), np.mean, n_resamples=n_bootstrap, method="percentile", rng=seed)
    return Interval(value, float(res.confidence_interval.low), float(res.confidence_interval.high),
                    float(res.bootstrap_distribution.mean()))


def language_consistency(hyps: Sequence[str], language: str, purity: float = DEFAULT_PURITY) -> float:
    """Share of outputs that pass the reward's own language check (R_lang = 1), on normalised text."""
    scripts = LanguageRegistry().get(language).scripts
    ok = [passes_language(unit_share(normalize(h), scripts), purity) for h in hyps]
    return float(np.mean(ok)) if ok else 0.0
