"""The comparison report: report.json, report.md and PNGs.

PNGs: task quality against alignment tax (one point per system; x = drift from the
base or CMRC F1 drop, y = the task metric: chrF++ for translation, ROUGE-L for headlines,
never an embedding similarity), one bar chart per metric, the per-token NLL-increase
distributions, and the GRPO reward curve with its components when given.

The report says what each number is: the reward encoder's similarity is labelled as the
score GRPO optimised, systems whose outputs collapsed to one string (or equal another
system's) are flagged and carry no p-value, and the reward trend names its test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import EVAL_SIMILARITY, REWARD_SIMILARITY
from .hacking import hacking_markdown, hacking_plot, is_diagnostic
from .inputs import InputError
from .trend import format_trend

__all__ = ["write_report", "read_reward_curve", "label_groups", "METRIC_LABELS", "output_flag", "similarity_note"]

METRIC_LABELS = {
    "bleu": "BLEU-4", "chrf": "chrF++", "rouge_l": "ROUGE-L",
    REWARD_SIMILARITY: "reward-encoder sim. (not independent)", EVAL_SIMILARITY: "eval-encoder sim. (independent)",
    "language_consistency": "lang. consistent", "cmrc_em": "CMRC EM", "cmrc_f1": "CMRC F1", "cmrc_avg": "CMRC Avg",
    "nll_increase_mean": "NLL incr. mean", "nll_increase_p90": "NLL incr. P90", "kl_p90": "token KL P90",
}
TASK_METRICS = ("bleu", "chrf", "rouge_l")  # what the quality axis may show (never an embedding similarity)


def read_reward_curve(path: str | Path) -> list[dict[str, float]]:
    """A JSON list of {step, reward_mean, <component>: mean}, checked row by row, sorted by step."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the reward curve ({exc})") from exc
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{path}: the reward curve must be a non-empty JSON list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"{path}, item {i}: expected an object, got {type(row).__name__}")
        for key, value in row.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise InputError(f"{path}, item {i}: field {key!r} must be a finite number, got {value!r}")
        for key in ("step", "reward_mean"):
            if key not in row:
                raise InputError(f"{path}, item {i}: field {key!r} is missing")
    return sorted(rows, key=lambda r: r["step"])


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) and not isinstance(value, bool) else ""


def output_flag(check: Mapping[str, Any]) -> str:
    """A system's output check in words: '' when its outputs vary with the prompt and match no other system's."""
    flags = []
    if check.get("constant"):
        flags.append("constant: one output for every prompt")
    elif check.get("prompt_independent"):
        flags.append(f"prompt-independent: one output answers {check['top_output_share']:.0%} of the prompts")
    if check.get("identical_to"):
        flags.append("byte-identical to " + ", ".join(check["identical_to"]))
    return "; ".join(flags)


def similarity_note(report: Mapping[str, Any]) -> str:
    """What the similarity column(s) measure, for the report's first lines."""
    enc, ev = report.get("encoder"), report.get("eval_encoder")
    parts = []
    if ev:
        parts.append(f"{METRIC_LABELS[EVAL_SIMILARITY]} is the cosine under `{ev}`, an encoder that is not the "
                     "reward's")
    if enc:
        parts.append(f"{METRIC_LABELS[REWARD_SIMILARITY]} is the cosine under the reward encoder `{enc}`, the score "
                     "GRPO optimised: it rises with reward hacking and is no independent measure of quality"
                     + ("" if ev else " (no eval_encoder set)"))
    return "; ".join(parts) + "." if parts else "No embedding similarity (no encoder set)."


def _p_cell(r: Mapping[str, Any], key: str) -> str:
    return f"{r[key]:.4f}" if isinstance(r.get(key), int | float) else "not tested"


def significance_table(sig: Mapping[str, Any]) -> list[str]:
    """The paired tests as a markdown table (report.md and docs/results.md show the same one)."""
    lines = ["| system | metric | difference | p (paired bootstrap) | p (approx. randomisation) |",
             "|---|---|---|---|---|"]
    for name, per_metric in sig["systems"].items():
        for metric, r in per_metric.items():
            lines.append(f"| {name} | {METRIC_LABELS.get(metric, metric)} | {r['difference']:+.4f} | "
                         f"{_p_cell(r, 'p_value_bootstrap')} | {_p_cell(r, 'p_value_ar')} |")
    return lines


