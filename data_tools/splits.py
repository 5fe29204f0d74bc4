"""Deterministic split assignment that survives appending rows and ignores the direction.

A row is placed by a hash of (seed, the sorted pair of its normalised sides),
never by its position among all rows, so adding rows to a corpus leaves every
existing row where it was, and a pair lands in the same split whether the corpus
is built zh->bo or bo->zh (a test pair of one direction is never a training pair
of the other).

A text must also never sit in two splits (the same source with two references in
train and test would leak). So a row whose source or target already appeared in
an earlier row follows that row's split; a row whose two sides already sit in two
different splits cannot be placed without a leak and is dropped and counted
(``SplitAssigner.conflicts``). Both rules look only at earlier rows and treat the
two sides alike, so appends and the direction still move nothing.

A source cut to a token budget is placed by its whole text (``pair.extra["split_source"]``), so a row's
split does not depend on the tokenizer or the budget: a base model can be prepared on the rows outside
test before the policy's tokenizer exists, with the same code and settings (``data_tools.manifest``).
Every stage that splits a corpus gets its settings as flags from :func:`split_flags`.
"""

from __future__ import annotations

import hashlib
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from semantic_reward.settings import build_dataclass

from .config import SplitConfig
from .records import Pair

__all__ = ["SPLITS", "SPLIT_KEYS", "unit_hash", "pair_key", "SplitAssigner", "few_shot_subset", "check_disjoint",
           "split_flags"]

SPLITS = ("cold_start", "rl", "dev", "test")
_SEP = "\x1e"  # record separator: cannot occur in normalised text (control characters are stripped)
SPLIT_KEYS = ("seed", "test", "dev", "cold_start", "cold_start_gate")
"""The SplitConfig fields a row's split depends on (few-shot sizes only pick subsets of training rows)."""


def unit_hash(seed: int, salt: str, text: str) -> float:
    """A uniform number in [0, 1) from (seed, salt, text)."""
    digest = hashlib.blake2b(f"{seed}\x1f{salt}\x1f{text}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _split_source(pair: Pair) -> str:
    """The source a row is placed by: the whole normalised text, also where the build cut it to a budget."""
    return pair.extra.get("split_source", pair.source)


def pair_key(pair: Pair) -> str:
    """The text a row is hashed by: its two sides in sorted order, so either direction gives the same key."""
    if pair.target is None:
        return _split_source(pair)
    return _SEP.join(sorted((_split_source(pair), pair.target)))


def _texts(pair: Pair) -> tuple[str, ...]:
    source = _split_source(pair)
    return (source,) if pair.target is None else (source, pair.target)


class SplitAssigner:
    """Assigns rows in input order; state: the split of each text seen, and the cold-start count so far."""

    def __init__(self, config: SplitConfig, has_targets: bool = True):
        self.config = config
        self.has_targets = has_targets
        self.cold_start_taken = 0
        self.conflicts = 0  # rows dropped: their two sides already sit in two different splits
        self.followed = 0  # rows placed with an earlier row that shares a side
        self._owner: dict[str, str] = {}

    def __call__(self, pair: Pair) -> str | None:
        """The split of ``pair``, or None when it cannot be placed without a text in two splits."""
        texts = _texts(pair)
        owners = {self._owner[t] for t in texts if t in self._owner}
        if len(owners) > 1:
            self.conflicts += 1
            return None
        if owners:
            name = owners.pop()
            self.followed += 1
            if name == "cold_start":
                self.cold_start_taken += 1
        else:
            name = self._by_hash(pair_key(pair))
        for text in texts:
            self._owner[text] = name
        return name

    def _by_hash(self, key: str) -> str:
        cfg = self.config
        u = unit_hash(cfg.seed, "split", key)
        if u < cfg.test:
            return "test"
        if u < cfg.test + cfg.dev:
            return "dev"
        if not self.has_targets:
            return "rl"  # source-only rows cannot teach by imitation
        v = unit_hash(cfg.seed, "cold_start", key)
        if isinstance(cfg.cold_start, float):
            return "cold_start" if v < cfg.cold_start else "rl"
        if self.cold_start_taken < cfg.cold_start and v < cfg.cold_start_gate:
            self.cold_start_taken += 1
            return "cold_start"
        return "rl"


def few_shot_subset(pairs: list[Pair], size: int, seed: int) -> list[Pair]:
    """The ``size`` rows with the smallest few-shot hash (the same rows for the same data and seed)."""
    ranked = sorted(pairs, key=lambda p: unit_hash(seed, f"few_shot_{size}", pair_key(p)))
    chosen = {id(p) for p in ranked[:size]}
    return [p for p in pairs if id(p) in chosen]


def check_disjoint(splits: dict[str, Iterable[Pair]]) -> None:
    """Raise if any text, source or target, sits in two splits."""
    owner: dict[str, str] = {}
    for name, pairs in splits.items():
        for pair in pairs:
            for text in _texts(pair):
                other = owner.setdefault(text, name)
                if other != name:
                    raise AssertionError(f"row {pair.id!r} is in both {other!r} and {name!r}")


def split_flags(settings: Mapping[str, Any] | SplitConfig, rename: Mapping[str, str] | None = None) -> list[str]:
    """Command-line flags that give a build exactly these split settings (every :data:`SPLIT_KEYS` field).

    The data stage and the encoder tools both take their splits from these flags, so one mapping (the
    profile's ``data``) gives every stage that splits a corpus the same split. ``settings`` may hold only
    some keys (the rest keep SplitConfig's defaults, written out so no tool's own default decides);
    ``rename`` maps a field to another flag name where a tool's parser already uses the usual one.
    """
    if isinstance(settings, SplitConfig):
        config = settings
    else:
        config = build_dataclass(SplitConfig, dict(settings), "splits.")  # an unknown key fails here
    rename = dict(rename or {})
    fields = {f.name: f for f in dataclasses.fields(SplitConfig)}
    flags: list[str] = []
    for key in SPLIT_KEYS:
        name = rename.get(key) or fields[key].metadata.get("flag") or key.replace("_", "-")
        flags += [f"--{name}", str(getattr(config, key))]
    return flags
