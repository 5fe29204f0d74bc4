"""The reward's overhead in the real loop: the same GRPO steps through verl's main_ppo, twice.

Run 1 ("semantic") is recipes/grpo_semantic_zh_bo.yaml as the experiment runner composes it
(semantic_reward.experiment.stages.run_grpo: recipe + profile + the stage's overrides, the same
pre-flight check): our reward manager and the embedding service. Run 2 ("constant") is the same
command with verl's naive reward manager calling :func:`constant_reward` from this file through
``reward.custom_reward_function``: no encoder, no service. Same seed, data, policy and steps.

verl's V1 trainer scores each trajectory inside the agent loop (inside ``timing_s/gen``) and logs
no reward timer, so the reward's share of a step is the step time the semantic run spends beyond
the constant run: (semantic - constant) / semantic. verl's legacy trainer (``--override
profile.use_v1=false``) logs ``timing_s/reward`` (its share is reported too; with rewards computed
in the agent loop it times only their collection) and the agent loop's mean per-trajectory reward
call, ``timing_s/agent_loop/compute_score/mean`` (kept in the JSON). Step times leave out
``timing_s/save_checkpoint`` (verl always saves at the last step); the first step is warm-up
(Ray actors, the encoder's first call) and reported apart.

    python scripts/bench_reward_overhead.py [--profile cpu-tiny] [--steps 4] [--quickstart outputs/quickstart]

Inputs: the tiny policy and encoder and the data of an earlier `make quickstart`
(--quickstart DIR), or built here the way the quickstart builds them (needs ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEP_KEY = "timing_s/step"
SAVE_KEY = "timing_s/save_checkpoint"
REWARD_KEY = "timing_s/reward"
GEN_KEY = "timing_s/gen"
CALL_KEY = "timing_s/agent_loop/compute_score/mean"  # one trajectory's reward call (legacy trainer only)
RESPONSE_KEY = "response_length/mean"
CONSTANT = 0.5

log = logging.getLogger("bench_reward_overhead")


def constant_reward(data_source: Any = None, solution_str: str = "", ground_truth: Any = None,
                    extra_info: Any = None, **kwargs: Any) -> float:
    """verl's ``custom_reward_function`` for the baseline run: the same score for every response."""
    return CONSTANT


# -- the table (pure: tested on synthetic step records) -------------------------------


def step_rows(per_step: Mapping[int, Mapping[str, float]]) -> list[dict[str, float]]:
    """verl's per-step metrics -> step, step_s (without the checkpoint save), gen_s, reward_s, response length."""
    rows = []
    for step in sorted(per_step):
        m = per_step[step]
        if STEP_KEY not in m:
            raise ValueError(f"step {step} has no {STEP_KEY} (keys: {', '.join(sorted(m)) or 'none'})")
        rows.append({"step": int(step), "step_s": m[STEP_KEY] - m.get(SAVE_KEY, 0.0),
                     "gen_s": m.get(GEN_KEY, math.nan), "reward_s": m.get(REWARD_KEY, math.nan),
                     "reward_call_s": m.get(CALL_KEY, math.nan),
                     "response_length": m.get(RESPONSE_KEY, math.nan)})
    return rows


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.fmean(finite) if finite else math.nan


def summarize(runs: Sequence[Sequence[Mapping[str, float]]], warmup: int = 1) -> dict[str, Any]:
    """Each run's warm-up steps apart, means over the rest of every run pooled (the steady state)."""
    steady: list[Mapping[str, float]] = []
    for rows in runs:
        if len(rows) <= warmup:
            raise ValueError(f"{len(rows)} step(s) logged; need more than the {warmup} warm-up step(s)")
        steady += rows[warmup:]
    return {"warmup_step_s": [r["step_s"] for rows in runs for r in rows[:warmup]], "steps_measured": len(steady),
            **{f"mean_{k}": _mean([r[k] for r in steady]) for k in ("step_s", "gen_s", "reward_s", "reward_call_s",
                                                                  "response_length")}}


