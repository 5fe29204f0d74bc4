"""``python -m semantic_reward.encoder_tools train|audit``: build and check the reward encoder.

    python -m semantic_reward.encoder_tools train --model hfl/cino-base-v2 --input pairs.jsonl \\
        --direction zh-bo --out encoders/cino-bo --epochs 1 --batch-size 64
    python -m semantic_reward.encoder_tools audit --encoder cino=encoders/cino-bo/final \\
        --encoder labse=sentence-transformers/LaBSE --input pairs.jsonl --direction zh-bo --out audit/

The corpus flags are fields of ``data_tools.BuildConfig``, the training flags fields of
``EncoderTrainConfig`` and the thresholds fields of ``AuditThresholds``, generated
from those dataclasses with their defaults.

The split flags (``--split-seed --test --dev --cold-start --cold-start-gate``) are the data
stage's split settings: give both the same (``data_tools.splits.split_flags``, as the experiment
does) and the encoder trains on that build's cold_start + rl rows, keeps the checkpoint that scores
best on its dev rows, and is audited on dev (the default): never on the task's test rows. Training
writes ``<out>/final/training_data.json`` and the audit ``<out>/audited_data.json``
(``data_tools.manifest``): the row ids and text hashes each used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..settings import add_flags, build_dataclass, flag_values

# The data_tools settings an encoder corpus needs; the rest keep BuildConfig's defaults.
CORPUS_SETTINGS = ("direction", "input.paths", "input.format", "input.source_field", "input.target_field",
                   "normalize.traditional_to_simplified", "splits.seed", "splits.test", "splits.dev",
                   "splits.cold_start", "splits.cold_start_gate")
# ``--seed`` is the trainer's seed: the split seed is ``--split-seed`` (pass as split_flags(..., rename=...))
SPLIT_FLAG_NAMES = {"seed": "split-seed"}
AUDIT_MANIFEST = "audited_data.json"


def pairs_from_corpus(paths: list[str], direction: str, splits: tuple[str, ...], fmt: str = "auto",
                      source_field: str | None = None, target_field: str | None = None,
                      t2s: bool = False) -> tuple[list[str], list[str]]:
    """(sources, targets) of the given data_tools splits of a corpus."""
    return pairs_from_build({
        "direction": direction,
        "input": {"paths": paths, "format": fmt, "source_field": source_field, "target_field": target_field},
        "normalize": {"traditional_to_simplified": t2s},
    }, splits)


def pairs_from_build(settings: dict[str, Any], splits: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(sources, targets) of the given splits of a data_tools build with these settings."""
    pairs = split_pairs(settings, {"rows": splits})["rows"]
    return [p.source for p in pairs], [p.target for p in pairs]


def split_pairs(settings: dict[str, Any], groups: dict[str, tuple[str, ...]]) -> dict[str, list[Any]]:
    """One data_tools build with these settings -> {group: its pairs (``data_tools.records.Pair``)}."""
    from data_tools import BuildConfig, build

    result = build(BuildConfig.from_mapping(settings), progress=None)
    return {name: [p for split in splits for p in result.splits[split]] for name, splits in groups.items()}


def _manifest_part(role: str, pairs: list[Any], splits: tuple[str, ...], corpus: dict[str, Any]) -> dict[str, Any]:
    from data_tools import BuildConfig
    from data_tools.manifest import manifest_part, pair_rows, split_settings

    config = BuildConfig.from_mapping(corpus)
    return manifest_part(role, pair_rows(pairs), file=", ".join(config.input.paths), splits=splits,
                         split_settings=split_settings(config))


def _corpus_flags(p: argparse.ArgumentParser) -> None:
    from data_tools import BuildConfig

    add_flags(p, BuildConfig, group="corpus", only=CORPUS_SETTINGS, required=("input.paths",),
              flags={f"splits.{k}": v for k, v in SPLIT_FLAG_NAMES.items()},
              helps={"input.paths": "parallel corpus file(s), read with data_tools",
                     "direction": "SRC-TGT; the source side is the anchor by default",
                     "splits.seed": "seed of the split hashes: the data stage's --seed (default: 0)"})


