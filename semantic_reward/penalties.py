"""Anti-reward-hacking terms of the source-grounded follow-up (SG-SRL).

Lengths and n-grams are counted in the units of ``semantic_reward.text`` (Tibetan
syllables, Han characters, words, digit runs), the same units every other part of
the project counts. ``text_units`` is re-exported here for older importers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .text import text_units

__all__ = [
    "text_units",
    "ramp",
    "repeated_ngram_ratio",
    "repetition_penalty",
    "length_penalty",
]


def ramp(value: float, start: float, full: float) -> float:
    """0 at or below ``start``, 1 at or above ``full``, linear in between."""
    if math.isnan(value) or value <= start:
        return 0.0
    if value >= full:
        return 1.0
    return (value - start) / (full - start)


def repeated_ngram_ratio(units: Sequence[str], n: int = 4) -> float:
    """Share of n-grams that repeat an earlier one: 1 - unique/total (0 for short texts)."""
    total = len(units) - n + 1
    if total <= 1:
        return 0.0
    grams = {tuple(units[i : i + n]) for i in range(total)}
    return 1.0 - len(grams) / total


def repetition_penalty(ratio: float, threshold: float = 0.15) -> float:
    """0 up to ``threshold``, then rising linearly to 1 at a ratio of 1."""
    return ramp(ratio, threshold, 1.0)


def length_penalty(length: int, reference_length: float, start: float = 2.5, full: float = 5.0) -> float:
    """Penalty for outputs much longer than the reference (or batch-median) length.

    Ratios up to ``start`` cost nothing, ``full`` and beyond cost 1.
    """
    return ramp(length / max(float(reference_length), 1.0), start, full)


