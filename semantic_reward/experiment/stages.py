"""What each kind of stage runs: the project's and verl's own command lines, nothing in-process
except the LoRA merge of a hand-off. Each function returns the fields of the stage's record.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from data_tools.errors import DataToolsError
from data_tools.lengths import check_lengths, load_stats, recipe_lengths

from ..diagnostics import dump_diagnostics
from ..recipe_check import RECIPES_DIR, check_recipe, recipe_kind
from .handoff import export_checkpoint, latest_checkpoint
from .metrics import parse_step_line, reward_steps
from .spec import Experiment, planned_outputs
from .splits import data_args, encoder_corpus_args

__all__ = ["StageFailed", "StageContext", "RUNNERS"]

PY = sys.executable
log = logging.getLogger("semantic_reward.experiment")


class StageFailed(RuntimeError):
    """A stage that did not produce what the next one needs; the message is the cause."""


@dataclass
class StageContext:
    """One stage about to run: its settings, folder, the experiment, and how to run a command."""

    name: str
    spec: dict[str, Any]
    stage_dir: Path
    experiment: Experiment
    run: Callable[..., None]
    commands: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.spec["kind"]

    @property
    def outputs(self) -> dict[str, str | None]:
        return planned_outputs(self.kind, self.stage_dir, self.spec)

    def execute(self, cmd: list[str], log_name: str = "log.txt", env: dict[str, str] | None = None,
                on_line: Callable[[str], None] | None = None) -> None:
        # recorded with the environment it needs (VERL_PLATFORM=cpu, ...), so it can be pasted into a shell
        prefix = [f"{key}={value}" for key, value in sorted((env or {}).items())]
        self.commands.append(shlex.join([*prefix, *cmd]))
        self.run(cmd, self.stage_dir / log_name, env or {}, on_line)

    def save_config(self, cfg: Any) -> str:
        path = self.stage_dir / "config.yaml"
        OmegaConf.save(OmegaConf.create(cfg) if not OmegaConf.is_config(cfg) else cfg, path)
        return str(path)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def run_data(ctx: StageContext) -> dict[str, Any]:
    s = ctx.spec
    # task, input, direction, the split settings (spec "splits") and args: the split is read back from the same list
    cmd = [PY, "-m", "data_tools", *data_args(s), "--out", ctx.outputs["out"], "--quiet"]
    config = ctx.save_config(s)
    ctx.execute(cmd)
    return {"config": config, "model_in": None, "model_out": None}


def run_encoder_train(ctx: StageContext) -> dict[str, Any]:
    s = ctx.spec
    cmd = [PY, "-m", "semantic_reward.encoder_tools", "train", "--model", str(s["model_in"]),
           *encoder_corpus_args(s), "--out", ctx.outputs["out"],
           "--epochs", str(s["epochs"]), "--batch-size", str(s["batch_size"]), "--lr", str(s["lr"]),
           *_degenerate_flag(ctx), *_as_list(s.get("args"))]
    config = ctx.save_config(s)
    ctx.execute(cmd)
    if not Path(ctx.outputs["model_out"]).is_dir():
        raise StageFailed(f"the encoder trainer wrote no model in {ctx.outputs['model_out']}")
    return {"config": config, "model_in": str(s["model_in"]), "model_out": ctx.outputs["model_out"]}


def _degenerate_flag(ctx: StageContext) -> list[str]:
    """``--degenerate-negatives`` when the stage or else the profile's encoder section asks for them."""
    profile = (ctx.experiment.profile_values or {}).get("encoder") or {}
    return ["--degenerate-negatives"] if ctx.spec.get("degenerate_negatives",
                                                      profile.get("degenerate_negatives", False)) else []


