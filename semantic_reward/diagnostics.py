"""Reward-hacking diagnostics of one training step or one validation dump, as pure functions.

A rising reward is learning only if it depends on the reference: an output that
earns as much against another prompt's reference as against its own (a constant,
a repeated syllable the encoder likes) has found the reward, not the task. These
numbers say so at any scale, from the step's outputs, groups and reward components:

* reference specificity: R_sim (and raw similarity) against the sample's own
  reference minus against a decoy reference (another prompt's, see
  ``SemanticScorer``'s ``decoy_*`` keys);
* distinct-1/2 (Li et al., 2016: distinct n-grams / all n-grams) within each group
  of samples of one prompt, and over the whole step;
* the share of groups whose rewards have no spread (GRPO learns nothing from them);
* the share of samples at the tau floor (R_sim == 0);
* the mean repeated n-gram ratio of the outputs (``penalties.repeated_ngram_ratio``);
* distinct outputs over prompts (a validation dump).

n-grams are over ``text.text_units`` (Tibetan syllables, Han characters, words), the
units every other number of the project counts. A value that cannot be measured
(no n-gram, no group of two, no decoy) is None, never a made-up 0.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

from .penalties import repeated_ngram_ratio
from .text import normalize, strip_reasoning, text_units

__all__ = [
    "DECOY_KEYS",
    "ngrams",
    "distinct_n",
    "group_distinct_n",
    "group_indices",
    "zero_spread_share",
    "floor_share",
    "mean_repeated_ngram_ratio",
    "distinct_output_share",
    "specificity",
    "step_diagnostics",
    "dump_diagnostics",
]

DECOY_KEYS = ("decoy_similarity", "decoy_semantic_reward")
"""The reward's diagnostic keys: similarity and R_sim of the output against a decoy (another row's) reference."""


def ngrams(units: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The n-grams of one unit sequence, in order (none when it is shorter than ``n``)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]


def distinct_n(units_per_text: Iterable[Sequence[str]], n: int) -> float | None:
    """Distinct n-grams / all n-grams, pooled over the texts; None when they hold no n-gram."""
    grams = [g for units in units_per_text for g in ngrams(units, n)]
    return len(set(grams)) / len(grams) if grams else None


def group_indices(groups: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """Sample positions per group id, in first-seen order."""
    out: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        out.setdefault(g, []).append(i)
    return out


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return math.fsum(kept) / len(kept) if kept else None


def group_distinct_n(units_per_text: Sequence[Sequence[str]], groups: Sequence[Hashable], n: int) -> float | None:
    """Mean over groups of two or more samples of their pooled distinct-n; None without such a group."""
    per_group = [distinct_n([units_per_text[i] for i in idx], n)
                 for idx in group_indices(groups).values() if len(idx) >= 2]
    return _mean(per_group)


def zero_spread_share(scores: Sequence[float], groups: Sequence[Hashable], tol: float = 1e-9) -> float | None:
    """Share of groups (two or more samples) whose rewards all lie within ``tol``: no GRPO advantage."""
    spans = [max(scores[i] for i in idx) - min(scores[i] for i in idx)
             for idx in group_indices(groups).values() if len(idx) >= 2]
    return sum(span <= tol for span in spans) / len(spans) if spans else None


def floor_share(r_sim: Sequence[float]) -> float | None:
    """Share of samples whose R_sim is 0: similarity at or below tau, no semantic reward at all."""
    return sum(float(r) <= 0.0 for r in r_sim) / len(r_sim) if len(r_sim) else None


def mean_repeated_ngram_ratio(units_per_text: Sequence[Sequence[str]], n: int = 4) -> float | None:
    """Mean over the outputs of the share of n-grams that repeat an earlier one (0 for short outputs)."""
    return _mean(repeated_ngram_ratio(units, n) for units in units_per_text)


def distinct_output_share(outputs: Sequence[str]) -> float | None:
    """Distinct outputs (normalised) / outputs: 1 when every prompt got its own answer, 1/N for a constant."""
    return len({normalize(o) for o in outputs}) / len(outputs) if outputs else None


def specificity(own: Sequence[float], decoy: Sequence[float | None]) -> dict[str, float | None]:
    """Own-reference mean, decoy-reference mean and their difference, over the samples that have a decoy."""
    pairs = [(float(o), float(d)) for o, d in zip(own, decoy, strict=True)
             if d is not None and math.isfinite(float(d)) and math.isfinite(float(o))]
    if not pairs:
        return {"own": None, "decoy": None, "difference": None, "samples": 0}
    own_mean = math.fsum(p[0] for p in pairs) / len(pairs)
    decoy_mean = math.fsum(p[1] for p in pairs) / len(pairs)
    return {"own": own_mean, "decoy": decoy_mean, "difference": own_mean - decoy_mean, "samples": len(pairs)}


def _column(infos: Sequence[Mapping[str, object]], key: str) -> list[float | None]:
    out: list[float | None] = []
    for info in infos:
        value = info.get(key) if isinstance(info, Mapping) else None
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = math.nan
        out.append(number if math.isfinite(number) else None)
    return out


def _specificities(infos: Sequence[Mapping[str, object]]) -> dict[str, float | None]:
    """Specificity of R_sim and of the raw similarity over the samples with a decoy ({} when none has one)."""
    out: dict[str, float | None] = {}
    for own_key, decoy_key, name in (("semantic_reward", "decoy_semantic_reward", "r_sim"),
                                     ("semantic_similarity", "decoy_similarity", "similarity")):
        own, decoy = _column(infos, own_key), _column(infos, decoy_key)
        kept = [(o, d) for o, d in zip(own, decoy, strict=True) if o is not None]
        spec = specificity([o for o, _ in kept], [d for _, d in kept])
        if spec["samples"]:
            out[f"specificity_{name}"] = spec["difference"]
            out[f"{name}_own"] = spec["own"]
            out[f"{name}_decoy"] = spec["decoy"]
            out["specificity_samples"] = float(spec["samples"])
    return out


def step_diagnostics(
    infos: Sequence[Mapping[str, object]],
    groups: Sequence[Hashable],
    outputs: Sequence[str] | None = None,
    n: int = 4,
) -> dict[str, float]:
    """Every diagnostic of one step; names without prefix, values that cannot be measured left out.

    ``infos`` are the samples' reward results (``score``, ``semantic_reward``,
    ``semantic_similarity`` and, when the rows carry a decoy, ``DECOY_KEYS``);
    ``groups`` their prompt ids; ``outputs`` their answers as the reward read them
    (without it, the text diagnostics are left out). ``n`` is the repeated n-gram order.
    """
    if len(infos) != len(groups) or (outputs is not None and len(outputs) != len(infos)):
        raise ValueError("infos, groups and outputs must hold one entry per sample")
    out: dict[str, float | None] = {}
    scores = _column(infos, "score")
    if all(s is not None for s in scores):
        out["zero_spread_groups"] = zero_spread_share(scores, groups)  # type: ignore[arg-type]
    r_sim = [r for r in _column(infos, "semantic_reward") if r is not None]
    out["tau_floor_share"] = floor_share(r_sim)
    out.update(_specificities(infos))
    if outputs is not None:
        units = [text_units(o) for o in outputs]
        for k in (1, 2):
            out[f"distinct_{k}_step"] = distinct_n(units, k)
            out[f"distinct_{k}_group"] = group_distinct_n(units, groups, k)
        out[f"repeated_{n}gram_ratio"] = mean_repeated_ngram_ratio(units, n)
        out["distinct_output_share"] = distinct_output_share(list(outputs))
    return {k: float(v) for k, v in out.items() if v is not None}


def dump_diagnostics(rows: Sequence[Mapping[str, object]], n: int = 4) -> dict[str, float]:
    """Diagnostics of one validation dump (verl's ``STEP.jsonl`` rows: ``input``, ``output``, reward keys).

    ``prompts`` and ``distinct_outputs`` count distinct inputs and distinct answers (a
    leading reasoning block removed, normalised): one distinct output for 31 prompts is
    a constant. Also distinct-1/2 over the dump, the mean repeated n-gram ratio and,
    when the rows carry the reward's decoy keys, the reference specificity.
    """
    if not rows:
        return {}
    outputs = [normalize(strip_reasoning(str(r.get("output") or ""))[0]) for r in rows]
    units = [text_units(o) for o in outputs]
    out: dict[str, float | None] = {
        "prompts": float(len({str(r.get("input")) for r in rows})),
        "distinct_outputs": float(len(set(outputs))),
        "distinct_output_share": distinct_output_share(outputs),
        "distinct_1": distinct_n(units, 1),
        "distinct_2": distinct_n(units, 2),
        f"repeated_{n}gram_ratio": mean_repeated_ngram_ratio(units, n),
    }
    if all("semantic_reward" in r for r in rows):
        out["tau_floor_share"] = floor_share([float(r["semantic_reward"]) for r in rows])  # type: ignore[arg-type]
    out.update(_specificities(rows))
    return {k: float(v) for k, v in out.items() if v is not None}
