"""Audit: can this encoder be trusted as the reward's f?

For parallel (source, target) pairs it measures
- bitext retrieval P@1 in both directions (sentence-transformers' TranslationEvaluator),
- similarity of true pairs vs random pairs (margin, ROC AUC),
- sensitivity: similarity of the reference to a truncated copy, a shuffled copy,
  a copy with changed numbers and another sentence in the wrong language; the
  shuffled copy's drop as a share of the way to an unrelated reference
  (``shuffle_sensitivity``),
- the unrelated floor: how close another real reference comes to a reference (the
  median over all pairs of different references), the tiny runs' tau,
- degenerate outputs built from the references themselves (``degenerate``: a frequent
  syllable repeated, punctuation and tsheg runs, frequent-syllable salad, a reference's
  own units shuffled and truncated) and the share of them that score above that floor,
  i.e. would earn semantic reward at it,
- what an untranslated copy of the source earns: in reference mode its similarity IS the
  true pair's, so the audit reports its R_sim at the audit's tau and how often it outranks
  an unrelated reference in the right language (a cross-lingual encoder rates it highly:
  that is why the language reward is needed),
- the share of target-script characters its tokenizer loses: unknown, deleted or altered,
  by a round trip through the tokenizer (``round_trip``), and the share in unknown tokens,
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
from ..reward_math import similarity_reward
from ..settings import Settings, setting
from ..text import text_units
from .audit_metrics import (
    distinct_pair_similarities,
    pair_similarities,
    propose_tau,
    random_pair_similarities,
    roc_auc,
    share_above,
    shuffle_sensitivity,
)
from .degenerate import PROBE_KINDS, degenerate_probes, join_units
from .round_trip import round_trip

__all__ = ["AuditThresholds", "AuditEvaluator", "perturb", "unk_share", "audit_encoder", "verdict", "verdict_line",
           "write_reports", "unrelated_tau", "untranslated_copy", "UNRELATED_PERCENTILE", "PERTURBATIONS"]

logger = logging.getLogger(__name__)

# similarity of the reference to each of these versions of it (``untranslated_source`` is scored apart:
# as an output it is the source, so its similarity is the true pair's)
PERTURBATIONS = ("truncated", "shuffled", "numbers_changed", "wrong_language_other_sentence")


@dataclass(frozen=True)
class AuditThresholds(Settings):
    """An encoder is ``usable`` only if it clears all of them (each a share in [0, 1])."""

    WHAT = "audit setting"

    min_p_at_1: float = setting(0.5, ge=0, le=1, help="lowest retrieval P@1 (the worse direction)")
    min_auc: float = setting(0.9, ge=0, le=1, help="lowest true-vs-random ROC AUC")
    max_unk_share: float = setting(0.05, ge=0, le=1, help="highest share of target letters in unknown tokens")
    # A tokenizer that keeps the script loses only characters it never saw; a normalizer that strips marks
    # loses every Tibetan vowel sign and subjoined letter (25% of the news corpus's Tibetan characters), so
    # 2% separates the two by an order of magnitude while letting a few rare characters through.
    max_lost_share: float = setting(0.02, ge=0, le=1, help="highest share of target-script characters the "
                                                           "tokenizer loses (unknown, deleted or altered)")
    # An unrelated real reference scores above the floor (the median) half the time by construction. A
    # degenerate output that beats it one time in ten already earns reward on a tenth of the prompts for
    # nothing, which GRPO finds: the tiny run's constant syllable was enough to lift its reward.
    max_degenerate_share: float = setting(0.1, ge=0, le=1, help="highest share of degenerate-output/reference "
                                                                "pairs above the unrelated floor, per probe kind")
    # Measured: the packaged English MiniLM (all-MiniLM-L6-v2, mean pooling, a bag-of-words-leaning encoder)
    # on 20 English sentences shuffled word by word keeps similarity 0.92 and moves 0.08 of the way to an
    # unrelated sentence; the old tiny encoder (shuffled references at 0.96-0.97) moved 0.03-0.04. 0.05
    # rejects the second and does not reject an off-the-shelf encoder for being as order-blind as MiniLM.
    min_shuffle_sensitivity: float = setting(0.05, ge=0, le=1, help="lowest share of the way from the reference "
                                                                   "to an unrelated one that a shuffle moves")


def perturb(kind: str, target: str, source: str, other_source: str, rng: random.Random) -> str | None:
    """A perturbed output for a reference ``target`` (None when the kind does not apply)."""
    units = text_units(target)
    if kind == "truncated":
        return join_units(units[: max(1, len(units) // 2)], target) if len(units) > 1 else None
    if kind == "shuffled":
        if len(set(units)) < 2:
            return None
        shuffled = units[:]
        while shuffled == units:
            rng.shuffle(shuffled)
        return join_units(shuffled, target)
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


def verdict(metrics: dict[str, Any], thresholds: AuditThresholds) -> tuple[str, list[str]]:
    """("usable" | "unusable", the reasons): P@1 (worse direction), AUC, unknown and lost characters,
    degenerate outputs above the unrelated floor (each probe kind) and shuffle sensitivity."""
    reasons = []
    p1 = min(metrics["p_at_1_src2tgt"], metrics["p_at_1_tgt2src"])
    if p1 < thresholds.min_p_at_1:
        reasons.append(f"retrieval P@1 {p1:.3f} < {thresholds.min_p_at_1}")
    if metrics["auc"] < thresholds.min_auc:
        reasons.append(f"true-vs-random ROC AUC {metrics['auc']:.3f} < {thresholds.min_auc}")
    if metrics["unk_share"] > thresholds.max_unk_share:
        reasons.append(f"{metrics['unk_share']:.1%} of target-language letters are unknown tokens "
                       f"(> {thresholds.max_unk_share:.0%})")
    lost = metrics["round_trip"]
    if lost["lost_share"] > thresholds.max_lost_share:
        reasons.append(f"the tokenizer loses {lost['lost_share']:.1%} of target-script characters (unknown "
                       f"{lost['unknown']}, deleted {lost['deleted']}, altered {lost['altered']} of "
                       f"{lost['characters']}; > {thresholds.max_lost_share:.0%})")
    for kind, probe in metrics["degenerate"].items():
        if probe["pairs"] and probe["share_above_floor"] > thresholds.max_degenerate_share:
            reasons.append(f"{kind}: {probe['share_above_floor']:.0%} of degenerate outputs score above the "
                           f"unrelated floor {metrics['unrelated_floor']:.3f} "
                           f"(> {thresholds.max_degenerate_share:.0%})")
    shuffle = metrics["shuffle_sensitivity"]
    if shuffle is not None and shuffle < thresholds.min_shuffle_sensitivity:
        reasons.append(f"a shuffled reference moves only {shuffle:.2f} of the way to an unrelated one "
                       f"(< {thresholds.min_shuffle_sensitivity})")
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
               "random_pair_similarity_mean", "margin", "auc", "unk_share", "lost_share", "unrelated_floor",
               "degenerate_share_max", "shuffle_sensitivity")

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
        metrics = {k: float(audit[k]) for k in self.SCALARS if audit[k] is not None}
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
        metrics["round_trip"] = round_trip(model.tokenizer, self.targets, self.scripts)
        metrics["lost_share"] = metrics["round_trip"]["lost_share"]
        # the reward compares an output with its reference, both in the target language: its floor is
        # how close an unrelated target sentence comes to a reference (every pair of different references)
        unrelated = distinct_pair_similarities(tgt)
        tau = unrelated_tau(unrelated)
        metrics["tau_unrelated"] = tau
        metrics["unrelated_floor"] = tau["floor"]
        metrics["sensitivity"] = self._sensitivity(model, tgt)
        shuffled = metrics["sensitivity"]["shuffled"]
        metrics["shuffle_sensitivity"] = (shuffle_sensitivity(shuffled["similarity_mean"], tau["floor"])
                                          if shuffled["rows"] else None)
        metrics["degenerate"] = self._degenerate(model, tgt, tau["floor"])
        metrics["degenerate_share_max"] = max((d["share_above_floor"] for d in metrics["degenerate"].values()
                                               if d["pairs"]), default=0.0)
        metrics["untranslated_source"] = untranslated_copy(true_sims, random_pair_similarities(tgt, tgt, self.seed),
                                                           tau["tau"])
        if self.hypotheses:
            hyp = pair_similarities(self._encode(model, [h for h, _ in self.hypotheses]),
                                    self._encode(model, [r for _, r in self.hypotheses]))
            raw = float(np.percentile(hyp, self.tau_percentile))
            tau_p = propose_tau(hyp, self.tau_percentile)
            metrics["tau_proposal"] = {"percentile": self.tau_percentile, "tau": tau_p, "percentile_value": raw,
                                       "clipped": tau_p != raw, "outputs": len(hyp),
                                       "similarity_mean": float(hyp.mean())}
        else:
            metrics["tau_proposal"] = None
        label, reasons = verdict(metrics, self.thresholds)
        metrics["verdict"] = label
        metrics["verdict_reasons"] = reasons
        metrics["thresholds"] = asdict(self.thresholds)
        metrics["_true_similarities"] = true_sims.tolist()
        metrics["_random_similarities"] = rand_sims.tolist()
        metrics["_unrelated_similarities"] = unrelated.tolist()
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

    def _degenerate(self, model: Any, tgt: np.ndarray, floor: float) -> dict[str, dict[str, Any]]:
        """Per probe kind: its probes' similarity to the references and the share above the unrelated floor."""
        unit = tgt / np.linalg.norm(tgt, axis=1, keepdims=True).clip(min=1e-12)
        out: dict[str, dict[str, Any]] = {}
        for kind, rows in degenerate_probes(self.targets, self.seed).items():
            if not rows:
                out[kind] = {"probes": 0, "pairs": 0, "share_above_floor": 0.0}
                continue
            emb = self._encode(model, [text for text, _ in rows])
            emb = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-12)
            sims = np.concatenate([unit @ e if ref is None else unit[[ref]] @ e
                                   for e, (_, ref) in zip(emb, rows, strict=True)])
            out[kind] = {"probes": len(rows), "pairs": int(sims.size), "similarity_mean": float(sims.mean()),
                         "similarity_max": float(sims.max()), "share_above_floor": share_above(sims, floor),
                         "against": "its own reference" if rows[0][1] is not None else "every reference",
                         "example": rows[0][0][:60]}
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