def _floor_note(report: Mapping[str, Any]) -> str:
    """The drift floor in words: what the base against itself reports (rounding alone, in the other dtype)."""
    floor = report.get("drift_floor") or {}
    same, other = floor.get("same_dtype") or {}, floor.get("other_dtype") or {}
    if not same:
        return ""
    note = (f" Models load in {floor.get('dtype')}; the base against itself gives NLL incr. P90 "
            f"{same.get('nll_increase_p90', 0):.4f}")
    if other:
        note += (f", against itself in {other.get('dtype')} {other.get('nll_increase_p90', 0):.4f} (token KL P90 "
                 f"{other.get('kl_p90', 0):.5f}): a system's drift below that is rounding, not training")
    return note + "."


def _markdown(report: Mapping[str, Any], pngs: Sequence[tuple[str, str]]) -> str:
    systems = report["systems"]
    metrics = [m for m in METRIC_LABELS if any(m in s for s in systems.values())]
    checks = (report.get("output_checks") or {}).get("systems") or {}
    lines = [f"# {report.get('title', 'Evaluation report')}", ""]
    lines.append(f"Test split: `{report.get('test_file')}`, {report.get('examples')} examples, "
                 f"{report.get('source_language')} -> {report.get('target_language')}; "
                 f"thinking {'on' if report.get('thinking') else 'off'}. {similarity_note(report)}")
    if report.get("base"):
        lines.append(f"Drift is measured against `{report.get('base_model')}` (system `{report['base']}`) on "
                     f"{report.get('drift_passages')} CMRC passages.{_floor_note(report)}")
    flagged = {n: output_flag(c) for n, c in checks.items() if output_flag(c)}
    collapsed = [n for n, c in checks.items() if c.get("prompt_independent")]
    if collapsed:
        lines += ["", f"**{len(collapsed)} of {len(checks)} systems write the same output for most or all prompts "
                      f"({', '.join(collapsed)}): their scores measure that string against the references, not the "
                      "task, and they get no paired test.**"]
    lines += ["", "| system | " + " | ".join(METRIC_LABELS[m] for m in metrics) + " |",
              "|---|" + "---|" * len(metrics)]
    for name, vals in systems.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(vals.get(m)) for m in metrics) + " |")
    lines += ["", "BLEU, chrF++, ROUGE-L, similarity and consistency on a 0-1 scale; CMRC on 0-100."]
    if checks:
        share = (report.get("output_checks") or {}).get("max_top_share")
        lines += ["", "Output checks (test split; outputs compared after normalisation, identity byte for byte"
                      + (f"; prompt-independent = one output answers at least {share:.0%} of the prompts" if share
                         else "") + "):", "",
                  "| system | distinct outputs / prompts | most common output's share | flag | most common output |",
                  "|---|---|---|---|---|"]
        for name, c in checks.items():
            excerpt = c.get("top_output", "")[:40].replace("|", "\\|").replace("`", "'").replace("\n", " ")
            lines.append(f"| {name} | {c['distinct_outputs']} / {c['prompts']} | {c['top_output_share']:.2f} | "
                         f"{flagged.get(name) or 'none'} | `{excerpt}` |")
    sigs = report.get("signatures") or {}
    if sigs:
        lines += ["", "sacrebleu signatures:", ""]
        lines += [f"- {k}: `{v}`" for k, v in sigs.items()]
    ints = report.get("intervals") or {}
    if any(ints.values()):
        lines += ["", "95% bootstrap intervals (sacrebleu's for BLEU/chrF++, percentile for ROUGE-L):", ""]
        lines += [f"- {n}: " + ", ".join(f"{k} [{v['low']:.4f}, {v['high']:.4f}]" for k, v in c.items())
                  for n, c in ints.items() if c]
    sig = report.get("significance")
    if sig and sig.get("systems"):
        lines += ["", f"Paired tests against `{sig['reference']}` (difference = system - reference):", "",
                  *significance_table(sig)]
        untested = sig.get("untested") or {}
        if untested:
            lines += ["", "Not tested (a p-value would not compare translations):", ""]
            lines += [f"- {name}: {why}" for name, why in untested.items()]
    for name, gaps in (report.get("missing") or {}).items():
        lines.append(f"\n- {name} lacks " + "; ".join(gaps))
    trend = report.get("reward_trend")
    if trend:
        lines += ["", f"GRPO training reward: {format_trend(trend)} (a least-squares line, dashed in the plot)."]
        if trend.get("method"):
            lines += ["", f"Trend test: {trend['method']}."]
    lines += hacking_markdown(report.get("reward_hacking"))  # is the rise reference-specific? (hacking.py)
    lines += [""] + [f"![{title}]({file})" for file, title in pngs]
    return "\n".join(lines) + "\n"


