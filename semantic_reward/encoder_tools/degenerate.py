"""Degenerate outputs built from a corpus's own references: what a policy can emit to game the reward.

A policy that finds a string its reward encoder rates close to every reference can stop translating
(GRPO on the tiny encoder collapsed to one syllable repeated). The audit scores these strings against
the references and rejects an encoder that rates them above how close another real reference comes;
training can use them as hard negatives (``train.EncoderTrainConfig.degenerate_negatives``). All are
built from the texts given, never from outside data:

- ``repeated_unit``: one of the references' most frequent units (a Tibetan syllable, a Han character)
  repeated, short and at a typical reference length;
- ``punctuation_run``: runs of the references' most frequent punctuation (tsheg, shad), alone and
  alternating;
- ``frequent_unit_salad``: frequent units drawn at random (by frequency) to a reference's length: the
  "syllable salad" a small policy writes;
- ``shuffled_truncated_reference``: half of a reference's own units, in random order.

The first three depend on no reference (a policy can emit them for any prompt), so each is scored
against every reference; the last is scored against the reference it came from.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..text import text_units

__all__ = ["PROBE_KINDS", "join_units", "frequent_units", "frequent_punctuation", "degenerate_probes",
           "degenerate_negatives"]

PROBE_KINDS = ("repeated_unit", "punctuation_run", "frequent_unit_salad", "shuffled_truncated_reference")


def join_units(units: Sequence[str], like: str) -> str:
    """Units written the way ``like`` writes them: tsheg-joined with a closing shad for Tibetan, else as spaced."""
    if "་" in like or "།" in like:
        return "་".join(units) + "།"
    return (" " if " " in like.strip() else "").join(units)


def _letter_units(text: str) -> list[str]:
    return [u for u in text_units(text) if any(unicodedata.category(c)[0] in "LM" for c in u)]


def frequent_units(texts: Sequence[str], top: int) -> list[tuple[str, int]]:
    """The ``top`` most frequent letter-bearing units of ``texts`` with their counts (ties: first seen first)."""
    return Counter(u for t in texts for u in _letter_units(t)).most_common(top)


def frequent_punctuation(texts: Sequence[str], top: int = 3) -> list[str]:
    """The ``top`` most frequent punctuation characters (Unicode category P*) of ``texts``."""
    counts = Counter(c for t in texts for c in t if unicodedata.category(c).startswith("P"))
    return [c for c, _ in counts.most_common(top)]


def _typical_length(texts: Sequence[str]) -> int:
    return max(2, int(np.median([len(_letter_units(t)) or 1 for t in texts])))


def degenerate_probes(targets: Sequence[str], seed: int = 0, top: int = 10,
                      salads: int = 10) -> dict[str, list[tuple[str, int | None]]]:
    """{kind: [(probe text, the reference index it is scored against, or None for all references)]}.

    ``top`` frequent units are each repeated at a quarter of and at the median reference length (in units);
    ``salads`` salads of the 5 x ``top`` most frequent units are drawn at the median length.
    """
    if not targets:
        raise ValueError("degenerate probes need at least one reference")
    rng = random.Random(seed)
    like = targets[0]
    length = _typical_length(targets)
    units = frequent_units(targets, top * 5)
    probes: dict[str, list[tuple[str, int | None]]] = {kind: [] for kind in PROBE_KINDS}
    for unit, _ in units[:top]:
        for n in sorted({max(2, length // 4), length}):
            probes["repeated_unit"].append((join_units([unit] * n, like), None))
    marks = frequent_punctuation(targets)
    for i, mark in enumerate(marks):
        probes["punctuation_run"].append((mark * length, None))
        for other in marks[i + 1:]:
            probes["punctuation_run"].append(((mark + other) * max(1, length // 2), None))
    if units:
        words, weights = [u for u, _ in units], [c for _, c in units]
        for _ in range(salads):
            probes["frequent_unit_salad"].append((join_units(rng.choices(words, weights, k=length), like), None))
    for i, target in enumerate(targets):
        text = _shuffled_half(target, rng)
        if text is not None:
            probes["shuffled_truncated_reference"].append((text, i))
    return probes


def _shuffled_half(target: str, rng: random.Random) -> str | None:
    """Half of ``target``'s units in an order other than theirs (None for a text of fewer than 2 distinct units)."""
    units = text_units(target)
    if len(set(units)) < 2:
        return None
    keep = max(2, len(units) // 2)
    start = rng.randrange(0, len(units) - keep + 1)
    part = units[start:start + keep]
    if len(set(part)) < 2:
        part = units[:]
    shuffled = part[:]
    while shuffled == part:
        rng.shuffle(shuffled)
    return join_units(shuffled, target)


def degenerate_negatives(targets: Sequence[str], seed: int = 0, top: int = 50) -> list[str]:
    """One degenerate string per target, for training: the probe kinds in turn, at varied lengths.

    Row i gets kind ``i mod 4`` (repeated unit, punctuation run, salad, its own shuffled half); lengths are
    drawn between 2 units and the row's own length so that the encoder cannot learn a length cue.
    """
    if not targets:
        return []
    rng = random.Random(seed)
    units = frequent_units(targets, top)
    words, weights = [u for u, _ in units], [c for _, c in units]
    marks = frequent_punctuation(targets) or ["."]
    out = []
    for i, target in enumerate(targets):
        n = rng.randint(2, max(2, len(_letter_units(target))))
        kind = PROBE_KINDS[i % len(PROBE_KINDS)]
        text = None
        if kind == "repeated_unit" and words:
            text = join_units([rng.choices(words, weights)[0]] * n, target)
        elif kind == "punctuation_run":
            text = "".join(rng.choice(marks) if rng.random() < 0.5 else marks[0] for _ in range(n))
        elif kind == "frequent_unit_salad" and words:
            text = join_units(rng.choices(words, weights, k=n), target)
        elif kind == "shuffled_truncated_reference":
            text = _shuffled_half(target, rng)
        if text is None or text == target:  # no letter unit to draw, or a one-unit target: a punctuation run
            text = marks[0] * (n + 1)
        out.append(text)
    return out
