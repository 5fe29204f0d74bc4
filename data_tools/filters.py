"""Row filters. Nothing is dropped silently: each reason has a counter in the stats.

Lengths are counted in the reward's units and the script checks are the reward's
language check (``semantic_reward.languages.unit_share``). A target (a reference)
must in addition pass it at the reward's purity, so every reference kept here earns
R_lang = 1 when scored against itself; ``filters.min_script_share`` can only make the
check stricter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from semantic_reward.languages import DEFAULT_PURITY, LanguageRegistry, passes_language, unit_share
from semantic_reward.text import text_units

from .config import FilterConfig
from .records import Pair

__all__ = ["RowFilter", "REASONS"]

REASONS = (
    "empty_source",
    "empty_target",
    "wrong_script_source",
    "wrong_script_target",
    "too_short",
    "too_long_source",
    "too_long_target",
    "length_ratio",
    "target_equals_source",
    "duplicate_exact",
    "duplicate_normalized",
)


class RowFilter:
    """Applies ``FilterConfig`` to normalised pairs; ``counts`` holds one counter per reason."""

    def __init__(
        self, config: FilterConfig, source_language: str, target_language: str, reward_purity: float = DEFAULT_PURITY,
        bound_source_length: bool = True,
    ):
        self.config = config
        self.bound_source_length = bound_source_length  # False: sources were truncated to a token budget
        self.target_purity = max(config.min_script_share, reward_purity)
        registry = LanguageRegistry()
        self.source_scripts = registry.get(source_language).scripts
        self.target_scripts = registry.get(target_language).scripts
        self.counts: Counter[str] = Counter(dict.fromkeys(REASONS, 0))
        self._seen_exact: set[tuple[str, str | None]] = set()
        self._seen_normalized: set[tuple[str, str | None]] = set()

    def reason(self, pair: Pair, raw: tuple[str, str | None]) -> str | None:
        """Why this pair is dropped, or None to keep it."""
        cfg = self.config
        src_units = len(text_units(pair.source))
        if not pair.source.strip() or src_units == 0:
            return "empty_source"
        tgt_units = None
        if pair.target is not None:
            tgt_units = len(text_units(pair.target))
            if not pair.target.strip() or tgt_units == 0:
                return "empty_target"
        source_share = unit_share(pair.source, self.source_scripts)
        if not passes_language(source_share, cfg.min_script_share, min_units=int(cfg.min_script_share > 0)):
            return "wrong_script_source"
        if pair.target is not None and not passes_language(
            unit_share(pair.target, self.target_scripts), self.target_purity
        ):
            return "wrong_script_target"
        if src_units < cfg.min_units or (tgt_units is not None and tgt_units < cfg.min_units):
            return "too_short"
        if self.bound_source_length and src_units > cfg.max_source_units:
            return "too_long_source"
        if tgt_units is not None and tgt_units > cfg.max_target_units:
            return "too_long_target"
        if (
            cfg.max_length_ratio is not None
            and tgt_units is not None
            and max(src_units, tgt_units) >= cfg.ratio_min_units
            and max(src_units, tgt_units) / max(min(src_units, tgt_units), 1) > cfg.max_length_ratio
        ):
            return "length_ratio"
        if cfg.drop_target_equals_source and pair.target is not None and pair.target == pair.source:
            return "target_equals_source"
        if cfg.drop_duplicates:
            if raw in self._seen_exact:
                return "duplicate_exact"
            self._seen_exact.add(raw)
            key = (pair.source, pair.target)
            if key in self._seen_normalized:
                return "duplicate_normalized"
            self._seen_normalized.add(key)
        return None

    def apply(self, rows: Iterable[tuple[Pair, tuple[str, str | None]]]) -> Iterator[Pair]:
        for pair, raw in rows:
            why = self.reason(pair, raw)
            if why is None:
                yield pair
            else:
                self.counts[why] += 1