def label_groups(points: list[tuple[str, float, float]], share: float = 0.06) -> list[tuple[float, float, list[str]]]:
    """Systems whose points lie within ``share`` of both axes' spans share one label (names stacked).

    Tiny runs often give several systems the same scores; one label each would print on top of each other.
    """
    if not points:
        return []
    xs, ys = [x for _, x, _ in points], [y for _, _, y in points]
    tol_x, tol_y = share * ((max(xs) - min(xs)) or 1.0), share * ((max(ys) - min(ys)) or 1.0)
    groups: list[tuple[float, float, list[str]]] = []
    for name, x, y in points:
        for gx, gy, names in groups:
            if abs(x - gx) <= tol_x and abs(y - gy) <= tol_y:
                names.append(name)
                break
        else:
            groups.append((x, y, [name]))
    return groups


def label_sides(groups: list[tuple[float, float, list[str]]], reach: float = 0.3, share: float = 0.1) -> list[str]:
    """"left" for a label that would run into a point to its right (within ``reach`` of the x span and ``share``
    of the y span), else "right": a label starts at its point and reads rightwards."""
    if not groups:
        return []
    xs, ys = [x for x, _, _ in groups], [y for _, y, _ in groups]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    return ["left" if any(0 < ox - x <= reach * span_x and abs(oy - y) <= share * span_y for ox, oy, _ in groups)
            else "right" for x, y, _ in groups]