def run_encoder_audit(ctx: StageContext) -> dict[str, Any]:
    s = ctx.spec
    cmd = [PY, "-m", "semantic_reward.encoder_tools", "audit", *encoder_corpus_args(s),
           "--encoder", f"reward={s['model_in']}", "--out", ctx.outputs["out"],
           *_as_list(s.get("args"))]
    config = ctx.save_config(s)
    ctx.execute(cmd)
    audit_path = Path(ctx.outputs["out"]) / "audit.json"
    audit = json.loads(audit_path.read_text(encoding="utf-8"))["reward"]
    record = {"config": config, "model_in": str(s["model_in"]), "model_out": str(s["model_in"]),
              "audit": {k: audit.get(k) for k in ("verdict", "verdict_reasons", "p_at_1_src2tgt", "p_at_1_tgt2src",
                                                   "auc", "unk_share", "lost_share", "unrelated_floor",
                                                   "degenerate_share_max", "shuffle_sensitivity")}}
    if audit.get("verdict") != "usable" and not s.get("allow_unusable", False):
        raise StageFailed(f"the reward encoder {s['model_in']} is unusable ({'; '.join(audit.get('verdict_reasons', []))}"
                          f"; {audit_path}); the run stops here. Set stages.{ctx.name}.allow_unusable=true to go on")
    return record


def _verl_overrides(ctx: StageContext, model_key: str) -> list[str]:
    s, exp = ctx.spec, ctx.experiment
    return [f"profile={exp.profile}", *exp.profile_overrides, f"{model_key}={s['model_in']}",
            f"data.train_files={s['train_files']}", f"data.val_files={s['val_files']}",
            f"trainer.default_local_dir={ctx.outputs['out']}",
            # a stage never resumes from older checkpoints: a rerun starts its folder afresh
            "trainer.resume_mode=disable", f"trainer.experiment_name={exp.run_dir.name}-{ctx.name}",
            *_as_list(s.get("overrides"))]


def _env(ctx: StageContext) -> dict[str, str]:
    env = {"WANDB_MODE": "disabled", "RAY_DEDUP_LOGS": "0",
           "VERL_FILE_LOGGER_PATH": str(ctx.stage_dir / "metrics.jsonl")}
    if ctx.experiment.profile_values["device"] == "cpu":
        env["VERL_PLATFORM"] = "cpu"
    return env


def _check(ctx: StageContext, kind: str, overrides: list[str]) -> dict[str, Any]:
    """Pre-flight: the composed recipe (recipe_check), then its lengths against the data's tokens.

    Returns the record's ``config`` (and ``lengths`` where the stage names a ``stats`` file).
    """
    if recipe_kind(ctx.spec["recipe"]) != kind:
        raise StageFailed(f"stage {ctx.name} is a {kind} stage but recipe {ctx.spec['recipe']} is not a {kind} recipe")
    try:
        cfg = check_recipe(ctx.spec["recipe"], None, overrides)
    except Exception as exc:  # the pre-flight check's message is the cause
        raise StageFailed(f"pre-flight check of recipe {ctx.spec['recipe']}: {exc}") from exc
    if kind == "grpo" and int(cfg.trainer.save_freq) <= 0:
        raise StageFailed("trainer.save_freq <= 0: verl would save no checkpoint to hand on (set the profile's "
                          "grpo.save_freq > 0; verl always saves the last step then)")
    checked: dict[str, Any] = {"config": ctx.save_config(cfg)}
    if ctx.spec.get("stats"):
        checked["lengths"] = check_stage_lengths(ctx, cfg, kind)
    return checked


def check_stage_lengths(ctx: StageContext, cfg: Any, kind: str) -> dict[str, Any]:
    """The recipe's prompt/response/SFT lengths against the data stage's token percentiles (stats.json).

    A length below the data's P99 cuts more than 1% of generations or SFT rows: the stage fails before verl
    starts, unless the profile's ``length_check`` is ``warn`` (a deliberate cut, e.g. to keep CPU steps short).
    """
    mode = ctx.experiment.profile_values["length_check"]  # error or warn, checked when the experiment loads
    try:
        # no model name: every stage's model (a merged hand-off) carries the profile model's tokenizer
        report = check_lengths(load_stats(ctx.spec["stats"]), recipe_lengths(cfg, kind))
    except DataToolsError as exc:
        raise StageFailed(f"length check of stage {ctx.name}: {exc}") from exc
    for line in [*report.warnings, *(report.errors if mode == "warn" else [])]:
        log.warning("      %s: %s", ctx.name, line)
    if report.errors and mode == "error":
        raise StageFailed(f"{'; '.join(report.errors)} ({ctx.spec['stats']}; the profile's length_check: warn "
                          "runs it anyway)")
    return {"stats": str(ctx.spec["stats"]), "mode": mode, "errors": report.errors, "warnings": report.warnings}