def compare(ours: Mapping[str, Any], constant: Mapping[str, Any]) -> dict[str, float]:
    """Step-time ratio ours/constant and the reward's share of our step."""
    s, c = ours["mean_step_s"], constant["mean_step_s"]
    out = {"step_ratio": s / c, "reward_share": (s - c) / s, "gen_ratio": ours["mean_gen_s"] / constant["mean_gen_s"]}
    if not math.isnan(ours["mean_reward_s"]):
        out["reward_share_logged"] = ours["mean_reward_s"] / s
    return out


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def format_table(result: Mapping[str, Any]) -> str:
    """Markdown: one row per run, then the ratio and the share."""
    runs, cmp = result["runs"], result["comparison"]
    lines = ["| reward | warm-up step s | mean step s | mean gen s | mean reward s (logged) | mean response tokens "
             "| steps measured |", "|---|---|---|---|---|---|---|"]
    for name in ("semantic", "constant"):
        r = runs[name]["summary"]
        lines.append(f"| {name} | {' / '.join(_fmt(v) for v in r['warmup_step_s'])} | {_fmt(r['mean_step_s'])} | "
                     f"{_fmt(r['mean_gen_s'])} | {_fmt(r['mean_reward_s'])} | {_fmt(r['mean_response_length'], 1)} | "
                     f"{r['steps_measured']} |")
    lines.append("")
    for name in ("semantic", "constant"):  # per-step times (without the checkpoint save), warm-up first
        for i, run in enumerate(runs[name].get("runs", []), start=1):
            lines.append(f"{name} run {i} step s: {' / '.join(_fmt(r['step_s'], 1) for r in run['steps'])}")
    logged = cmp.get("reward_share_logged")
    lines += ["", f"step time ratio semantic/constant: {_fmt(cmp['step_ratio'], 3)} "
                  f"(gen {_fmt(cmp['gen_ratio'], 3)}); reward's share of a step: {100 * cmp['reward_share']:.1f}% "
                  f"(the semantic step's time beyond the constant one"
                  + (f"; verl's timing_s/reward: {100 * logged:.1f}%)" if logged is not None else ")"),
              f"(profile {result['profile']}; {result['repeats']} run(s) per reward, alternating, each "
              f"{result['steps_per_run']} steps of which the first {result['warmup']} are warm-up)"]
    return "\n".join(lines)


# -- the runs ---------------------------------------------------------------------------


class _TrainingDone(Exception):
    """Raised by the runner after main_ppo: the benchmark needs no merged model (skips the hand-off)."""


def _inputs(args: argparse.Namespace, out: Path) -> tuple[Path, Path, Path]:
    """(policy, encoder, data_tools output): an earlier quickstart's, or built like the quickstart builds them."""
    qs = args.quickstart.resolve()
    policy, data = qs / "prep" / "policy", qs / "data" / "out"
    if (policy / "config.json").is_file() and (data / "rl" / "rl.parquet").is_file():
        trained = qs / "encoder" / "out" / "final"
        encoder = trained if (trained / "config.json").is_file() else qs / "prep" / "encoder_untrained"
        log.info("reusing %s (policy, %s, data)", qs, encoder.name)
        return policy, encoder, data
    sys.path.insert(0, str(ROOT / "scripts"))
    from quickstart import prepare

    policy, encoder = prepare(args.corpus, out / "prep", args.lm_steps)
    data = out / "data" / "out"
    if not (data / "rl" / "rl.parquet").is_file():
        _run_stage("data", args, out, policy, encoder, data=None)
    return policy, encoder, data


def _experiment(args: argparse.Namespace, out: Path, policy: Path, encoder: Path):
    from semantic_reward.experiment.spec import load_experiment

    corpus = str(args.corpus.resolve())
    return load_experiment(ROOT / "recipes" / "experiments" / "mt_zh_bo.yaml", args.profile, out,
                           [f"profile.model={policy}", f"profile.encoder.init={encoder}", f"inputs.corpus={corpus}",
                            f"inputs.encoder_corpus={corpus}"])


def grpo_spec(stage: Mapping[str, Any], policy: Path, encoder: Path, data: Path, steps: int,
              overrides: Sequence[str]) -> dict[str, Any]:
    """The experiment's GRPO stage on the benchmark's inputs, for ``steps`` steps.

    The recipe's own tau stands (``tau_from_audit`` off): the benchmark has no encoder audit of its own, and
    the encoder embeds every output whatever tau is, so the time measured does not depend on it. No length
    check either (``stats``): reused data may have been built without the policy's tokenizer, and the
    lengths are the profile's whatever the data's are.
    """
    return dict(stage, model_in=str(policy), encoder=str(encoder), tau_from_audit=False, stats=None,
                train_files=str(data / "rl" / "rl.parquet"), val_files=str(data / "rl" / "dev.parquet"),
                overrides=[*(stage.get("overrides") or []), f"trainer.total_training_steps={steps}",
                           "profile.grpo.lr_warmup_steps=0", "trainer.test_freq=-1", *overrides])