def parser() -> argparse.ArgumentParser:
    from .audit import AuditThresholds
    from .train import EncoderTrainConfig

    ap = argparse.ArgumentParser(prog="python -m semantic_reward.encoder_tools", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="contrastive fine-tuning on parallel pairs")
    _corpus_flags(tr)
    # eval_steps follows save_steps (the trainer keeps the best checkpoint, which needs them aligned).
    add_flags(tr, EncoderTrainConfig, group="train", skip=("eval_steps", "target_language"),
              flags={"output_dir": "out", "learning_rate": "lr"},
              helps={"model": "transformers encoder or sentence-transformers model", "output_dir": "output folder",
                     "anchor": "source or target: which side of each pair is the anchor"})
    au = sub.add_parser("audit", help="can these encoders be trusted as the reward?")
    _corpus_flags(au)
    au.add_argument("--out", required=True, help="output folder")
    au.add_argument("--encoder", action="append", required=True, help="NAME=PATH_OR_HUB_NAME (repeatable)")
    au.add_argument("--splits", nargs="+", default=["dev"],
                    help="data_tools splits to audit on (default: dev; the audit's tau may set the reward, so "
                         "auditing on test would let the test split shape training)")
    au.add_argument("--hypotheses", help="JSONL of a cold-start model's outputs (fields hypothesis, reference) "
                                         "to propose tau from")
    au.add_argument("--tau-percentile", type=float, default=argparse.SUPPRESS,
                    help="percentile of the hypotheses' similarities proposed as tau (default: audit_encoder's)")
    add_flags(au, AuditThresholds, group="thresholds")
    return ap


def train_config_from_args(args: argparse.Namespace, target_language: str) -> Any:
    """The ``EncoderTrainConfig`` of a parsed ``train`` command line.

    ``eval_steps`` follows ``save_steps`` and the targets' language comes from the corpus direction.
    """
    from .train import EncoderTrainConfig

    train = flag_values(args, "train")
    train["target_language"] = target_language
    if "save_steps" in train:
        train["eval_steps"] = train["save_steps"]
    return build_dataclass(EncoderTrainConfig, train, what="encoder training setting")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    corpus = flag_values(args, "corpus")
    try:
        from data_tools import BuildConfig

        target_lang = BuildConfig.from_mapping(corpus).target_language  # a bad setting fails before any work
        if args.command == "train":
            cfg = train_config_from_args(args, target_lang)
        else:
            from .audit import AuditThresholds

            thresholds = build_dataclass(AuditThresholds, flag_values(args, "thresholds"), what="audit setting")
    except ValueError as exc:  # ConfigError, or a check of a dataclass that is not ported yet
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.command == "train":
        from .train import train_encoder

        from data_tools.manifest import MODEL_MANIFEST, write_manifest

        used = split_pairs(corpus, {"train": ("cold_start", "rl"), "selection": ("dev",)})
        src, tgt = [p.source for p in used["train"]], [p.target for p in used["train"]]
        dev_src, dev_tgt = [p.source for p in used["selection"]], [p.target for p in used["selection"]]
        print(f"training on {len(src)} pairs, dev {len(dev_src)} pairs", flush=True)
        final = train_encoder(cfg, src, tgt, dev_src, dev_tgt)
        write_manifest(Path(final) / MODEL_MANIFEST, [
            _manifest_part("train", used["train"], ("cold_start", "rl"), corpus),
            _manifest_part("selection", used["selection"], ("dev",), corpus)],
            what=f"reward encoder fine-tuned from {cfg.model} (checkpoint chosen on the selection rows)")
        selection = Path(cfg.output_dir) / "selection.json"
        if selection.exists():
            kept = json.loads(selection.read_text(encoding="utf-8")).get("best_checkpoint")
            print(f"kept checkpoint: {kept or 'the last one'}")
        print(f"saved {final}")
        return 0

    from ..config import resolve_model_path
    from .audit import audit_encoder, verdict_line, write_reports
    from .train import load_as_sentence_transformer

    from data_tools.manifest import write_manifest

    audited = split_pairs(corpus, {"audit": tuple(args.splits)})["audit"]
    src, tgt = [p.source for p in audited], [p.target for p in audited]
    hyps = None
    if args.hypotheses:
        with open(args.hypotheses, encoding="utf-8") as fh:
            hyps = [(r["hypothesis"], r["reference"]) for r in map(json.loads, fh) if r.get("reference")]
    extra = {"tau_percentile": args.tau_percentile} if "tau_percentile" in vars(args) else {}
    results = {}
    for spec in args.encoder:
        name, _, path = spec.partition("=")
        if not path:
            print(f"error: --encoder wants NAME=PATH, got {spec!r}", file=sys.stderr)
            return 2
        model = load_as_sentence_transformer(resolve_model_path(path))
        results[name] = audit_encoder(model, src, tgt, target_lang, thresholds, hyps, **extra)
        print(verdict_line(name, results[name]), flush=True)
    files = write_reports(results, Path(args.out))
    files["rows"] = str(write_manifest(Path(args.out) / AUDIT_MANIFEST,
                                       [_manifest_part("audit", audited, tuple(args.splits), corpus)],
                                       what=f"rows the encoder audit scored ({', '.join(results)})"))
    print(f"wrote {', '.join(files.values())}")
    return 0


__all__ = ["AUDIT_MANIFEST", "CORPUS_SETTINGS", "SPLIT_FLAG_NAMES", "main", "pairs_from_build", "pairs_from_corpus",
           "parser", "split_pairs", "train_config_from_args"]

if __name__ == "__main__":
    raise SystemExit(main())