def unrelated_tau(unrelated_similarities: Sequence[float], percentile: float = UNRELATED_PERCENTILE) -> dict[str, Any]:
    """A tau from the encoder alone: the similarity an unrelated target sentence has to a reference.

    With it an output earns semantic reward only for being closer to its reference than an unrelated
    sentence typically is. It is a floor for an encoder and policy too small to reach the paper's tau
    (its "minimal adequacy of the cold-start model", ``tau_proposal`` from ``hypotheses``); an experiment
    uses it only when its profile asks (``grpo.tau_from_audit``). ``floor`` is the percentile itself;
    ``tau`` is it clipped to [0, 0.99], because the reward's settings accept no tau below 0: ``clipped``
    says whether that changed it (a negative floor clipped up to 0 is recorded, never silent), and
    ``unrelated_rewarded_share`` is the share of unrelated pairs that still earn R_sim > 0 at ``tau``.
    """
    values = np.asarray(unrelated_similarities, dtype=float)
    if values.size == 0:
        raise ValueError("the unrelated floor needs at least 2 references")
    floor = float(np.percentile(values, percentile))
    tau = propose_tau(values, percentile)
    return {"percentile": percentile, "floor": floor, "tau": tau, "clipped": tau != floor,
            "pairs": int(values.size), "unrelated_rewarded_share": share_above(values, tau),
            "source": "similarity of every reference to every other reference of the audit split"}