def _handoff(ctx: StageContext) -> str:
    step_dir = latest_checkpoint(Path(ctx.outputs["out"]))
    out = Path(ctx.outputs["model_out"])
    export_checkpoint(step_dir, out, run=lambda cmd, log: ctx.execute(cmd, log_name=log.name))
    return str(out)


def run_sft(ctx: StageContext) -> dict[str, Any]:
    overrides = _verl_overrides(ctx, "model.path")
    checked = _check(ctx, "sft", overrides)
    nproc = ctx.experiment.profile_values["n_gpus_per_node"]
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "verl.trainer.sft_trainer", f"--config-path={RECIPES_DIR}", f"--config-name={ctx.spec['recipe']}",
           *overrides, f"hydra.run.dir={ctx.stage_dir / 'hydra'}"]
    losses: list[dict[str, float]] = []

    def on_line(line: str) -> None:
        parsed = parse_step_line(line)
        if parsed and "val/loss" in parsed[1]:
            losses.append({"step": parsed[0], "val_loss": parsed[1]["val/loss"]})

    ctx.execute(cmd, env=_env(ctx), on_line=on_line)
    bad = [v for v in losses if not v["val_loss"] == v["val_loss"]]
    if bad:
        raise StageFailed(f"verl's SFT validation loss is NaN at {bad}: the dev split gives no full batch")
    return {**checked, "model_in": str(ctx.spec["model_in"]), "model_out": _handoff(ctx), "val_loss": losses}


def audit_tau(audit_dir: str | Path) -> dict[str, Any]:
    """The encoder audit's unrelated-sentence tau (``encoder_tools.audit.unrelated_tau``), labelled for the record."""
    path = Path(audit_dir) / "audit.json"
    if not path.is_file():
        raise StageFailed(f"tau_from_audit is set but the encoder audit wrote no {path}")
    proposal = json.loads(path.read_text(encoding="utf-8"))["reward"].get("tau_unrelated")
    if not proposal:
        raise StageFailed(f"tau_from_audit is set but {path} has no tau_unrelated (an older audit: --force it)")
    # the reward accepts no tau < 0: the audit clips a negative floor up to 0 and says so (floor, clipped)
    floor, clipped = proposal.get("floor"), bool(proposal.get("clipped"))
    clip = f"; the floor {floor:.3f} is clipped up to {float(proposal['tau']):.3f}" if clipped else ""
    return {"value": float(proposal["tau"]), "from": str(path), "floor": floor, "clipped": clipped,
            "label": f"unrelated-sentence tau: the {proposal['percentile']:.0f}th percentile of {proposal['pairs']} "
                     f"pairs of different references' similarity{clip} (a floor for tiny runs, not the paper's tau)"}


