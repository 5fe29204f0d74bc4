"""``python -m semantic_reward.evaluation run CONFIG.yaml [key=value ...]``: evaluate systems, write the report.

    python -m semantic_reward.evaluation run eval.yaml output_dir=outputs/eval systems.grpo.model=ckpt/merged

The YAML holds the settings of ``EvalRunConfig`` (see ``run_config.py``); overrides use
the same dotted names. Writes report.json, report.md, PNGs and each system's generations.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..config import ConfigError
from .inputs import InputError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semantic_reward.evaluation", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="evaluate the systems of a YAML config and write the report")
    run.add_argument("config", help="YAML file with the evaluation settings")
    run.add_argument("overrides", nargs="*", help="key=value settings that replace the YAML's (dotted keys)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    args, extra = ap.parse_known_args(argv)  # overrides may follow options such as --quiet
    if any(x.startswith("-") for x in extra):
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    overrides = list(args.overrides) + extra
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("sacrebleu").setLevel(logging.WARNING)  # its per-test progress lines

    from .run import run_evaluation
    from .run_config import load_config

    bad = [o for o in overrides if "=" not in o]
    if bad:
        print(f"error: overrides must be key=value, got {bad}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, overrides)
        report = run_evaluation(cfg, progress=not args.quiet)
    except (ConfigError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open(f"{cfg.output_dir}/report.md", encoding="utf-8") as fh:
        print(fh.read())
    print(f"wrote {cfg.output_dir}/report.json ({len(report['systems'])} systems)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
