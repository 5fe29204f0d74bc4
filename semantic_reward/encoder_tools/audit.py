"""Audit: can this encoder be trusted as the reward's f?

For parallel (source, target) pairs it measures
- bitext retrieval P@1 in both directions (sentence-transformers' TranslationEvaluator),
- similarity of true pairs vs random pairs (margin, ROC AUC),
- sensitivity: similarity of the reference to a truncated copy, a shuffled copy,
  a copy with changed numbers, another sentence in the wrong language, and an
  untranslated copy of the source (a cross-lingual encoder rates the last one
  highly: that is why the language reward is needed),
- the share of target-language letters its tokenizer maps to unknown tokens,
- optionally a proposal for tau from a cold-start model's outputs,
and gives a one-line verdict with the thresholds behind it. Outputs: JSON,
Markdown and a histogram PNG. ``AuditEvaluator`` is all of this as a
sentence-transformers evaluator, so training can select checkpoints by it.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentence_transformers.sentence_transformer.evaluation import BaseEvaluator, TranslationEvaluator

from ..languages import LanguageRegistry, script_share
from ..settings import Settings, setting
from ..text import text_units
from .audit_metrics import pair_similarities, propose_tau, random_pair_similarities, roc_auc

__all__ = ["AuditThresholds", "AuditEvaluator", "perturb", "unk_share", "audit_encoder", "verdict", "verdict_line",
           "write_reports", "unrelated_tau", "UNRELATED_PERCENTILE"]

logger = logging.getLogger(__name__)

PERTURBATIONS = ("truncated", "shuffled", "numbers_changed", "wrong_language_other_sentence", "untranslated_source")


@dataclass(frozen=True)
class AuditThresholds(Settings):
    """An encoder is ``usable`` only if it clears all three (each a share in [0, 1])."""

    WHAT = "audit setting"

    min_p_at_1: float = setting(0.5, ge=0, le=1, help="lowest retrieval P@1 (the worse direction)")
    min_auc: float = setting(0.9, ge=0, le=1, help="lowest true-vs-random ROC AUC")
    max_unk_share: float = setting(0.05, ge=0, le=1, help="highest share of target letters in unknown tokens")


def _join(units: list[str], like: str) -> str:
    if "་" in like or "།" in like:
        return "་".join(units) + "།"
    return (" " if " " in like.strip() else "").join(units)


def perturb(kind: str, target: str, source: str, other_source: str, rng: random.Random) -> str | None:
    """A perturbed output for a reference ``target`` (None when the kind does not apply)."""
    units = text_units(target)
    if kind == "truncated":
        return _join(units[: max(1, len(units) // 2)], target) if len(units) > 1 else None
    if kind == "shuffled":
        if len(set(units)) < 2:
            return None
        shuffled = units[:]
        while shuffled == units:
            rng.shuffle(shuffled)
        return _join(shuffled, target)
    if kind == "numbers_changed":
        if not re.search(r"[0-9\u0F20-\u0F29]", target):
            return None
        return re.sub(r"[0-9]", lambda m: str((int(m.group()) + 3) % 10),
                      re.sub(r"[\u0F20-\u0F29]", lambda m: chr(0x0F20 + (ord(m.group()) - 0x0F20 + 3) % 10), target))
    if kind == "wrong_language_other_sentence":
        return other_source
    if kind == "untranslated_source":
        return source
    raise ValueError(f"unknown perturbation {kind!r}")


def unk_share(tokenizer: Any, texts: Sequence[str], scripts: Sequence[str]) -> float:
    """Share of target-script letters that fall inside unknown tokens."""
    unk_id = getattr(tokenizer, "unk_token_id", None)
    total = unknown = 0
    for text in texts:
        total += script_share(text, scripts).target_letters
        if unk_id is None:
            continue
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
        for token_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
            if token_id == unk_id:
                unknown += script_share(text[start:end], scripts).target_letters
    return unknown / total if total else 0.0


def verdict(metrics: dict[str, float], thresholds: AuditThresholds) -> tuple[str, list[str]]:
    """("usable" | "unusable", the reasons), from P@1 (worse direction), AUC and unknown share."""
    reasons = []
    p1 = min(metrics["p_at_1_src2tgt"], metrics["p_at_1_tgt2src"])
    if p1 < thresholds.min_p_at_1:
        reasons.append(f"retrieval P@1 {p1:.3f} < {thresholds.min_p_at_1}")
    if metrics["auc"] < thresholds.min_auc:
        reasons.append(f"true-vs-random ROC AUC {metrics['auc']:.3f} < {thresholds.min_auc}")
    if metrics["unk_share"] > thresholds.max_unk_share:
        reasons.append(f"{metrics['unk_share']:.1%} of target-language letters are unknown tokens "
                       f"(> {thresholds.max_unk_share:.0%})")
    return ("unusable", reasons) if reasons else ("usable", [])


class AuditEvaluator(BaseEvaluator):
    """The audit as a sentence-transformers evaluator (``SentenceEvaluator`` is this base class's alias).

    Usable by ``SentenceTransformerTrainer(evaluator=...)`` to select checkpoints: it
    returns a dict of scalar metrics, prefixed with ``name``, whose primary metric is
    retrieval P@1 in the worse direction (what the verdict thresholds). Bitext P@1
    is sentence-transformers' ``TranslationEvaluator``; the rest (similarity of true
    vs random pairs, ROC AUC, sensitivity, unknown share, tau proposal, verdict) is
    ours. The full audit of the last call is in ``last_audit`` (for ``write_reports``).
    """

    SCALARS = ("p_at_1_src2tgt", "p_at_1_tgt2src", "p_at_1_min", "true_pair_similarity_mean",
               "random_pair_similarity_mean", "margin", "auc", "unk_share")

    def __init__(self, sources: Sequence[str], targets: Sequence[str], target_language: str = "tibetan",
                 thresholds: AuditThresholds | None = None, hypotheses: Sequence[tuple[str, str]] | None = None,
                 tau_percentile: float = 25.0, seed: int = 0, batch_size: int = 64, name: str = "audit"):
        super().__init__()
        if len(sources) != len(targets) or len(sources) < 2:
            raise ValueError(f"need at least 2 aligned pairs, got {len(sources)} sources and {len(targets)} targets")
        self.sources, self.targets = list(sources), list(targets)
        self.target_language = target_language
        self.thresholds = thresholds or AuditThresholds()
        self.hypotheses = list(hypotheses) if hypotheses else None
        self.tau_percentile, self.seed, self.batch_size, self.name = tau_percentile, seed, batch_size, name
        self.scripts = LanguageRegistry().get(target_language).scripts
        self.primary_metric = f"{name}_p_at_1_min" if name else "p_at_1_min"
        self.greater_is_better = True
        self.last_audit: dict[str, Any] | None = None
        self._retrieval = TranslationEvaluator(self.sources, self.targets, batch_size=batch_size, write_csv=False)

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        audit = self.audit(model)
        metrics = {k: float(audit[k]) for k in self.SCALARS}
        metrics["usable"] = 1.0 if audit["verdict"] == "usable" else 0.0
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        logger.info("audit%s: %s", f" at step {steps}" if steps >= 0 else "", verdict_line(self.name, audit))
        return metrics

    def _encode(self, model: Any, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                       show_progress_bar=False), dtype=np.float64)

    def audit(self, model: Any) -> dict[str, Any]:
        """The full JSON-able audit of ``model`` (a SentenceTransformer)."""
        retrieval = self._retrieval(model)
        src, tgt = self._encode(model, self.sources), self._encode(model, self.targets)
        true_sims = pair_similarities(src, tgt)
        rand_sims = random_pair_similarities(src, tgt, self.seed)
        metrics: dict[str, Any] = {
            "pairs": len(self.sources),
            "p_at_1_src2tgt": retrieval["src2trg_accuracy"],
            "p_at_1_tgt2src": retrieval["trg2src_accuracy"],
            "p_at_1_min": min(retrieval["src2trg_accuracy"], retrieval["trg2src_accuracy"]),
            "true_pair_similarity_mean": float(true_sims.mean()),
            "random_pair_similarity_mean": float(rand_sims.mean()),
            "margin": float(true_sims.mean() - rand_sims.mean()),
            "auc": roc_auc(true_sims, rand_sims),
            "unk_share": unk_share(model.tokenizer, self.targets, self.scripts),
        }
        metrics["sensitivity"] = self._sensitivity(model, tgt)
        # the reward compares an output with its reference, both in the target language: its floor is
        # how close an unrelated target sentence comes to a reference
        metrics["tau_unrelated"] = unrelated_tau(random_pair_similarities(tgt, tgt, self.seed))
        if self.hypotheses:
            hyp = pair_similarities(self._encode(model, [h for h, _ in self.hypotheses]),
                                    self._encode(model, [r for _, r in self.hypotheses]))
            metrics["tau_proposal"] = {"percentile": self.tau_percentile,
                                       "tau": propose_tau(hyp, self.tau_percentile), "outputs": len(hyp),
                                       "similarity_mean": float(hyp.mean())}
        else:
            metrics["tau_proposal"] = None
        label, reasons = verdict(metrics, self.thresholds)
        metrics["verdict"] = label
        metrics["verdict_reasons"] = reasons
        metrics["thresholds"] = asdict(self.thresholds)
        metrics["_true_similarities"] = true_sims.tolist()
        metrics["_random_similarities"] = rand_sims.tolist()
        if metrics["unk_share"] > self.thresholds.max_unk_share:
            logger.warning("%.1f%% of %s letters are unknown to this encoder's tokenizer: its similarities cannot "
                           "reflect their meaning", 100 * metrics["unk_share"], self.target_language)
        self.last_audit = metrics
        return metrics

    def _sensitivity(self, model: Any, tgt: np.ndarray) -> dict[str, dict[str, float]]:
        rng = random.Random(self.seed)
        n = len(self.targets)
        out: dict[str, dict[str, float]] = {}
        for kind in PERTURBATIONS:
            rows = [(i, perturb(kind, self.targets[i], self.sources[i], self.sources[(i + 1) % n], rng))
                    for i in range(n)]
            rows = [(i, text) for i, text in rows if text]
            if not rows:
                out[kind] = {"rows": 0}
                continue
            sims = pair_similarities(self._encode(model, [text for _, text in rows]), tgt[[i for i, _ in rows]])
            out[kind] = {"rows": len(rows), "similarity_mean": float(sims.mean()),
                         "drop_mean": float(1.0 - sims.mean())}
        return out

    def get_config_dict(self) -> dict[str, Any]:
        return {"target_language": self.target_language, **asdict(self.thresholds)}


def audit_encoder(
    model: Any,
    sources: Sequence[str],
    targets: Sequence[str],
    target_language: str = "tibetan",
    thresholds: AuditThresholds | None = None,
    hypotheses: Sequence[tuple[str, str]] | None = None,
    tau_percentile: float = 25.0,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Audit one loaded SentenceTransformer on aligned pairs; returns a JSON-able dict (``AuditEvaluator.audit``)."""
    return AuditEvaluator(sources, targets, target_language, thresholds, hypotheses, tau_percentile, seed,
                          batch_size).audit(model)


