"""The evaluation run: every system through the same metrics, then one report, written atomically.

For each system: its outputs on the test split (generated greedily, or read from a
generations file) -> BLEU-4, chrF++ (sacrebleu, with intervals and signatures),
ROUGE-L, embedding similarity under the reward encoder (labelled as its own score) and
under an independent ``eval_encoder`` when set, language consistency; CMRC
2018 EM/F1; drift from ``base_model`` on out-of-domain passages. Then sacrebleu's
paired tests against ``paired_reference``, skipped for systems whose outputs collapsed to one string
or equal the reference's (``output_checks``). Everything is written into a staging
folder beside ``output_dir`` that replaces it only when complete, so a crash never
leaves a folder that looks finished.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .generate import EngineFactory, EngineSpec, SystemEngine
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


def _system_outputs(cfg: EvalRunConfig, name: str, rows: list[dict[str, Any]], engine: SystemEngine) -> list[str]:
    from .generate import answer_text
    from .inputs import add_prompts, read_generations

    spec = cfg.systems[name]
    if spec.generations:
        raw = read_generations(spec.generations, rows)
    else:
        add_prompts(rows, cfg.source_language, cfg.target_language, cfg.test_file)
        raw = engine.generate([r["prompt"] for r in rows], cfg.generation.max_new_tokens)
    return [answer_text(h) for h in raw]


def _engine_spec(cfg: EvalRunConfig, name: str, progress: bool) -> EngineSpec:
    """What the system's engine loads: its model (+ adapter) in the evaluation's dtype."""
    spec, gen = cfg.systems[name], cfg.generation
    return EngineSpec(model=str(spec.model), adapter=spec.adapter, dtype=str(gen.dtype), enable_thinking=cfg.thinking,
                      batch_size=gen.batch_size, gpu_memory_utilization=gen.gpu_memory_utilization,
                      device=cfg.device, progress=progress)


def run_evaluation(cfg: EvalRunConfig, progress: bool = True,
                   engine_factory: EngineFactory | None = None) -> dict[str, Any]:
    """Evaluate every system of ``cfg`` and write report.json, report.md and the PNGs; returns the report.

    Each system's engine (``engine_factory``, default ``generate.open_engine``) serves its test and CMRC
    prompts and is shut down before its drift models load and before the next system's engine opens.
    """
    from .drift import drift_floor, drift_summary, token_drift
    from .evaluate import cmrc_metrics, cmrc_prompts, open_encoder, task_metrics
    from .generate import answer_text, write_generations
    from .inputs import general_texts, read_generations, read_test_rows
    from .metrics import output_checks, paired_significance
    from .hacking import reward_hacking
    from .report import read_reward_curve, write_report
    from .trend import curve_trend

    start = time.perf_counter()
    rows = read_test_rows(cfg.test_file, cfg.target_language, cfg.max_examples)
    refs = [r["reference"] for r in rows]
    cmrc, passages = general_texts(cfg.cmrc_file, cfg.cmrc_max_examples, cfg.drift_max_texts) if cfg.cmrc_file \
        else ([], [])
    curve = read_reward_curve(cfg.reward_curve) if cfg.reward_curve else None
    gen = cfg.generation
    drift_dtype = str(gen.dtype)  # base and tuned models in one dtype, the generation's
    floor = None  # the base against itself: the drift that rounding alone reports
    engine: SystemEngine | None = None

    logger.info("evaluating %d systems on %d test rows (%s), %d CMRC questions, drift on %d passages",
                len(cfg.systems), len(rows), cfg.test_file, len(cmrc), len(passages))
    if cfg.encoder is None:
        logger.warning("no encoder set: the report has no reward_encoder_similarity column")
    encoder = open_encoder(cfg.encoder) if cfg.encoder else None
    eval_encoder = open_encoder(cfg.eval_encoder) if cfg.eval_encoder else None
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
                # one engine per system, for its test and CMRC prompts, shut down before drift and the next system
                engine = SystemEngine(str(gen.backend), _engine_spec(cfg, name, progress), engine_factory)
                hyps = _system_outputs(cfg, name, rows, engine)
                outputs[name] = hyps
                write_generations(rows, hyps, staging / "generations" / f"{name}.jsonl")
                scores = task_metrics(hyps, refs, cfg.target_language, reward_encoder=encoder,
                                      eval_encoder=eval_encoder, n_bootstrap=cfg.n_bootstrap)
                values: dict[str, Any] = {**scores.values, "outputs": len(hyps)}
                intervals[name] = scores.intervals
                signatures = {**scores.signatures}
                gaps = [] if encoder else ["reward_encoder_similarity: no encoder set"]

                if cmrc and (spec.model or spec.cmrc_generations):
                    if spec.cmrc_generations:
                        answers = read_generations(spec.cmrc_generations, cmrc, field="answer")
                    else:
                        answers = engine.generate(cmrc_prompts(cmrc), gen.cmrc_max_new_tokens)
                    answers = [answer_text(a) for a in answers]
                    values.update(cmrc_metrics(answers, cmrc))
                    write_generations([{"id": r["id"], "source": r["question"], "reference": r["answers"][0]}
                                       for r in cmrc], answers, staging / "generations" / f"{name}.cmrc.jsonl")
                else:
                    gaps.append("cmrc: " + ("no cmrc_file set" if not cmrc else "no model or cmrc_generations"))
                engine.close()

                if cfg.is_base(name):
                    pass  # the base has no drift from itself
                elif spec.model and cfg.base_model and passages:
                    if base_tokenizer is None:
                        from transformers import AutoTokenizer

                        base_tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
                    device = cfg.device if cfg.device != "auto" else _auto_device()
                    if floor is None:
                        floor = drift_floor(cfg.base_model, base_tokenizer, passages, dtype=drift_dtype,
                                            device=device, progress=progress)
                    drift = token_drift(cfg.base_model, spec.model, base_tokenizer, passages, device=device,
                                        progress=progress, dtype=drift_dtype, tuned_adapter=spec.adapter)
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
                                                   cfg.target_language, cfg.n_bootstrap, cfg.ar_trials,
                                                   max_top_share=cfg.max_top_output_share)
            report = {
                "title": cfg.title,
                "test_file": str(cfg.test_file),
                "examples": len(rows),
                "source_language": cfg.source_language,
                "target_language": cfg.target_language,
                "encoder": cfg.encoder,
                "eval_encoder": cfg.eval_encoder,  # similarity columns: see evaluate.REWARD/EVAL_SIMILARITY
                "quality_metric": cfg.task_metric(),  # the quality axis of quality_vs_tax.png
                "base_model": cfg.base_model,
                "thinking": cfg.thinking,
                "cmrc_file": cfg.cmrc_file,
                "cmrc_questions": len(cmrc),
                "drift_passages": len(passages),
                "model_dtype": drift_dtype,  # every generation and drift model was loaded in it
                "drift_floor": floor,  # base vs base, same dtype and the other one: drift below it is rounding
                "systems": systems,
                "base": next((n for n in cfg.systems if cfg.is_base(n)), None),
                "intervals": intervals,
                "signatures": signatures,
                "output_checks": output_checks(outputs, cfg.max_top_output_share),  # collapsed/identical outputs
                "significance": significance,
                "missing": missing,
                # the GRPO training curve's slope, p of a rise corrected for autocorrelation, first vs last steps
                "reward_trend": curve_trend(curve) if curve else None,
                # is the GRPO rise reference-specific or likely reward hacking (steps + validation dumps)?
                "reward_hacking": reward_hacking(cfg.reward_curve) if cfg.reward_curve else None,
                "seconds": round(time.perf_counter() - start, 1),
            }
            write_report(report, staging, drift=drift_arrays, reward_curve=curve)
    finally:
        if engine is not None:
            engine.close()
        for service in (encoder, eval_encoder):
            if service is not None:
                service.close()
    logger.info("wrote %s in %.0f s", Path(cfg.output_dir) / "report.json", time.perf_counter() - start)
    return report


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
