"""The build: read -> extract -> normalise -> filter -> split -> prompts.

Pure in-memory; ``writers`` puts the result on disk, ``verl_dataset`` hands it to
verl directly. Same input and seed give the same result, row for row.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from semantic_reward.languages import canonical_language
from semantic_reward.text import text_units
from semantic_reward.settings import to_plain
from semantic_reward.keys import DECOY_REFERENCE_KEY, DECOY_SOURCE_KEY, LANGUAGE_KEY, SOURCE_KEY

from .config import BuildConfig
from .errors import InputError
from .filters import RowFilter
from .normalize import Normalizer
from .prompts import PromptBuilder
from .readers import read_rows
from .records import Pair, RawRow
from .splits import SPLITS, SplitAssigner, check_disjoint, few_shot_subset
from .tokens import Truncator, measure_lengths, tokenizer_for

__all__ = ["BuildResult", "build", "extract_pairs"]

ABILITY = {"mt": "translation", "headline": "headline_generation"}


def with_decoys(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RL rows with a decoy: the reference and source of the next row (cyclically) of another prompt.

    The reward scores each output against its decoy too, a diagnostic that never enters
    the reward (``semantic_reward.diagnostics``): a gain that does not depend on the
    reference earns as much against the decoy. "Another prompt" means another source and
    another reference; a row for which the file has none gets no decoy (None).
    """
    out = []
    n = len(rows)
    for i, row in enumerate(rows):
        reference, source = row["reward_model"].get("ground_truth"), row["extra_info"].get(SOURCE_KEY)
        decoy = next((rows[(i + k) % n] for k in range(1, n)
                      if rows[(i + k) % n]["extra_info"].get(SOURCE_KEY) != source
                      and (reference is None or rows[(i + k) % n]["reward_model"].get("ground_truth") != reference)),
                     None)
        extra = dict(row["extra_info"])
        extra[DECOY_REFERENCE_KEY] = decoy["reward_model"].get("ground_truth") if decoy else None
        extra[DECOY_SOURCE_KEY] = decoy["extra_info"].get(SOURCE_KEY) if decoy else None
        out.append({**row, "extra_info": extra})
    return out


@dataclass
class BuildResult:
    config: BuildConfig
    splits: dict[str, list[Pair]]
    few_shot: dict[int, list[Pair]]
    stats: dict[str, Any]
    prompts: PromptBuilder = field(repr=False, default=None)  # type: ignore[assignment]

    def rl_rows(self, split: str, pairs: list[Pair] | None = None) -> list[dict[str, Any]]:
        """verl RL rows (``RLHFDataset``): prompt messages, reward_model, extra_info (with a decoy, ``with_decoys``)."""
        cfg = self.config
        pairs = self.splits[split] if pairs is None else pairs
        rows = []
        for index, pair in enumerate(pairs):
            rows.append({
                "data_source": self.stats["data_source"],
                "prompt": self.prompts.messages(pair.source),
                "ability": ABILITY[cfg.task],
                "reward_model": {"style": "model", "ground_truth": pair.target},
                "extra_info": {
                    SOURCE_KEY: pair.source,
                    LANGUAGE_KEY: cfg.target_language,
                    "source_language": cfg.source_language,
                    "direction": cfg.direction,
                    "task": str(cfg.task),
                    "split": split,
                    "index": index,
                    "id": pair.id,
                },
            })
        return with_decoys(rows)

    def sft_rows(self, split: str, pairs: list[Pair] | None = None) -> list[dict[str, Any]]:
        """verl SFT rows (``MultiTurnSFTDataset``): the prompt plus the reference as the assistant turn."""
        pairs = self.splits[split] if pairs is None else pairs
        return [
            {"messages": [*self.prompts.messages(p.source), {"role": "assistant", "content": p.target}],
             "data_source": self.stats["data_source"], "id": p.id}
            for p in pairs
            if p.target is not None
        ]


def _field(row: RawRow, name: str, required: bool) -> str | None:
    if name not in row.fields:
        if not required:
            return None
        raise InputError(f"no field {name!r}; the row has {sorted(row.fields)}", row.path, row.line, name)
    value = row.fields[name]
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {type(value).__name__}", row.path, row.line, name)
    return value


