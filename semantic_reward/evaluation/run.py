"""The evaluation run: every system through the same metrics, then one report, written atomically.

For each system: its outputs on the test split (generated greedily, or read from a
generations file) -> BLEU-4, chrF++ (sacrebleu, with intervals and signatures),
ROUGE-L, embedding similarity under the named encoder, language consistency; CMRC
2018 EM/F1; drift from ``base_model`` on out-of-domain passages. Then sacrebleu's
paired tests against ``paired_reference``. Everything is written into a staging
folder beside ``output_dir`` that replaces it only when complete, so a crash never
leaves a folder that looks finished.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .run_config import EvalRunConfig

__all__ = ["run_evaluation", "atomic_output_dir"]

logger = logging.getLogger(__name__)


@contextmanager
def atomic_output_dir(output_dir: str | Path):
    """Yield a staging folder; on success it replaces ``output_dir`` (the old one is removed), on error it is
    deleted and ``output_dir`` is left as it was."""
    out = Path(output_dir).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def _system_outputs(cfg: EvalRunConfig, name: str, rows: list[dict[str, Any]],
                    generate_fn: Callable[..., list[str]]) -> list[str]:
    from .generate import strip_reasoning
    from .inputs import add_prompts, read_generations

    spec = cfg.systems[name]
    if spec.generations:
        raw = read_generations(spec.generations, rows)
    else:
        add_prompts(rows, cfg.source_language, cfg.target_language, cfg.test_file)
        raw = generate_fn(spec.model, [r["prompt"] for r in rows])
    return [strip_reasoning(h) for h in raw]


def run_evaluation(cfg: EvalRunConfig, progress: bool = True) -> dict[str, Any]:
    """Evaluate every system of ``cfg`` and write report.json, report.md and the PNGs; returns the report."""
    from .drift import drift_summary, token_drift
    from .evaluate import cmrc_metrics, cmrc_prompts, open_encoder, task_metrics
    from .generate import generate, strip_reasoning, write_generations
    from .inputs import read_cmrc, read_generations, read_test_rows
    from .metrics import paired_significance
    from .report import read_reward_curve, write_report
    from .trend import curve_trend

    start = time.perf_counter()
    rows = read_test_rows(cfg.test_file, cfg.target_language, cfg.max_examples)
    refs = [r["reference"] for r in rows]
    cmrc = read_cmrc(cfg.cmrc_file, cfg.cmrc_max_examples) if cfg.cmrc_file else []
    passages = list(dict.fromkeys(r["context"] for r in cmrc))[: cfg.drift_max_texts]
    curve = read_reward_curve(cfg.reward_curve) if cfg.reward_curve else None
    gen = cfg.generation

    def generate_fn(model: str, prompts: list, max_new_tokens: int = gen.max_new_tokens) -> list[str]:
        return generate(model, prompts, backend=gen.backend, batch_size=gen.batch_size,
                        max_new_tokens=max_new_tokens, enable_thinking=cfg.thinking, device=cfg.device,
                        progress=progress)

    logger.info("evaluating %d systems on %d test rows (%s), %d CMRC questions, drift on %d passages",
                len(cfg.systems), len(rows), cfg.test_file, len(cmrc), len(passages))
    if cfg.encoder is None:
        logger.warning("no encoder set: the report has no semantic_similarity column")
    encoder = open_encoder(cfg.encoder) if cfg.encoder else None
    base_tokenizer = None
    systems: dict[str, dict[str, Any]] = {}
    intervals: dict[str, Any] = {}
    missing: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    signatures: dict[str, str] = {}
    drift_arrays = {}
    try:
        with atomic_output_dir(cfg.output_dir) as staging:
            for i, name in enumerate(cfg.systems, 1):
                t0 = time.perf_counter()
                spec = cfg.systems[name]
                logger.info("[%d/%d] %s: %s", i, len(cfg.systems), name, spec.generations or spec.model)
                hyps = _system_outputs(cfg, name, rows, generate_fn)
                outputs[name] = hyps
                write_generations(rows, hyps, staging / "generations" / f"{name}.jsonl")
                scores = task_metrics(hyps, refs, cfg.target_language, encoder=encoder, n_bootstrap=cfg.n_bootstrap)
                values: dict[str, Any] = {**scores.values, "outputs": len(hyps)}
                intervals[name] = scores.intervals
                signatures = {**scores.signatures}
                gaps = [] if encoder else ["semantic_similarity: no encoder set"]

                if cmrc and (spec.model or spec.cmrc_generations):
                    if spec.cmrc_generations:
                        answers = read_generations(spec.cmrc_generations, cmrc, field="answer")
                    else:
                        answers = generate_fn(spec.model, cmrc_prompts(cmrc), max_new_tokens=gen.cmrc_max_new_tokens)
                    answers = [strip_reasoning(a) for a in answers]
                    values.update(cmrc_metrics(answers, cmrc))
                    write_generations([{"id": r["id"], "source": r["question"], "reference": r["answers"][0]}
                                       for r in cmrc], answers, staging / "generations" / f"{name}.cmrc.jsonl")
                else:
                    gaps.append("cmrc: " + ("no cmrc_file set" if not cmrc else "no model or cmrc_generations"))

                if cfg.is_base(name):
                    pass  # the base has no drift from itself
                elif spec.model and cfg.base_model and passages:
                    if base_tokenizer is None:
                        from transformers import AutoTokenizer

                        base_tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
                    device = cfg.device if cfg.device != "auto" else _auto_device()
                    drift = token_drift(cfg.base_model, spec.model, base_tokenizer, passages, device=device,
                                        progress=progress)
                    drift_arrays[name] = drift["nll_increase"]
                    summary = drift_summary(drift)
                    summary["drift_tokens"] = summary.pop("tokens")
                    values.update(summary)
                else:
                    gaps.append("drift: " + ("no base_model set" if not cfg.base_model else
                                             "no model" if not spec.model else "no cmrc_file for passages"))
                systems[name] = values
                if gaps:
                    missing[name] = gaps
                logger.info("[%d/%d] %s: BLEU %.4f, chrF++ %.4f, ROUGE-L %.4f%s (%.1f s)", i, len(cfg.systems),
                            name, values["bleu"], values["chrf"], values["rouge_l"],
                            f", CMRC F1 {values['cmrc_f1']:.2f}" if "cmrc_f1" in values else "",
                            time.perf_counter() - t0)

            significance = None
            if cfg.paired_reference is not None:
                ref_name = cfg.paired_reference
                others = [(n, outputs[n]) for n in cfg.systems if n != ref_name]
                logger.info("paired tests against %s (bootstrap %d, approximate randomisation %d)", ref_name,
                            cfg.n_bootstrap, cfg.ar_trials)
                significance = paired_significance((ref_name, outputs[ref_name]), others, refs,
                                                   cfg.target_language, cfg.n_bootstrap, cfg.ar_trials)
            report = {
                "title": cfg.title,
                "test_file": str(cfg.test_file),
                "examples": len(rows),
                "source_language": cfg.source_language,
                "target_language": cfg.target_language,
                "encoder": cfg.encoder,
                "base_model": cfg.base_model,
                "thinking": cfg.thinking,
                "cmrc_file": cfg.cmrc_file,
                "cmrc_questions": len(cmrc),
                "drift_passages": len(passages),
                "systems": systems,
                "base": next((n for n in cfg.systems if cfg.is_base(n)), None),
                "intervals": intervals,
                "signatures": signatures,
                "significance": significance,
                "missing": missing,
                # the GRPO training curve's least-squares slope, p of a rise, first vs last steps
                "reward_trend": curve_trend(curve) if curve else None,
                "seconds": round(time.perf_counter() - start, 1),
            }
            write_report(report, staging, drift=drift_arrays, reward_curve=curve)
    finally:
        if encoder is not None:
            encoder.close()
    logger.info("wrote %s in %.0f s", Path(cfg.output_dir) / "report.json", time.perf_counter() - start)
    return report


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
