"""python -m semantic_reward.experiment run EXPERIMENT.yaml --profile P [--force STAGE] [--run-name N]

Runs the experiment's stages in order into <runs-root>/<run-name>/: a finished stage is skipped, a
failed one (and everything after it) runs again, --force STAGE redoes STAGE and everything after it,
and a finished stage whose settings changed is refused (use a new --run-name).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .runner import run_experiment
from .spec import ExperimentError, load_experiment
from .stages import StageFailed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semantic_reward.experiment", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or continue) an experiment")
    run.add_argument("experiment", type=Path, help="experiment YAML, e.g. recipes/experiments/mt_zh_bo.yaml")
    run.add_argument("--profile", required=True, help="scale profile in recipes/profile/ (cpu-tiny, paper, ...)")
    run.add_argument("--run-name", help="run folder name (default: <experiment>-<profile>)")
    run.add_argument("--runs-root", type=Path, default=Path("outputs/runs"), help="folder of run folders")
    run.add_argument("--force", metavar="STAGE", help="redo STAGE and every stage after it")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="override a value of the experiment or profile, e.g. profile.model=PATH (repeatable)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    name = args.run_name or f"{args.experiment.stem}-{args.profile}"
    try:
        exp = load_experiment(args.experiment, args.profile, (args.runs_root / name).resolve(), args.sets)
        run_experiment(exp, force=args.force)
    except (ExperimentError, StageFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"done: {exp.run_dir / 'stages.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