def extract_pairs(config: BuildConfig, rows: Iterator[RawRow], invalid: Counter) -> Iterator[Pair]:
    """RawRow -> Pair; a malformed row raises unless ``skip_invalid``, which counts it."""
    need_target = not config.input.source_only and config.input.format != "text"
    for row in rows:
        try:
            source = _field(row, config.source_field, True)
            target = _field(row, config.target_field, need_target) if need_target else None
            raw_id = row.fields.get(config.input.id_field)
        except InputError as exc:
            if not config.input.skip_invalid:
                raise
            invalid[f"field {exc.field!r}: {str(exc).split(': ', 1)[-1].split(' (field')[0]}"] += 1
            continue
        row_id = str(raw_id) if raw_id is not None else f"{os.path.basename(row.path)}:{row.line}"
        yield Pair(row_id, source, target, row.path, row.line)


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    arr = np.asarray(values)
    return {"count": int(arr.size), "p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
            "p99": float(np.percentile(arr, 99)), "max": int(arr.max())}


def build(config: BuildConfig, progress: bool | None = None, tokenizer: Any = None) -> BuildResult:
    """Run the whole pipeline; raises ``InputError`` on bad input (unless skipped).

    ``tokenizer`` is the policy's tokenizer object where the caller has one (verl's, in
    ``data.raw_corpus``); ``tokens.tokenizer`` names one to load instead and wins.
    """
    prompts = PromptBuilder(config)  # a bad template fails before any reading
    tok = tokenizer_for(config.tokens, tokenizer)  # a missing tokenizer fails before any reading too
    budget = config.tokens.source_tokens
    truncator = Truncator(tok[0], budget) if tok is not None and budget is not None else None
    normalizer = Normalizer(config.normalize)
    src_zh = canonical_language(config.source_language) == "chinese"
    tgt_zh = canonical_language(config.target_language) == "chinese"
    # with a token budget, a long source is truncated (and counted), never dropped for its length
    row_filter = RowFilter(config.filters, config.source_language, config.target_language,
                           bound_source_length=truncator is None)
    has_targets = not config.input.source_only and config.input.format != "text"
    assigner = SplitAssigner(config.splits, has_targets=has_targets)
    invalid: Counter[str] = Counter()
    read = 0

    def normalised() -> Iterator[tuple[Pair, tuple[str, str | None]]]:
        nonlocal read
        rows = read_rows(config.input, config.source_field, config.target_field, invalid)
        bar = tqdm(rows, desc="reading", unit=" rows", disable=None if progress is None else not progress, mininterval=0.5)
        for pair in extract_pairs(config, bar, invalid):
            read += 1
            raw = (pair.source, pair.target)
            pair.source = normalizer(pair.source, chinese=src_zh)
            if truncator is not None:
                pair.extra["split_source"] = pair.source  # the split follows the whole text, not the budget
                pair.source = truncator(pair.source)
            if pair.target is not None:
                pair.target = normalizer(pair.target, chinese=tgt_zh)
            yield pair, raw

    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for pair in row_filter.apply(normalised()):
        name = assigner(pair)
        if name is not None:  # None: its two sides already sit in two splits (counted as split_conflict)
            splits[name].append(pair)
    check_disjoint(splits)
    train = splits["cold_start"] + splits["rl"]
    few_shot = {k: few_shot_subset(train, k, config.splits.seed) for k in config.splits.few_shot}

    first = config.input.hf_name if config.input.format == "hf" else config.input.paths[0]
    corpus = config.data_source or Path(str(first)).stem.replace(".", "_")
    task_tag = config.direction if config.task == "mt" else str(config.task)
    stats = {
        "data_source": config.data_source or f"{corpus}/{task_tag}",
        "task": str(config.task),
        "direction": config.direction,
        "inputs": list(config.input.paths) or [config.input.hf_name],
        "rows_read": read + sum(invalid.values()),
        "invalid_skipped": sum(invalid.values()),
        "invalid_reasons": dict(sorted(invalid.items())),
        "filtered": {**row_filter.counts, "split_conflict": assigner.conflicts},
        "filtered_total": sum(row_filter.counts.values()) + assigner.conflicts,
        "kept": sum(len(v) for v in splits.values()),
        "splits": {name: len(rows) for name, rows in splits.items()},
        "few_shot": {str(k): len(v) for k, v in few_shot.items()},
        "lengths_in_units": {
            name: {
                "source": _percentiles([len(text_units(p.source)) for p in rows]),
                "target": _percentiles([len(text_units(p.target)) for p in rows if p.target is not None]),
            }
            for name, rows in splits.items()
        },
        "settings": _settings_dict(config),
    }
    if truncator is not None:
        stats["truncation"] = truncator.counts.stats(tok[1], budget)
    if tok is not None:
        kept = [p for rows in splits.values() for p in rows]
        stats["lengths_in_tokens"] = measure_lengths(tok[0], tok[1], [prompts.messages(p.source) for p in kept],
                                                     [p.target for p in kept], config.tokens.enable_thinking)
    return BuildResult(config, splits, few_shot, stats, prompts)


def _settings_dict(config: BuildConfig) -> dict[str, Any]:
    return to_plain(config)
