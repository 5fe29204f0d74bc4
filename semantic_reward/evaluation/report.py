"""Comparison report across runs (base, cold-start SFT, strong SFT, GRPO, ablations).

Writes ``report.json`` (per-system metrics), ``report.md`` (tables) and PNGs:
task quality against alignment tax (one point per run), the distributions of the
per-token NLL increase, and one bar chart per metric.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_report", "METRIC_LABELS"]

METRIC_LABELS = {
    "bleu": "BLEU-4", "chrf": "chrF++", "rouge_l": "ROUGE-L", "semantic_similarity": "emb. sim",
    "language_consistency": "lang. consistent", "cmrc_em": "CMRC EM", "cmrc_f1": "CMRC F1", "cmrc_avg": "CMRC Avg",
    "nll_increase_mean": "NLL incr. mean", "nll_increase_p90": "NLL incr. P90", "kl_p90": "token KL P90",
}


def write_report(systems: Mapping[str, Mapping[str, Any]], out_dir: str | Path,
                 drift: Mapping[str, np.ndarray] | None = None, task_metric: str = "bleu",
                 title: str = "Evaluation report") -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"systems": systems}, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    metrics = [m for m in METRIC_LABELS if any(m in s for s in systems.values())]
    lines = [f"# {title}", "", "| system | " + " | ".join(METRIC_LABELS[m] for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for name, vals in systems.items():
        cells = [f"{vals[m]:.4f}" if isinstance(vals.get(m), int | float) else "" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cis = {n: v["ci95"] for n, v in systems.items() if "ci95" in v}
    if cis:
        lines += ["", "95% bootstrap intervals:", ""]
        lines += [f"- {n}: " + ", ".join(f"{k} [{lo:.4f}, {hi:.4f}]" for k, (lo, hi) in c.items()) for n, c in cis.items()]
    lines += ["", "![quality vs alignment tax](quality_vs_tax.png)", "", "![metrics](metric_bars.png)"]
    files = {"json": str(out / "report.json"), "markdown": str(out / "report.md")}

    # quality against alignment tax
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (tax, label) in zip(axes, (("cmrc_f1", "CMRC F1 (higher = less tax)"),
                                       ("nll_increase_mean", "OOD NLL increase (lower = less drift)")), strict=True):
        for name, vals in systems.items():
            if tax in vals and task_metric in vals:
                ax.scatter(vals[tax], vals[task_metric], s=60)
                ax.annotate(name, (vals[tax], vals[task_metric]), textcoords="offset points", xytext=(5, 5))
        ax.set_xlabel(label)
        ax.set_ylabel(METRIC_LABELS.get(task_metric, task_metric))
        ax.grid(alpha=0.3)
    fig.suptitle("Task quality against alignment tax (one point per run)")
    fig.tight_layout()
    fig.savefig(out / "quality_vs_tax.png", dpi=110)
    plt.close(fig)
    files["quality_vs_tax"] = str(out / "quality_vs_tax.png")

    # one bar group per metric
    cols = min(4, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    for ax, m in zip(axes.flat, metrics):
        names = [n for n in systems if isinstance(systems[n].get(m), int | float)]
        ax.bar(range(len(names)), [systems[n][m] for n in names], color=[f"C{i}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_title(METRIC_LABELS[m], fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "metric_bars.png", dpi=110)
    plt.close(fig)
    files["metric_bars"] = str(out / "metric_bars.png")

    if drift:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        values = np.concatenate([v for v in drift.values() if v.size] or [np.zeros(1)])
        lo, hi = np.percentile(values, [0.5, 99.5]) if values.size else (-1, 1)
        bins = np.linspace(min(lo, -0.1), max(hi, 0.1), 50)
        for name, inc in drift.items():
            ax.hist(inc, bins=bins, alpha=0.5, label=f"{name} (mean {inc.mean() if inc.size else 0:+.3f})")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("per-token NLL increase vs base (OOD text)")
        ax.set_ylabel("tokens")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "drift_distributions.png", dpi=110)
        plt.close(fig)
        files["drift"] = str(out / "drift_distributions.png")
        lines.append("\n![drift](drift_distributions.png)")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files
