"""``python -m data_tools``: build verl RL/SFT parquet from a raw corpus.

    python -m data_tools mt --input ../shared/data/bo_zh_news.jsonl --direction zh-bo --out DIR
    python -m data_tools mt --input ../shared/data/bo_zh_news.jsonl --direction bo-zh --out DIR
    python -m data_tools headline --input ../shared/data/bo_title_generation.jsonl --out DIR --few-shot 100
    python -m data_tools mt --input zh.txt --format text --direction zh-bo --out DIR   # source-only
    python -m data_tools headline --input passages.jsonl --tokenizer Qwen/Qwen3-4B --out DIR   # 2,048-token passages
    python -m data_tools lengths DIR/stats.json [--max-prompt-length N]   # recipe lengths from the measured tokens

Every flag but --out and --quiet is a field of ``BuildConfig`` (generated from it,
with its default); ``data.raw_corpus`` in a recipe takes the same settings.
"""

from __future__ import annotations

import argparse
import sys
import time

from semantic_reward.settings import add_flags, flag_values

from .config import BuildConfig, ConfigError, Task, task_defaults
from .errors import DataToolsError, os_cause
from .lengths import check_lengths, load_stats
from .pipeline import build
from .writers import format_stats, write_build

_TASK_HELP = {Task.mt: "translation, either direction", Task.headline: "Tibetan text -> headline"}


def _dotted(mapping: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m data_tools", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="task", required=True)
    for task in Task:
        p = sub.add_parser(task.value, help=_TASK_HELP[task])
        p.add_argument("--out", required=True, help="output folder")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--allow-empty", action="store_true",
                       help="write even when a split the recipes need (rl, cold_start, dev, test) is empty (warns)")
        add_flags(p, BuildConfig, group="build", skip=("task",), defaults=_dotted(task_defaults(task)))
    lengths = sub.add_parser("lengths", help="propose or check recipe lengths from a build's stats.json")
    lengths.add_argument("stats", help="stats.json of a build made with --tokenizer")
    for key in ("max_prompt_length", "max_response_length", "max_length"):
        lengths.add_argument(f"--{key.replace('_', '-')}", type=int, default=None,
                             help=f"check this data.{key} of a recipe against the measured tokens")
    return ap


def lengths_main(args: argparse.Namespace) -> int:
    """Print the proposed lengths; check the given ones (exit 1 when one loses more than 1% of the rows)."""
    try:
        stats = load_stats(args.stats)
    except DataToolsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    values = {f"data.{k}": getattr(args, k) for k in ("max_prompt_length", "max_response_length", "max_length")}
    report = check_lengths(stats, values)
    measured = stats["lengths_in_tokens"]
    print(f"{stats.get('data_source')}: tokens measured with {measured['tokenizer']}")
    for name in ("prompt", "reference", "sft"):
        m = measured[name]
        if m.get("count"):
            print(f"  {name:<10} p50 {m['p50']:>7.0f}  p90 {m['p90']:>7.0f}  p99 {m['p99']:>7.0f}  max {m['max']:>7}")
    print("proposed (fits every row): " + ", ".join(f"{k}={v}" for k, v in report.proposed.items()))
    for line in report.warnings:
        print(f"WARN  {line}")
    for line in report.errors:
        print(f"FAIL  {line}")
    return 1 if report.errors else 0


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    """The BuildConfig of a parsed command line: the given flags over the task's defaults."""
    return BuildConfig.from_mapping({"task": args.task, **flag_values(args, "build")})


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.task == "lengths":
        return lengths_main(args)
    try:
        config = config_from_args(args)
        start = time.perf_counter()
        result = build(config, progress=False if args.quiet else None)
        written = write_build(result, args.out, allow_empty=args.allow_empty)
    except (ConfigError, DataToolsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # anything not caught closer to its cause: still one line with the path
        print(f"error: {exc.filename or args.out}: {os_cause(exc)}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(format_stats(result.stats))
    rate = result.stats["rows_read"] / seconds if seconds > 0 else float("inf")
    print(f"{result.stats['rows_read']} rows in {seconds:.2f} s ({rate:,.0f} rows/s); wrote {len(written)} files to {args.out}")
    return 0