def validation_summary(folder: Path) -> list[dict[str, Any]]:
    """verl's validation dumps (``STEP.jsonl``, one row per generation) -> step, file, rows, mean score, and the
    dump's reward-hacking diagnostics (distinct outputs over prompts, repeated 4-gram ratio...: ``diagnostics``)."""
    out = []
    for path in sorted(folder.glob("*.jsonl"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        scores = [float(r["score"]) for r in rows]
        out.append({"step": int(path.stem) if path.stem.isdigit() else None, "file": str(path), "rows": len(scores),
                    "score_mean": sum(scores) / len(scores) if scores else None,
                    "diagnostics": dump_diagnostics(rows)})
    return out


def run_grpo(ctx: StageContext) -> dict[str, Any]:
    overrides = [*_verl_overrides(ctx, "actor_rollout_ref.model.path"),
                 *( [f"reward.reward_kwargs.encoder.model={ctx.spec['encoder']}"] if ctx.spec.get("encoder") else [])]
    tau = None
    if ctx.spec.get("tau_from_audit"):  # a profile's choice (cpu-tiny); otherwise the recipe's tau stands
        tau = audit_tau(ctx.spec["audit"])
        overrides.append(f"reward.reward_kwargs.tau={tau['value']:.6f}")
        log.info("      %s: tau %.3f from the encoder audit (%s)", ctx.name, tau["value"], tau["label"])
    # verl's validation (every trainer.test_freq steps and at the last) dumps its generations here
    validation_dir = ctx.stage_dir / "validation"
    overrides.append(f"trainer.validation_data_dir={validation_dir}")
    # the spec's own overrides come last so that they win
    own = _as_list(ctx.spec.get("overrides"))
    overrides = [o for o in overrides if o not in own] + own
    checked = _check(ctx, "grpo", overrides)
    cmd = [PY, "-m", "verl.trainer.main_ppo", f"--config-path={RECIPES_DIR}", f"--config-name={ctx.spec['recipe']}",
           *overrides, f"hydra.run.dir={ctx.stage_dir / 'hydra'}"]
    per_step: dict[int, dict[str, float]] = {}

    def on_line(line: str) -> None:
        parsed = parse_step_line(line)
        if parsed:
            per_step[parsed[0]] = parsed[1]
            score = parsed[1].get("critic/score/mean", float("nan"))
            log.info("      %s step %d: reward mean %.3f", ctx.name, parsed[0], score)

    ctx.execute(cmd, env=_env(ctx), on_line=on_line)
    steps = reward_steps(per_step)
    if not steps:
        raise StageFailed("verl's main_ppo logged no training step (see log.txt)")
    (ctx.stage_dir / "steps.json").write_text(json.dumps(steps, indent=2), encoding="utf-8")
    record = {**checked, "model_in": str(ctx.spec["model_in"]), "model_out": _handoff(ctx), "steps": steps}
    if tau is not None:
        record["tau"] = tau
    record["validation"] = validation_summary(validation_dir)
    return record


def run_evaluation(ctx: StageContext) -> dict[str, Any]:
    s, p = ctx.spec, ctx.experiment.profile_values
    curve = None
    if s.get("reward_curve"):
        curve_path = ctx.experiment.run_dir / s["reward_curve"] / "steps.json"
        if curve_path.is_file():
            curve = str(curve_path)
    config = {
        "output_dir": ctx.outputs["out"], "test_file": s["test_file"],
        "source_language": s["source_language"], "target_language": s["target_language"],
        "max_examples": p["eval"]["max_examples"], "encoder": s["encoder"],
        "cmrc_file": s.get("cmrc_file"), "cmrc_max_examples": p["eval"]["cmrc_max_examples"],
        "drift_max_texts": p["eval"]["drift_max_texts"],
        "base_model": s["base_model"], "thinking": p["thinking"],
        "generation": {"max_new_tokens": p["eval"]["max_new_tokens"], "batch_size": p["eval"]["batch_size"],
                       "backend": p["eval"]["backend"]},
        "paired_reference": s.get("paired_reference"),
        "systems": {name: {"model": str(path)} for name, path in s["systems"].items()},
        "reward_curve": curve,
    }
    path = ctx.save_config(config)
    ctx.execute([PY, "-m", "semantic_reward.evaluation", "run", path])
    report = Path(ctx.outputs["out"]) / "report.json"
    if not report.is_file():
        raise StageFailed(f"the evaluation wrote no {report}")
    for item in Path(ctx.outputs["out"]).iterdir():  # the report also lands at the top of the run folder
        if item.name.startswith("report") or item.suffix == ".png":
            # copied beside, then renamed: a crash never leaves a half-written report there
            partial = ctx.experiment.run_dir / f".{item.name}.partial"
            shutil.copy2(item, partial)
            os.replace(partial, ctx.experiment.run_dir / item.name)
    return {"config": path, "model_in": None, "model_out": None,
            "systems": sorted(json.loads(report.read_text(encoding="utf-8")).get("systems", {}))}


RUNNERS: dict[str, Callable[[StageContext], dict[str, Any]]] = {
    "data": run_data, "encoder_train": run_encoder_train, "encoder_audit": run_encoder_audit,
    "sft": run_sft, "grpo": run_grpo, "evaluation": run_evaluation,
}