def _run_stage(name: str, args: argparse.Namespace, out: Path, policy: Path, encoder: Path,
               data: Path | None, extra: Sequence[str] = ()) -> dict[int, dict[str, float]]:
    """One stage through the experiment runner's own code; for GRPO, verl's per-step metrics."""
    from semantic_reward.experiment.metrics import parse_step_line
    from semantic_reward.experiment.runner import run_command
    from semantic_reward.experiment.stages import RUNNERS, StageContext

    exp = _experiment(args, out, policy, encoder)
    per_step: dict[int, dict[str, float]] = {}
    if name == "data":
        spec, kind = exp.stages["data"], "data"
    else:
        spec = grpo_spec(exp.stages["grpo"], policy, encoder, data, args.steps, [*args.overrides, *extra])
        kind = "grpo"
    stage_dir = out / name
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)

    def run(cmd: list[str], log_path: Path, env: Mapping[str, str], on_line=None) -> None:
        def tee(line: str) -> None:
            parsed = parse_step_line(line)
            if parsed:
                per_step[parsed[0]] = parsed[1]
            if on_line is not None:
                on_line(line)

        run_command(cmd, log_path, env, tee)
        if kind == "grpo":
            raise _TrainingDone

    ctx = StageContext(name=name, spec=spec, stage_dir=stage_dir, experiment=exp, run=run)
    try:
        RUNNERS[kind](ctx)
    except _TrainingDone:
        pass
    if kind == "grpo":
        (stage_dir / "command.txt").write_text("\n".join(ctx.commands) + "\n", encoding="utf-8")
    return per_step


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu-tiny")
    ap.add_argument("--steps", type=int, default=4, help="GRPO steps per run, the first one warm-up")
    ap.add_argument("--repeats", type=int, default=1, help="runs per reward, alternating semantic/constant")
    ap.add_argument("--override", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a Hydra override for both runs (e.g. profile.use_v1=false: verl's legacy trainer, "
                         "which also logs timing_s/reward and the per-trajectory reward call)")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--quickstart", type=Path, default=ROOT / "outputs" / "quickstart",
                    help="an earlier quickstart's folder: reuse its prep/policy, encoder and data/out")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_reward_overhead",
                    help="run folders (and inputs built here)")
    ap.add_argument("--json", type=Path, default=ROOT / "outputs" / "bench_reward_overhead.json")
    ap.add_argument("--lm-steps", type=int, default=120, help="language-model steps for a tiny policy built here")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    if args.steps < 2:
        ap.error("--steps must be at least 2 (one warm-up step, one measured)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.corpus = args.data_dir / "bo_zh_news.jsonl"
    have_quickstart = (args.quickstart / "prep" / "policy" / "config.json").is_file()
    if not args.corpus.is_file() and not have_quickstart:
        print(f"skipped: {args.corpus} is absent and {args.quickstart} holds no quickstart; the benchmark needs "
              "../shared/data beside the project", file=sys.stderr)
        return 0
    for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                       "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "disabled"}.items():
        os.environ.setdefault(key, value)
    out = args.out.resolve()
    policy, encoder, data = _inputs(args, out)
    constant = [
        "reward.reward_manager.name=naive",
        f"reward.custom_reward_function.path={Path(__file__).resolve()}",
        "reward.custom_reward_function.name=constant_reward",
    ]
    runs: dict[str, Any] = {"semantic": {"runs": []}, "constant": {"runs": []}}
    for i in range(args.repeats):  # alternating, so a slow spell of a shared machine hits both rewards
        for name, extra in (("semantic", []), ("constant", constant)):
            stage = name if args.repeats == 1 else f"{name}_{i + 1}"
            log.info("[%s] %d GRPO steps through verl's main_ppo (profile %s)", stage, args.steps, args.profile)
            start, load = time.perf_counter(), os.getloadavg()[0]
            rows = step_rows(_run_stage(stage, args, out, policy, encoder, data, extra))
            record = {"wall_s": time.perf_counter() - start, "load_1min": [load, os.getloadavg()[0]],
                      "steps": rows, "log": str(out / stage / "log.txt")}
            runs[name]["runs"].append(record)
            log.info("[%s] %d steps in %.0f s", stage, len(rows), record["wall_s"])
    for name in runs:
        runs[name]["summary"] = summarize([r["steps"] for r in runs[name]["runs"]])
    result = {"profile": args.profile, "warmup": 1, "steps_per_run": args.steps, "repeats": args.repeats,
              "cpu_count": os.cpu_count(), "policy": str(policy), "encoder": str(encoder), "runs": runs,
              "comparison": compare(runs["semantic"]["summary"], runs["constant"]["summary"])}
    print(format_table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