def _quality_vs_tax(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    systems, base = report["systems"], report.get("base")
    base_f1 = systems.get(base, {}).get("cmrc_f1") if base else None

    def tax(name: str, kind: str) -> float | None:
        vals = systems[name]
        if kind == "drift":
            return 0.0 if name == base else vals.get("nll_increase_mean")
        if base_f1 is None or "cmrc_f1" not in vals:
            return None
        return base_f1 - vals["cmrc_f1"]

    quality = report.get("quality_metric") or "chrf"
    if quality not in TASK_METRICS:
        raise ValueError(f"quality axis {quality!r} is not a task metric ({sorted(TASK_METRICS)})")
    checks = (report.get("output_checks") or {}).get("systems") or {}

    def label(name: str) -> str:  # a collapsed system says so beside its point
        c = checks.get(name) or {}
        return f"{name} [one output]" if c.get("constant") else f"{name} [prompt-indep.]" if c.get(
            "prompt_independent") else name

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    xlabels = {"drift": "OOD NLL increase vs base (drift; lower = less tax)",
               "cmrc": "CMRC F1 drop vs base (lower = less tax)"}
    for ax, kind in zip(axes, ("drift", "cmrc"), strict=True):
        points = [(label(n), tax(n, kind), systems[n].get(quality)) for n in systems]
        points = [(n, x, y) for n, x, y in points if x is not None and y is not None]
        for i, (n, x, y) in enumerate(points):
            ax.scatter(x, y, s=60, color=f"C{i}")
        groups = label_groups(points)
        for (x, y, names), side in zip(groups, label_sides(groups), strict=True):
            ax.annotate("\n".join(names), (x, y), textcoords="offset points", va="bottom",
                        xytext=(-5, 5) if side == "left" else (5, 5), ha="right" if side == "left" else "left")
        if not points:
            ax.text(0.5, 0.5, "no base system (base_model) with this measure", ha="center", va="center",
                    transform=ax.transAxes)
        ax.margins(0.15, 0.3)  # room for the labels (stacked where systems coincide)
        ax.set_xlabel(xlabels[kind])
        ax.set_ylabel(f"{METRIC_LABELS[quality]} (task metric)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Task quality ({METRIC_LABELS[quality]}) against alignment tax (one point per system)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _metric_bars(systems: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    import textwrap

    import matplotlib.pyplot as plt

    metrics = [m for m in METRIC_LABELS if any(isinstance(s.get(m), int | float) for s in systems.values())]
    cols = max(1, min(4, len(metrics)))
    rows = max(1, -(-len(metrics) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    for ax, m in zip(axes.flat, metrics, strict=False):
        names = [n for n in systems if isinstance(systems[n].get(m), int | float)]
        order = list(systems)  # one colour per system in every panel
        ax.bar(range(len(names)), [systems[n][m] for n in names], color=[f"C{order.index(n) % 10}" for n in names])
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_title(textwrap.fill(METRIC_LABELS[m], 24), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _drift_hist(drift: Mapping[str, np.ndarray], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    values = np.concatenate([v for v in drift.values() if v.size] or [np.zeros(1)])
    lo, hi = np.percentile(values, [0.5, 99.5])
    bins = np.linspace(min(lo, -0.1), max(hi, 0.1), 50)
    for name, inc in drift.items():
        ax.hist(inc, bins=bins, alpha=0.5, label=f"{name} (mean {inc.mean() if inc.size else 0:+.3f})")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("per-token NLL increase vs base (OOD text)")
    ax.set_ylabel("tokens")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# counts in text units, plotted apart from the reward terms (which live on the reward's 0-2.5 scale)
_LENGTH_COMPONENTS = ("length_units", "reasoning_length", "batch_median_length")


def _component_name(key: str) -> str:
    return key.removeprefix("semantic_reward/").removesuffix("/mean")


def _reward_curve(curve: Sequence[Mapping[str, float]], path: Path, trend: Mapping[str, float] | None) -> None:
    """Reward per step; its terms; the lengths. Series that stay at zero are named, not drawn."""
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in curve]
    components = sorted({k for r in curve for k in r if not is_diagnostic(k)} - {"step", "reward_mean"})
    flat = [c for c in components if all(abs(r.get(c, 0.0)) < 1e-12 for r in curve)]
    lengths = [c for c in components if c not in flat and _component_name(c) in _LENGTH_COMPONENTS]
    terms = [c for c in components if c not in flat and c not in lengths]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].plot(steps, [r["reward_mean"] for r in curve], marker="o", color="k")
    axes[0].set_title("GRPO reward (batch mean)")
    if trend:  # the report's fit (run_evaluation's reward_trend), drawn, not refitted
        ends = [min(steps), max(steps)]
        p = trend.get("p_rise")
        test = (("not tested: too few effective steps" if p is None else f"p(rise) {p:.2g}, autocorr.-corrected")
                if "effective_steps" in trend else f"p(rise) {p:.2g}, steps as independent")
        axes[0].plot(ends, [trend["intercept"] + trend["slope_per_step"] * x for x in ends], "--", color="C3",
                     label=f"OLS fit: {trend['slope_per_step']:+.4f}/step, {test}")
        axes[0].legend(fontsize=7)
    for ax, group, title in ((axes[1], terms, "reward terms (batch means)"),
                             (axes[2], lengths, "output lengths (text units, batch means)")):
        for i, comp in enumerate(group):
            pts = [(r["step"], r[comp]) for r in curve if comp in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=_component_name(comp),
                    color=f"C{i % 10}", linestyle="-" if i < 10 else "--")
        ax.set_title(title)
        if group:
            ax.legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if flat:
        fig.text(0.01, 0.01, "zero at every step (not drawn): " + ", ".join(_component_name(c) for c in flat),
                 fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.05 if flat else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: Mapping[str, Any], out_dir: str | Path, drift: Mapping[str, np.ndarray] | None = None,
                 reward_curve: Sequence[Mapping[str, float]] | None = None) -> dict[str, str]:
    """Write the report files into ``out_dir``; report.json last. Returns {kind: path}."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs = [("quality_vs_tax.png", "quality vs alignment tax"), ("metric_bars.png", "metrics")]
    _quality_vs_tax(report, out / "quality_vs_tax.png")
    _metric_bars(report["systems"], out / "metric_bars.png")
    if drift:
        _drift_hist(drift, out / "drift_distributions.png")
        pngs.append(("drift_distributions.png", "drift"))
    if reward_curve:
        _reward_curve(reward_curve, out / "reward_curve.png", report.get("reward_trend"))
        pngs.append(("reward_curve.png", "reward curve"))
        if hacking_plot(reward_curve, out / "reward_hacking.png"):  # the diagnostics, drawn apart from the terms
            pngs.append(("reward_hacking.png", "reward-hacking diagnostics"))
    (out / "report.md").write_text(_markdown(report, pngs), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files = {"json": str(out / "report.json"), "markdown": str(out / "report.md")}
    files.update({Path(f).stem: str(out / f) for f, _ in pngs})
    return files
