"""Writing a build to disk: parquet for verl, stats as JSON, never half-written.

Layout of an output folder (documented in README):

    rl/{cold_start,rl,dev,test}.parquet     verl RL rows (RLHFDataset)
    sft/{cold_start,rl,dev,test}.parquet    verl SFT rows (MultiTurnSFTDataset, ``messages``)
    sft/train_all.parquet                   cold_start + rl: the "strong SFT" baseline's data
    rl/few_shot_{K}.parquet, sft/few_shot_{K}.parquet   few-shot subsets of the training rows
    stats.json                              counts, filter reasons, length percentiles, settings
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .pipeline import BuildResult
from .splits import SPLITS

__all__ = ["write_build", "write_parquet", "format_stats"]


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_parquet(rows: list[dict[str, Any]], path: Path, schema: pa.Schema | None = None) -> None:
    """Rows -> parquet, written to a temporary name and moved into place."""
    table = pa.Table.from_pylist(rows, schema=schema)
    _atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def _rl_schema() -> pa.Schema:
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([
        ("data_source", pa.string()),
        ("prompt", pa.list_(message)),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", pa.struct([
            ("source", pa.string()), ("target_language", pa.string()), ("source_language", pa.string()),
            ("direction", pa.string()), ("task", pa.string()), ("split", pa.string()),
            ("index", pa.int64()), ("id", pa.string()),
        ])),
    ])


def _sft_schema() -> pa.Schema:
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([("messages", pa.list_(message)), ("data_source", pa.string()), ("id", pa.string())])


def write_build(result: BuildResult, out_dir: str | Path) -> dict[str, str]:
    """Write every split in both formats plus stats.json; returns {name: path}."""
    out = Path(out_dir)
    written: dict[str, str] = {}
    rl_schema, sft_schema = _rl_schema(), _sft_schema()
    has_targets = any(p.target is not None for rows in result.splits.values() for p in rows)
    for split in SPLITS:
        path = out / "rl" / f"{split}.parquet"
        write_parquet(result.rl_rows(split), path, rl_schema)
        written[f"rl/{split}"] = str(path)
        if has_targets:
            path = out / "sft" / f"{split}.parquet"
            write_parquet(result.sft_rows(split), path, sft_schema)
            written[f"sft/{split}"] = str(path)
    if has_targets:
        train_all = result.splits["cold_start"] + result.splits["rl"]
        path = out / "sft" / "train_all.parquet"
        write_parquet(result.sft_rows("rl", train_all), path, sft_schema)
        written["sft/train_all"] = str(path)
    for k, pairs in result.few_shot.items():
        path = out / "rl" / f"few_shot_{k}.parquet"
        write_parquet(result.rl_rows("rl", pairs), path, rl_schema)
        written[f"rl/few_shot_{k}"] = str(path)
        if has_targets:
            path = out / "sft" / f"few_shot_{k}.parquet"
            write_parquet(result.sft_rows("rl", pairs), path, sft_schema)
            written[f"sft/few_shot_{k}"] = str(path)
    stats_path = out / "stats.json"
    text = json.dumps(result.stats, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    _atomic(stats_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    written["stats"] = str(stats_path)
    return written


def format_stats(stats: dict[str, Any]) -> str:
    """The stats as a short printed table."""
    lines = [f"{stats['data_source']}: read {stats['rows_read']}, invalid skipped {stats['invalid_skipped']}, "
             f"filtered {stats['filtered_total']}, kept {stats['kept']}"]
    dropped = {k: v for k, v in stats["filtered"].items() if v}
    if dropped:
        lines.append("  filtered: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    if stats["invalid_reasons"]:
        lines.append("  invalid: " + ", ".join(f"{k} x{v}" for k, v in stats["invalid_reasons"].items()))
    lines.append(f"  {'split':<12}{'rows':>7}{'src p50':>9}{'src p90':>9}{'tgt p50':>9}{'tgt p90':>9}")
    for name, n in stats["splits"].items():
        lens = stats["lengths_in_units"][name]
        cells = [lens[side].get(p, float("nan")) for side in ("source", "target") for p in ("p50", "p90")]
        lines.append(f"  {name:<12}{n:>7}" + "".join(f"{c:>9.1f}" for c in cells))
    for k, n in stats["few_shot"].items():
        lines.append(f"  few_shot_{k:<3}{n:>7}")
    return "\n".join(lines)