UNRELATED_PERCENTILE = 50.0


def unrelated_tau(random_similarities: Sequence[float], percentile: float = UNRELATED_PERCENTILE) -> dict[str, Any]:
    """A tau from the encoder alone: the similarity an unrelated target sentence has to a reference.

    With it an output earns semantic reward only for being closer to its reference than an unrelated
    sentence typically is. It is a floor for an encoder and policy too small to reach the paper's tau
    (its "minimal adequacy of the cold-start model", ``tau_proposal`` from ``hypotheses``); an experiment
    uses it only when its profile asks (``grpo.tau_from_audit``). Clipped to [0, 0.99] like that proposal.
    """
    values = np.asarray(random_similarities, dtype=float)
    return {"percentile": percentile, "tau": propose_tau(values, percentile), "pairs": int(values.size),
            "source": "similarity of each reference to another (random) reference of the audit split"}


def verdict_line(name: str, m: dict[str, Any]) -> str:
    why = "; ".join(m["verdict_reasons"]) or "clears every threshold"
    return f"{name}: {m['verdict'].upper()} ({why})"


def write_reports(results: dict[str, dict[str, Any]], out_dir: str | Path, title: str = "Encoder audit") -> dict[str, str]:
    """audit.json, audit.md and similarity_histograms.png for one or more audited encoders."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    public = {name: {k: v for k, v in m.items() if not k.startswith("_")} for name, m in results.items()}
    (out / "audit.json").write_text(json.dumps(public, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    lines = [f"# {title}", ""]
    lines += [f"- {verdict_line(name, m)}" for name, m in results.items()]
    first = next(iter(results.values()))
    t = first["thresholds"]
    lines += ["", f"Thresholds: P@1 (worse direction) >= {t['min_p_at_1']}, ROC AUC >= {t['min_auc']}, "
              f"unknown-token share <= {t['max_unk_share']:.0%}.", ""]
    lines += ["| encoder | P@1 src->tgt | P@1 tgt->src | true sim | random sim | margin | AUC | unk share | verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, m in results.items():
        lines.append(f"| {name} | {m['p_at_1_src2tgt']:.3f} | {m['p_at_1_tgt2src']:.3f} | "
                     f"{m['true_pair_similarity_mean']:.3f} | {m['random_pair_similarity_mean']:.3f} | "
                     f"{m['margin']:.3f} | {m['auc']:.3f} | {m['unk_share']:.1%} | {m['verdict']} |")
    lines += ["", "Sensitivity: mean similarity of the reference to a perturbed output (1.0 = no drop).", "",
              "| encoder | " + " | ".join(PERTURBATIONS) + " |", "|---|" + "---|" * len(PERTURBATIONS)]
    for name, m in results.items():
        cells = [f"{m['sensitivity'][k]['similarity_mean']:.3f}" if m["sensitivity"][k]["rows"] else "n/a"
                 for k in PERTURBATIONS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, m in results.items():
        if m["tau_proposal"]:
            tp = m["tau_proposal"]
            lines.append(f"\n{name}: proposed tau = {tp['tau']:.3f} (the {tp['percentile']:.0f}th percentile of "
                         f"{tp['outputs']} cold-start outputs' similarity to their references)")
    for name, m in results.items():
        if m.get("tau_unrelated"):
            tu = m["tau_unrelated"]
            lines.append(f"\n{name}: unrelated-sentence tau = {tu['tau']:.3f} (the {tu['percentile']:.0f}th percentile "
                         f"of {tu['pairs']} references' similarity to another reference, clipped to [0, 0.99]; a floor for tiny runs, "
                         "not the paper's tau)")
    lines.append("\n![similarity histograms](similarity_histograms.png)")
    (out / "audit.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plot(results, out / "similarity_histograms.png")
    return {"json": str(out / "audit.json"), "markdown": str(out / "audit.md"),
            "png": str(out / "similarity_histograms.png")}


def _plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    lowest = min(min(m["_random_similarities"] + m["_true_similarities"]) for m in results.values())
    bins = np.linspace(min(-0.2, lowest), 1.0, 37)
    for ax, (name, m) in zip(axes[0], results.items(), strict=True):
        ax.hist(m["_random_similarities"], bins=bins, alpha=0.6, label="random pairs", color="tab:gray")
        ax.hist(m["_true_similarities"], bins=bins, alpha=0.6, label="true pairs", color="tab:blue")
        ax.set_title(f"{name}\nAUC {m['auc']:.2f}, P@1 {min(m['p_at_1_src2tgt'], m['p_at_1_tgt2src']):.2f}: "
                     f"{m['verdict']}", fontsize=9)
        ax.set_xlabel("cosine similarity")
    axes[0][0].set_ylabel("pairs")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
