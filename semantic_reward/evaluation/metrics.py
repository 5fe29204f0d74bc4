"""Task metrics on the paper's 0-1 scale, with sacrebleu's intervals, paired tests and signatures.

BLEU-4 and chrF++ are sacrebleu's own: corpus scores with its bootstrap interval
(``corpus_score(..., n_bootstrap=)``) and its paired significance tests
(``sacrebleu.significance.PairedTest``: paired bootstrap resampling and approximate
randomisation). Each carries sacrebleu's signature, which names the tokeniser; the
RNG seed is sacrebleu's (``SACREBLEU_SEED``, default 12345) and is in the signature.
sacrebleu has no Tibetan tokeniser, so Tibetan is cut into syllables first and
scored with ``tokenize="none"``; ``segmentation`` names that step next to the signature.

Before any paired test, every system's outputs are checked for collapse (:func:`output_checks`): a
system that writes one output for (nearly) every prompt, or exactly the same outputs as another system,
has no paired test; a p-value there would measure the references' letter counts or nothing at all.

ROUGE-L is the LCS F-measure over syllables (Tibetan) or characters (Chinese). It is
ours because the stock ``rouge-score`` tokeniser keeps only ``[a-z0-9]`` and so
drops all Tibetan and Chinese text. Language consistency reuses the reward's script check.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

from ..languages import DEFAULT_PURITY, LanguageRegistry, passes_language, unit_share
from ..text import SEGMENTER, normalize, pretokenize

__all__ = ["bleu", "chrf", "lcs_length", "rouge_l", "rouge_l_corpus", "language_consistency", "Interval",
           "SacreScore", "sacrebleu_scores", "paired_significance", "segmentation", "rouge_l_interval",
           "output_checks", "untestable_systems", "MAX_TOP_OUTPUT_SHARE"]

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


MAX_TOP_OUTPUT_SHARE = 0.5  # a system whose most common output answers at least half of the prompts is collapsed


def output_checks(outputs: Mapping[str, Sequence[str]],
                  max_top_share: float = MAX_TOP_OUTPUT_SHARE) -> dict[str, Any]:
    """Per system: distinct outputs over prompts, the most common output's share, and a flag; and the groups of
    systems whose outputs are byte-identical.

    Outputs are compared after the reward's normalisation (:func:`semantic_reward.text.normalize`) for the
    counts, byte for byte for ``identical_to``. ``constant``: one output for every prompt.
    ``prompt_independent``: the most common output answers at least ``max_top_share`` of the prompts
    (constant included). ``identical_to``: the other systems with exactly the
    same outputs, prompt by prompt. Returns {"max_top_share", "systems": {name: {...}}, "identical_groups"}.
    """
    systems: dict[str, dict[str, Any]] = {}
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, hyps in outputs.items():
        counts = Counter(normalize(h) for h in hyps)  # spacing or tsheg-form variants are the same output
        n = len(hyps)
        top, top_count = counts.most_common(1)[0] if counts else ("", 0)
        share = top_count / n if n else 0.0
        systems[name] = {"prompts": n, "distinct_outputs": len(counts), "distinct_share": len(counts) / n if n else 0.0,
                         "top_output_share": share, "top_output": top[:200],
                         "constant": n > 1 and len(counts) == 1, "prompt_independent": n > 1 and share >= max_top_share}
        groups.setdefault(tuple(hyps), []).append(name)
    identical = [names for names in groups.values() if len(names) > 1]
    for names in identical:
        for name in names:
            systems[name]["identical_to"] = [o for o in names if o != name]
    return {"max_top_share": max_top_share, "systems": systems, "identical_groups": identical}


def untestable_systems(checks: Mapping[str, Any], reference: str) -> dict[str, str]:
    """{system: why a paired test against ``reference`` would not mean what it says} from :func:`output_checks`."""
    per = checks["systems"]

    def collapse(name: str) -> str | None:
        c = per[name]
        if c["constant"]:
            return f"{name} writes one output for all {c['prompts']} prompts"
        if c["prompt_independent"]:
            return (f"{name}'s most common output answers {c['top_output_share']:.0%} of the prompts "
                    f"({c['distinct_outputs']} distinct outputs for {c['prompts']})")
        return None

    reasons: dict[str, str] = {}
    ref_reason = collapse(reference) if reference in per else None
    for name in per:
        if name == reference:
            continue
        why = [r for r in (collapse(name), ref_reason) if r]
        if reference in per[name].get("identical_to", []):
            why.insert(0, f"{name}'s outputs are byte-identical to {reference}'s")
        if why:
            reasons[name] = "; ".join(why)
    return reasons


def paired_significance(reference: tuple[str, Sequence[str]], systems: Sequence[tuple[str, Sequence[str]]],
                        refs: Sequence[str], language: str, n_bootstrap: int = 1000,
                        ar_trials: int = 10000, max_top_share: float = MAX_TOP_OUTPUT_SHARE) -> dict[str, Any]:
    """Each system against ``reference`` with sacrebleu's paired bootstrap and approximate randomisation.

    Returns {"reference": name, "signatures": {test: {metric: signature}}, "untested": {name: reason},
    "systems": {name: {metric: {"difference", "p_value_bootstrap", "p_value_ar"}}}}; differences
    are system minus reference on the 0-1 scale; p-values are two-sided for "no difference". A system that
    :func:`untestable_systems` names (collapsed outputs, its own or the reference's, or outputs identical to the
    reference's) gets its difference, None for both p-values and the reason, and is left out of the tests.
    """
    ref_name, ref_hyps = reference
    for name, hyps in [reference, *systems]:
        if len(hyps) != len(refs):
            raise ValueError(f"paired test: system {name!r} has {len(hyps)} outputs for {len(refs)} references")
    checks = output_checks({ref_name: ref_hyps, **{n: h for n, h in systems}}, max_top_share)
    untested = untestable_systems(checks, ref_name)
    out: dict[str, Any] = {"reference": ref_name, "signatures": {}, "untested": untested,
                           "systems": {name: {m: {} for m in SACREBLEU_METRICS} for name, _ in systems}}
    if untested:
        ref_scores = sacrebleu_scores(ref_hyps, refs, language, n_bootstrap=1)
        for name, hyps in systems:
            if name in untested:
                scores = sacrebleu_scores(hyps, refs, language, n_bootstrap=1)
                out["systems"][name] = {m: {"difference": scores[m].score - ref_scores[m].score,
                                            "p_value_bootstrap": None, "p_value_ar": None,
                                            "untested": untested[name]} for m in SACREBLEU_METRICS}
    tested = [(n, h) for n, h in systems if n not in untested]
    if not tested:
        return out
    named = [(ref_name, _segmented(ref_hyps, language))] + [(n, _segmented(h, language)) for n, h in tested]
    seg_refs = [_segmented(refs, language)]
    for test, key, samples in (("bs", "p_value_bootstrap", n_bootstrap), ("ar", "p_value_ar", ar_trials)):
        metrics = {m: _metric(m, language) for m in SACREBLEU_METRICS}
        signatures, results = PairedTest(named, metrics, seg_refs, test_type=test, n_samples=samples)()
        # sacrebleu keys its results by score name ("BLEU", "chrF2++"), in the order of ``metrics``
        score_names = list(signatures)
        out["signatures"][test] = {m: str(signatures[s]) for m, s in zip(SACREBLEU_METRICS, score_names, strict=True)}
        for metric, score_name in zip(SACREBLEU_METRICS, score_names, strict=True):
            baseline, *rest = results[score_name]
            for (name, _), result in zip(tested, rest, strict=True):
                entry = out["systems"][name][metric]
                entry["difference"] = (result.score - baseline.score) / 100
                # sacrebleu counts resampled differences strictly above the observed one: with no observed
                # difference and degenerate resamples (both scoring 0 everywhere) that gives p = 1/(n+1).
                # A difference of zero is never significant: p = 1
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