def untranslated_copy(true_similarities: Sequence[float], unrelated_similarities: Sequence[float],
                      tau: float) -> dict[str, Any]:
    """What an output that copies the source untranslated earns from the semantic term alone.

    In reference mode its similarity is the true pair's (the source against the reference), so the audit
    does not report that again: it reports the R_sim the copy earns at ``tau`` (the reward's formula,
    ``reward_math.similarity_reward``), the share of rows where that is > 0, and the share where the copy
    outranks an unrelated reference in the target language (``unrelated_similarities``[i]: another reference
    against reference i). A cross-lingual encoder scores the copy highly; the language reward, 0 for it, is
    what must outweigh this R_sim.
    """
    s = np.asarray(true_similarities, dtype=float)
    other = np.asarray(unrelated_similarities, dtype=float)
    if s.shape != other.shape:
        raise ValueError(f"{s.size} true similarities but {other.size} unrelated ones")
    r_sim = np.asarray([similarity_reward(float(x), tau) for x in s])
    return {"rows": int(s.size), "tau": tau, "r_sim_mean": float(r_sim.mean()) if s.size else 0.0,
            "rewarded_share": share_above(r_sim, 0.0),
            "beats_unrelated_target_share": float(np.mean(s > other)) if s.size else 0.0}


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
              f"unknown-token share <= {t['max_unk_share']:.0%}, characters lost by the tokenizer <= "
              f"{t['max_lost_share']:.0%}, degenerate outputs above the unrelated floor <= "
              f"{t['max_degenerate_share']:.0%} of pairs (each kind), shuffle sensitivity >= "
              f"{t['min_shuffle_sensitivity']}.", ""]
    lines += ["| encoder | P@1 src->tgt | P@1 tgt->src | true sim | random sim | margin | AUC | unk share | "
              "chars lost | unrelated floor | shuffle sensitivity | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in results.items():
        shuffle = "n/a" if m["shuffle_sensitivity"] is None else f"{m['shuffle_sensitivity']:.3f}"
        lines.append(f"| {name} | {m['p_at_1_src2tgt']:.3f} | {m['p_at_1_tgt2src']:.3f} | "
                     f"{m['true_pair_similarity_mean']:.3f} | {m['random_pair_similarity_mean']:.3f} | "
                     f"{m['margin']:.3f} | {m['auc']:.3f} | {m['unk_share']:.1%} | {m['lost_share']:.1%} | "
                     f"{m['unrelated_floor']:.3f} | {shuffle} | {m['verdict']} |")
    lines += ["", "Characters the tokenizer loses (a round trip through its tokens; target script only):", ""]
    for name, m in results.items():
        rt = m["round_trip"]
        top = ", ".join(f"{x['codepoint']} {x['name']} x{x['count']}" for x in rt["top_lost"]) or "none"
        lines.append(f"- {name}: {rt['lost']} of {rt['characters']} (unknown {rt['unknown']}, deleted "
                     f"{rt['deleted']}, altered {rt['altered']}); most lost: {top}")
    lines += ["", "Degenerate outputs built from the references: share of (output, reference) pairs whose "
              "similarity is above the unrelated floor (such an output earns semantic reward at that tau).", "",
              "| encoder | " + " | ".join(PROBE_KINDS) + " |", "|---|" + "---|" * len(PROBE_KINDS)]
    for name, m in results.items():
        cells = [f"{m['degenerate'][k]['share_above_floor']:.0%} (mean sim {m['degenerate'][k]['similarity_mean']:.3f},"
                 f" {m['degenerate'][k]['pairs']} pairs)" if m["degenerate"][k]["pairs"] else "n/a"
                 for k in PROBE_KINDS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Sensitivity: mean similarity of the reference to a perturbed output (1.0 = no drop).", "",
              "| encoder | " + " | ".join(PERTURBATIONS) + " |", "|---|" + "---|" * len(PERTURBATIONS)]
    for name, m in results.items():
        cells = [f"{m['sensitivity'][k]['similarity_mean']:.3f}" if m["sensitivity"][k]["rows"] else "n/a"
                 for k in PERTURBATIONS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, m in results.items():
        u = m["untranslated_source"]
        lines.append(f"\n{name}: an untranslated copy of the source earns R_sim {u['r_sim_mean']:.3f} on average at "
                     f"tau {u['tau']:.3f} (> 0 on {u['rewarded_share']:.0%} of rows) and outranks an unrelated "
                     f"reference in the target language on {u['beats_unrelated_target_share']:.0%}; its language "
                     "reward is 0, which must outweigh this")
    for name, m in results.items():
        if m["tau_proposal"]:
            tp = m["tau_proposal"]
            lines.append(f"\n{name}: proposed tau = {tp['tau']:.3f} (the {tp['percentile']:.0f}th percentile of "
                         f"{tp['outputs']} cold-start outputs' similarity to their references)")
    for name, m in results.items():
        if m.get("tau_unrelated"):
            tu = m["tau_unrelated"]
            clip = (f"; the floor {tu['floor']:.3f} is clipped to {tu['tau']:.3f}: the reward's tau must be in [0, 1)"
                    if tu["clipped"] else "")
            lines.append(f"\n{name}: unrelated-sentence tau = {tu['tau']:.3f} (the {tu['percentile']:.0f}th percentile "
                         f"of {tu['pairs']} pairs of different references' similarity{clip}; "
                         f"{tu['unrelated_rewarded_share']:.0%} of those unrelated pairs earn R_sim > 0 at it; "
                         "a floor for tiny runs, not the paper's tau)")
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
        if m.get("unrelated_floor") is not None:
            ax.axvline(m["unrelated_floor"], color="tab:red", linestyle="--", linewidth=1,
                       label="unrelated floor (reference vs reference)")
        ax.set_title(f"{name}\nAUC {m['auc']:.2f}, P@1 {min(m['p_at_1_src2tgt'], m['p_at_1_tgt2src']):.2f}: "
                     f"{m['verdict']}", fontsize=9)
        ax.set_xlabel("cosine similarity")
    axes[0][0].set_ylabel("pairs")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
