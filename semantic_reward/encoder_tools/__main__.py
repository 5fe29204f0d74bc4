"""``python -m semantic_reward.encoder_tools train|audit``: build and check the reward encoder.

    python -m semantic_reward.encoder_tools train --model hfl/cino-base-v2 --input pairs.jsonl \\
        --direction zh-bo --out encoders/cino-bo --epochs 1 --batch-size 64
    python -m semantic_reward.encoder_tools audit --encoder cino=encoders/cino-bo/final \\
        --encoder labse=sentence-transformers/LaBSE --input pairs.jsonl --direction zh-bo --out audit/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def pairs_from_corpus(paths: list[str], direction: str, splits: tuple[str, ...], fmt: str = "auto",
                      source_field: str | None = None, target_field: str | None = None,
                      t2s: bool = False) -> tuple[list[str], list[str]]:
    """(sources, targets) of the given data_tools splits of a corpus."""
    from data_tools import BuildConfig, build

    cfg = BuildConfig.from_mapping({
        "direction": direction,
        "input": {"paths": paths, "format": fmt, "source_field": source_field, "target_field": target_field},
        "normalize": {"traditional_to_simplified": t2s},
    })
    result = build(cfg, progress=None)
    pairs = [p for split in splits for p in result.splits[split]]
    return [p.source for p in pairs], [p.target for p in pairs]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", nargs="+", required=True, help="parallel corpus file(s), read with data_tools")
    p.add_argument("--direction", default="zh-bo", help="SRC-TGT; the source side is the anchor by default")
    p.add_argument("--format", default="auto")
    p.add_argument("--source-field")
    p.add_argument("--target-field")
    p.add_argument("--t2s", action="store_true", help="Traditional -> Simplified Chinese first")
    p.add_argument("--out", required=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semantic_reward.encoder_tools", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="contrastive fine-tuning on parallel pairs")
    _common(tr)
    tr.add_argument("--model", required=True, help="transformers encoder or sentence-transformers model")
    tr.add_argument("--anchor", default="source", choices=["source", "target"])
    tr.add_argument("--max-length", type=int, default=128)
    tr.add_argument("--epochs", type=float, default=1.0)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--lr", type=float, default=2e-5)
    tr.add_argument("--seed", type=int, default=42)
    tr.add_argument("--hard-negatives", action="store_true")
    tr.add_argument("--save-steps", type=int, default=500)
    au = sub.add_parser("audit", help="can these encoders be trusted as the reward?")
    _common(au)
    au.add_argument("--encoder", action="append", required=True, help="NAME=PATH_OR_HUB_NAME (repeatable)")
    au.add_argument("--splits", nargs="+", default=["test"], help="data_tools splits to audit on")
    au.add_argument("--hypotheses", help="JSONL of a cold-start model's outputs (fields hypothesis, reference) "
                                         "to propose tau from")
    au.add_argument("--tau-percentile", type=float, default=25.0)
    au.add_argument("--min-p-at-1", type=float, default=0.5)
    au.add_argument("--min-auc", type=float, default=0.9)
    au.add_argument("--max-unk-share", type=float, default=0.05)
    args = ap.parse_args(argv)
    source_lang, target_lang = args.direction.split("-")

    if args.command == "train":
        from .train import EncoderTrainConfig, train_encoder

        src, tgt = pairs_from_corpus(args.input, args.direction, ("cold_start", "rl"), args.format,
                                     args.source_field, args.target_field, args.t2s)
        dev_src, dev_tgt = pairs_from_corpus(args.input, args.direction, ("dev",), args.format,
                                             args.source_field, args.target_field, args.t2s)
        cfg = EncoderTrainConfig(model=args.model, output_dir=args.out, anchor=args.anchor, max_length=args.max_length,
                                 epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                                 seed=args.seed, hard_negatives=args.hard_negatives, save_steps=args.save_steps,
                                 eval_steps=args.save_steps)
        print(f"training on {len(src)} pairs, dev {len(dev_src)} pairs", flush=True)
        final = train_encoder(cfg, src, tgt, dev_src, dev_tgt)
        print(f"saved {final}")
        return 0

    from ..config import resolve_model_path
    from .audit import AuditThresholds, audit_encoder, verdict_line, write_reports
    from .train import load_as_sentence_transformer

    src, tgt = pairs_from_corpus(args.input, args.direction, tuple(args.splits), args.format,
                                 args.source_field, args.target_field, args.t2s)
    hyps = None
    if args.hypotheses:
        with open(args.hypotheses, encoding="utf-8") as fh:
            hyps = [(r["hypothesis"], r["reference"]) for r in map(json.loads, fh) if r.get("reference")]
    thresholds = AuditThresholds(args.min_p_at_1, args.min_auc, args.max_unk_share)
    results = {}
    for spec in args.encoder:
        name, _, path = spec.partition("=")
        if not path:
            print(f"error: --encoder wants NAME=PATH, got {spec!r}", file=sys.stderr)
            return 2
        model = load_as_sentence_transformer(resolve_model_path(path))
        results[name] = audit_encoder(model, src, tgt, target_lang, thresholds, hyps, args.tau_percentile)
        print(verdict_line(name, results[name]), flush=True)
    files = write_reports(results, Path(args.out))
    print(f"wrote {', '.join(files.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
