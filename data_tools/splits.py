"""Deterministic split assignment that survives appending rows.

Every row is placed by hashes of (seed, normalised source text), never by its
position among all rows, so adding rows to a corpus leaves every existing row
where it was; the same source text always lands in the same split, so a sentence
can never be in both training and test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .config import SplitConfig
from .records import Pair

__all__ = ["SPLITS", "unit_hash", "SplitAssigner", "few_shot_subset", "check_disjoint"]

SPLITS = ("cold_start", "rl", "dev", "test")


def unit_hash(seed: int, salt: str, text: str) -> float:
    """A uniform number in [0, 1) from (seed, salt, text)."""
    digest = hashlib.blake2b(f"{seed}\x1f{salt}\x1f{text}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class SplitAssigner:
    """Assigns rows in input order; state is only the cold-start count so far."""

    def __init__(self, config: SplitConfig, has_targets: bool = True):
        self.config = config
        self.has_targets = has_targets
        self.cold_start_taken = 0

    def __call__(self, pair: Pair) -> str:
        cfg = self.config
        u = unit_hash(cfg.seed, "split", pair.source)
        if u < cfg.test:
            return "test"
        if u < cfg.test + cfg.dev:
            return "dev"
        if not self.has_targets:
            return "rl"  # source-only rows cannot teach by imitation
        v = unit_hash(cfg.seed, "cold_start", pair.source)
        if isinstance(cfg.cold_start, float):
            return "cold_start" if v < cfg.cold_start else "rl"
        if self.cold_start_taken < cfg.cold_start and v < cfg.cold_start_gate:
            self.cold_start_taken += 1
            return "cold_start"
        return "rl"


def few_shot_subset(pairs: list[Pair], size: int, seed: int) -> list[Pair]:
    """The ``size`` rows with the smallest few-shot hash (the same rows for the same data and seed)."""
    ranked = sorted(pairs, key=lambda p: unit_hash(seed, f"few_shot_{size}", p.source))
    chosen = {id(p) for p in ranked[:size]}
    return [p for p in pairs if id(p) in chosen]


def check_disjoint(splits: dict[str, Iterable[Pair]]) -> None:
    """Raise if any source text sits in two splits."""
    owner: dict[str, str] = {}
    for name, pairs in splits.items():
        for pair in pairs:
            other = owner.setdefault(pair.source, name)
            if other != name:
                raise AssertionError(f"row {pair.id!r} is in both {other!r} and {name!r}")
