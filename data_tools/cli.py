"""``python -m data_tools``: build verl RL/SFT parquet from a raw corpus.

    python -m data_tools mt --input ../shared/data/bo_zh_news.jsonl --direction zh-bo --out DIR
    python -m data_tools mt --input ../shared/data/bo_zh_news.jsonl --direction bo-zh --out DIR
    python -m data_tools headline --input ../shared/data/bo_title_generation.jsonl --out DIR --few-shot 100
    python -m data_tools mt --input zh.txt --format text --direction zh-bo --out DIR   # source-only
"""

from __future__ import annotations

import argparse
import sys
import time

from .config import FORMATS, BuildConfig, ConfigError
from .errors import DataToolsError, os_cause
from .pipeline import build
from .writers import format_stats, write_build


def _cold_start(value: str) -> int | float:
    number = float(value)
    return number if number < 1 else int(number)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m data_tools", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="task", required=True)
    for task, help_text in (("mt", "translation, either direction"), ("headline", "Tibetan text -> headline")):
        p = sub.add_parser(task, help=help_text)
        src = p.add_argument_group("input")
        src.add_argument("--input", nargs="+", default=[], help="input file(s)")
        src.add_argument("--target-input", nargs="+", default=[], help="target-language files for --format aligned")
        src.add_argument("--format", default="auto", choices=FORMATS)
        src.add_argument("--source-field", help="default: the source language code (mt) or 'text' (headline)")
        src.add_argument("--target-field", help="default: the target language code (mt) or 'title' (headline)")
        src.add_argument("--id-field", default="id")
        src.add_argument("--source-only", action="store_true", help="no targets: RL rows for source-grounded reward")
        src.add_argument("--hf-name", help="Hugging Face dataset name or local path (with --format hf)")
        src.add_argument("--hf-config")
        src.add_argument("--hf-split", default="train")
        src.add_argument("--skip-invalid", action="store_true", help="skip and count malformed rows instead of failing")
        p.add_argument("--direction", default="zh-bo" if task == "mt" else "bo-bo", help="SRC-TGT language codes")
        p.add_argument("--out", required=True, help="output folder")
        p.add_argument("--data-source", help="value of the data_source column (default: <file stem>/<task>)")
        n = p.add_argument_group("normalisation")
        n.add_argument("--keep-nbsp-tsheg", action="store_true", help="keep U+0F0C instead of mapping it to U+0F0B")
        n.add_argument("--t2s", action="store_true", help="convert Traditional Chinese to Simplified (OpenCC)")
        f = p.add_argument_group("filters")
        f.add_argument("--max-source-units", type=int, default=1024)
        f.add_argument("--max-target-units", type=int, default=1024)
        f.add_argument("--max-length-ratio", type=float, default=4.0 if task == "mt" else None,
                       help="drop pairs whose longer side exceeds this many times the shorter (mt default 4)")
        f.add_argument("--min-script-share", type=float, default=0.8)
        s = p.add_argument_group("splits")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--test", type=float, default=0.05, help="fraction for test")
        s.add_argument("--dev", type=float, default=0.05, help="fraction for dev")
        s.add_argument("--cold-start", type=_cold_start, default=5000,
                       help="cold-start SFT rows (integer) or fraction (< 1); default 5000 as in the paper")
        s.add_argument("--few-shot", type=int, nargs="*", default=[], help="few-shot subset sizes, e.g. 1000")
        pr = p.add_argument_group("prompts")
        pr.add_argument("--instruction-language", default="zh", choices=["zh", "en", "bo"])
        pr.add_argument("--system-prompt")
        pr.add_argument("--templates", help="YAML file of prompt templates (default: data_tools/prompts.yaml)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--allow-empty", action="store_true",
                       help="write even when a split the recipes need (rl, cold_start, dev, test) is empty (warns)")
    return ap


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    return BuildConfig.from_mapping({
        "task": args.task,
        "direction": args.direction,
        "data_source": args.data_source,
        "input": {
            "paths": args.input, "format": args.format, "target_paths": args.target_input,
            "source_field": args.source_field, "target_field": args.target_field, "id_field": args.id_field,
            "source_only": args.source_only, "hf_name": args.hf_name, "hf_config": args.hf_config,
            "hf_split": args.hf_split, "skip_invalid": args.skip_invalid,
        },
        "normalize": {"tsheg": not args.keep_nbsp_tsheg, "traditional_to_simplified": args.t2s},
        "filters": {
            "max_source_units": args.max_source_units, "max_target_units": args.max_target_units,
            "max_length_ratio": args.max_length_ratio, "min_script_share": args.min_script_share,
        },
        "splits": {"seed": args.seed, "test": args.test, "dev": args.dev, "cold_start": args.cold_start,
                   "few_shot": args.few_shot},
        "prompts": {"instruction_language": args.instruction_language, "system_prompt": args.system_prompt,
                    "templates_file": args.templates},
    })


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
