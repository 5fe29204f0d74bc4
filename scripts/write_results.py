"""Write a run's numbers into the docs from the run itself: docs/results.md and README's summary block.

    python scripts/write_results.py outputs/quickstart            # rewrite docs/results.md and the README block
    python scripts/write_results.py outputs/quickstart --check    # exit 1 if either is out of date

Every number that describes a run comes from that run's ``report.json`` and ``stages.json``; none is typed
by hand. README.md carries only a short summary between ``<!-- results:start -->`` and
``<!-- results:end -->`` (the text outside the markers is left as it is) and links to docs/results.md, which
this script writes whole. Rerun it after every run whose numbers the docs should show.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START, END = "<!-- results:start -->", "<!-- results:end -->"

# report.json files written before the similarity columns were named by their encoder (semantic_similarity
# then was always the reward encoder's)
OLD_KEYS = {"semantic_similarity": "reward_encoder_similarity"}


class ResultsError(Exception):
    """A run folder or README this script cannot use; the message names the file."""


def _read_json(path: Path, required: bool) -> Any:
    if not path.is_file():
        if required:
            raise ResultsError(f"{path}: not found (is this a finished run folder?)")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from exc


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The run's report (old similarity keys renamed) and its stage records by name."""
    report = _read_json(run_dir / "report.json", required=True)
    if not isinstance(report, dict) or not isinstance(report.get("systems"), dict):
        raise ResultsError(f"{run_dir / 'report.json'}: no 'systems' object")
    for vals in report["systems"].values():
        for old, new in OLD_KEYS.items():
            if old in vals and new not in vals:
                vals[new] = vals.pop(old)
    stages = _read_json(run_dir / "stages.json", required=False) or []
    if not isinstance(stages, list):
        raise ResultsError(f"{run_dir / 'stages.json'}: expected a list of stage records")
    return report, {r["name"]: r for r in stages if isinstance(r, dict) and "name" in r}


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _p(value: Any) -> str:
    return "not tested" if value is None else _num(value, 4)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _stage_lines(stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not stages:
        return ["No stages.json in the run folder: no stage times."]
    lines = ["| stage | status | seconds |", "|---|---|---|"]
    lines += [f"| {n} | {r.get('status', '-')} | {_num(r.get('seconds'), 1)} |" for n, r in stages.items()]
    total = sum(r["seconds"] for r in stages.values() if isinstance(r.get("seconds"), int | float))
    lines += ["", f"Stages together: {total:.0f} s."]
    return lines


def _audit_lines(stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    audit = (stages.get("encoder_audit") or {}).get("audit")
    if not isinstance(audit, dict):
        return []
    lines = ["", "## Reward encoder audit", "", f"Verdict: **{audit.get('verdict', '-')}**."]
    lines += [f"- {r}" for r in audit.get("verdict_reasons") or []]
    numbers = [(k, v) for k, v in audit.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    if numbers:
        lines += ["", "| measure | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in numbers]
    return lines


def _table_lines(report: Mapping[str, Any]) -> list[str]:
    from semantic_reward.evaluation.report import METRIC_LABELS, similarity_note

    systems = report["systems"]
    metrics = [m for m in METRIC_LABELS if any(m in s for s in systems.values())]
    lines = [f"Test split: {report.get('examples')} examples, {report.get('source_language')} -> "
             f"{report.get('target_language')}. {similarity_note(report)}", "",
             "| system | " + " | ".join(METRIC_LABELS[m] for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    lines += [f"| {n} | " + " | ".join(_num(v.get(m), 4) for m in metrics) + " |" for n, v in systems.items()]
    return lines


def _checks_lines(report: Mapping[str, Any]) -> list[str]:
    from semantic_reward.evaluation.report import output_flag

    checks = (report.get("output_checks") or {}).get("systems")
    if not checks:
        return ["", "This report has no output checks (written before they existed)."]
    lines = ["", "## Output checks", "", "| system | distinct outputs / prompts | most common output's share | flag |",
             "|---|---|---|---|"]
    lines += [f"| {n} | {c['distinct_outputs']} / {c['prompts']} | {c['top_output_share']:.2f} | "
              f"{output_flag(c) or 'none'} |" for n, c in checks.items()]
    return lines


def _significance_lines(report: Mapping[str, Any]) -> list[str]:
    from semantic_reward.evaluation.report import significance_table

    sig = report.get("significance")
    if not sig or not sig.get("systems"):
        return []
    lines = ["", "## Paired tests", "", f"Against `{sig['reference']}` (difference = system - reference).", "",
             *significance_table(sig)]
    untested = sig.get("untested") or {}
    if untested:
        lines += ["", "Not tested:", ""] + [f"- {n}: {why}" for n, why in untested.items()]
    return lines


def _grpo_lines(report: Mapping[str, Any], stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    from semantic_reward.evaluation.trend import format_trend

    grpo = stages.get("grpo") or {}
    steps = grpo.get("steps") or []
    trend = report.get("reward_trend")
    hacking = report.get("reward_hacking")
    if not steps and not trend and not hacking:
        return []
    lines = ["", "## GRPO training", ""]
    if isinstance(grpo.get("tau"), dict):
        lines.append(f"tau {grpo['tau']['value']:.3f} ({grpo['tau'].get('label', '')}).")
    if steps:
        rewards = " ".join(f"{s['reward_mean']:.3f}" for s in steps if "reward_mean" in s)
        lines.append(f"Training reward per step ({len(steps)} steps): {rewards}.")
    if trend:
        lines += ["", f"Trend: {format_trend(trend)}."]
        if trend.get("method"):
            lines.append(f"Test: {trend['method']}.")
    for v in grpo.get("validation") or []:
        if v.get("score_mean") is not None:
            lines.append(f"- validation at step {v['step']}: mean reward {v['score_mean']:.3f} on {v['rows']} dev "
                         "prompts")
    if isinstance(hacking, dict) and hacking.get("verdict"):
        lines += ["", f"Reward hacking check: **{hacking['verdict']}.** {hacking.get('summary', '')}"]
        lines += [f"- {r}" for r in hacking.get("reasons") or []]
    return lines


def results_markdown(run_dir: Path, report: Mapping[str, Any], stages: Mapping[str, Mapping[str, Any]]) -> str:
    """docs/results.md: every number from the run folder."""
    started = (next(iter(stages.values()), {}) or {}).get("started")
    lines = [f"# Results of `{_shown(run_dir)}`", "",
             f"Generated by `scripts/write_results.py` from `{_shown(run_dir)}` (report.json, stages.json)"
             + (f"; run started {started}" if started else "") + ". Do not edit: rerun the script.", "",
             "## Stages", ""]
    lines += _stage_lines(stages) + _audit_lines(stages) + ["", "## Evaluation", ""] + _table_lines(report)
    lines += _checks_lines(report) + _significance_lines(report) + _grpo_lines(report, stages)
    return "\n".join(lines) + "\n"


def _quality_summary(report: Mapping[str, Any]) -> str:
    from semantic_reward.evaluation.report import METRIC_LABELS

    quality = report.get("quality_metric") or "chrf"
    cells = ", ".join(f"{n} {_num(v.get(quality), 4)}" for n, v in report["systems"].items())
    return f"{METRIC_LABELS.get(quality, quality)} on the test split ({report.get('examples')} examples): {cells}."


def _paired_and_drift(report: Mapping[str, Any]) -> list[str]:
    """The task metric's paired differences against the reference system, and the drift from the base."""
    from semantic_reward.evaluation.report import METRIC_LABELS

    quality = report.get("quality_metric") or "chrf"
    sig = report.get("significance") or {}
    out = []
    tested = [(n, per[quality]) for n, per in (sig.get("systems") or {}).items()
              if quality in per and per[quality].get("p_value_bootstrap") is not None]
    if tested:
        cells = ", ".join(f"{n} {r['difference']:+.4f} (p {_p(r['p_value_bootstrap'])})" for n, r in tested)
        out.append(f"{METRIC_LABELS.get(quality, quality)} against {sig.get('reference')} (paired bootstrap): {cells}.")
    drift = [(n, v["nll_increase_mean"]) for n, v in report["systems"].items()
             if isinstance(v.get("nll_increase_mean"), int | float)]
    if drift:
        out.append(f"Drift from the base on {report.get('drift_passages')} held-out passages, mean NLL increase per "
                   "token: " + ", ".join(f"{n} {_num(d)}" for n, d in drift) + ".")
    return out


def summary_block(run_dir: Path, doc: Path, report: Mapping[str, Any], stages: Mapping[str, Mapping[str, Any]]) -> str:
    """README's few generated lines, markers included."""
    from semantic_reward.evaluation.report import output_flag

    lines = [START, f"<!-- generated by scripts/write_results.py from {_shown(run_dir)}; do not edit -->"]
    total = sum(r["seconds"] for r in stages.values() if isinstance(r.get("seconds"), int | float))
    if stages:
        lines.append(f"Run `{_shown(run_dir)}`: {len(stages)} stages in {total:.0f} s. {_quality_summary(report)}")
    else:
        lines.append(f"Run `{_shown(run_dir)}`: {_quality_summary(report)}")
    checks = (report.get("output_checks") or {}).get("systems") or {}
    flagged = [f"{n} ({output_flag(c)})" for n, c in checks.items() if output_flag(c)]
    if flagged:
        lines.append("Flagged outputs: " + "; ".join(flagged) + ".")
    untested = (report.get("significance") or {}).get("untested") or {}
    if untested:
        lines.append(f"Without a paired test: {', '.join(untested)}.")
    lines += _paired_and_drift(report)
    trend = report.get("reward_trend")
    if trend:
        p = trend.get("p_rise")
        test = ("not tested (too few effective steps)" if p is None else f"one-sided p of a rise {p:.3g}"
                + (", autocorrelation-corrected" if "effective_steps" in trend else ", steps treated as independent"))
        lines.append(f"GRPO reward {trend['first_mean']:.3f} -> {trend['last_mean']:.3f} (first vs last "
                     f"{int(trend['window'])} steps), {test}.")
    hacking = report.get("reward_hacking")
    if isinstance(hacking, dict) and hacking.get("verdict"):
        lines.append(f"Reward-hacking check: {hacking['verdict']}.")
    lines += [f"All numbers: [{_shown(doc)}]({_shown(doc)}).", END]
    return "\n".join(lines)


def replace_block(text: str, block: str, path: Path) -> str:
    """``text`` with the part from START to END (markers included) replaced by ``block``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ResultsError(f"{path}: needs exactly one {START} line followed by one {END} line where the "
                           "generated summary goes")
    head, rest = text.split(START, 1)
    return head + block + rest.split(END, 1)[1]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="a finished run folder (report.json, stages.json)")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "results.md")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = ap.parse_args(argv)
    try:
        report, stages = read_run(args.run_dir)
        doc_text = results_markdown(args.run_dir, report, stages)
        readme_old = args.readme.read_text(encoding="utf-8") if args.readme.is_file() else None
        if readme_old is None:
            raise ResultsError(f"{args.readme}: not found")
        readme_new = replace_block(readme_old, summary_block(args.run_dir, args.doc, report, stages), args.readme)
    except ResultsError as exc:
        print(f"write_results: {exc}", file=sys.stderr)
        return 2
    doc_old = args.doc.read_text(encoding="utf-8") if args.doc.is_file() else None
    stale = [p for p, old, new in ((args.doc, doc_old, doc_text), (args.readme, readme_old, readme_new)) if old != new]
    if args.check:
        for p in stale:
            print(f"out of date: {p}", file=sys.stderr)
        return 1 if stale else 0
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(doc_text, encoding="utf-8")
    args.readme.write_text(readme_new, encoding="utf-8")
    print(f"wrote {args.doc} and the summary in {args.readme} from {args.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
