"""Stages in order, skip what is done: the whole workflow logic, and nothing more.

A run folder holds one folder per stage and ``stages.json`` (the records, in order). A finished
stage whose settings are unchanged is skipped; a failed or pending stage runs again from a clean
folder, and so does every stage after it; ``force`` redoes a named stage and everything after it.
A finished stage whose settings changed is refused before anything runs: a run never continues
(or resumes a trainer's checkpoints) under settings other than the ones it was started with.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..recipe_check import RECIPES_DIR, recipe_path
from .provenance import TestRowLeak, check_no_test_leak, stage_data
from .spec import Experiment, ExperimentError, fingerprint, profile_path
from .splits import check_split_agreement
from .stages import RUNNERS, StageContext, StageFailed

__all__ = ["RunError", "run_experiment", "stage_fingerprints", "run_command"]

log = logging.getLogger("semantic_reward.experiment")


class RunError(ExperimentError):
    """A run that must not go on as asked (changed settings under the same run name, unknown stage)."""


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def stage_fingerprints(exp: Experiment) -> dict[str, str]:
    """Per stage: a hash of its resolved settings, what its recipe composes, and every earlier stage's hash."""
    out: dict[str, str] = {}
    previous = ""
    for name, spec in exp.stages.items():
        parts: list[Any] = [spec]
        if spec["kind"] in ("sft", "grpo"):
            base = RECIPES_DIR / "base" / f"{spec['kind']}.yaml"
            parts += [exp.profile_values, exp.profile_overrides, _text(recipe_path(spec["recipe"])), _text(base)]
        elif spec["kind"] == "evaluation":
            parts += [exp.profile_values["eval"], exp.profile_values["thinking"]]
        previous = out[name] = fingerprint(previous, parts)
    return out


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: node}


def _changes(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 6) -> str:
    a, b = _flat(old), _flat(new)
    diffs = [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}" for k in sorted(set(a) | set(b))
             if a.get(k) != b.get(k)]
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more if diffs else "the recipe or profile files it composes"


def run_command(cmd: list[str], log_path: Path, env: Mapping[str, str],
                on_line: Callable[[str], None] | None = None) -> None:
    """Run one command, its output into ``log_path`` (and ``on_line``); a non-zero exit is the stage's failure."""
    tail: deque[str] = deque(maxlen=12)
    errors: deque[str] = deque(maxlen=3)
    with log_path.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            tail.append(line.rstrip())
            if "Error" in line or "error:" in line:
                errors.append(line.strip())
            if on_line is not None:
                on_line(line)
        rc = proc.wait()
    if rc != 0:
        cause = " | ".join(errors) if errors else " | ".join(t for t in tail if t)[-600:]
        raise StageFailed(f"{Path(cmd[2] if cmd[1] == '-m' else cmd[0]).name} exited with {rc} ({log_path}): {cause}")


def _write(run_dir: Path, records: list[dict[str, Any]]) -> None:
    tmp = run_dir / "stages.json.tmp"
    tmp.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(run_dir / "stages.json")


def _plan(exp: Experiment, old: dict[str, dict[str, Any]], fps: dict[str, str], force: str | None) -> int:
    """Index of the first stage to run (len = nothing to do); refuses changed finished stages before it."""
    names = list(exp.stages)
    if force is not None and force not in exp.stages:
        raise RunError(f"--force {force}: no such stage; stages: {', '.join(names)}")
    stop = names.index(force) if force is not None else len(names)
    for i, name in enumerate(names[:stop]):
        rec = old.get(name)
        if rec is None or rec.get("status") != "finished":
            return i
        if rec.get("fingerprint") != fps[name]:
            raise RunError(
                f"run folder {exp.run_dir}: stage '{name}' finished with other settings "
                f"({_changes(rec.get('spec', {}), exp.stages[name])}). A run never goes on under changed settings: "
                f"use --run-name NEW for a new run folder, or --force {name} to redo '{name}' and every stage after it")
    return stop


def run_experiment(exp: Experiment, force: str | None = None,
                   runners: Mapping[str, Callable[[StageContext], dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Run what is not done yet; returns the stage records (also in ``<run>/stages.json``)."""
    runners = runners or RUNNERS
    run_dir = exp.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    old: dict[str, dict[str, Any]] = {}
    if (run_dir / "stages.json").is_file():
        old = {r["name"]: r for r in json.loads((run_dir / "stages.json").read_text(encoding="utf-8"))}
    fps = stage_fingerprints(exp)
    start = _plan(exp, old, fps, force)
    splits = check_split_agreement(exp)  # stages that split one corpus differently are refused before any runs
    (run_dir / "experiment.json").write_text(json.dumps(
        {"name": exp.name, "profile": exp.profile, "profile_file": str(profile_path(exp.profile)),
         "profile_overrides": exp.profile_overrides, "profile_values": exp.profile_values, "splits": splits},
        indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    names = list(exp.stages)
    records = [old[n] if i < start else {"name": n, "kind": exp.stages[n]["kind"], "status": "pending",
                                          "seconds": None, "command": None, "model_in": None, "model_out": None,
                                          "config": None, "fingerprint": fps[n], "spec": exp.stages[n]}
               for i, n in enumerate(names)]
    _write(run_dir, records)
    total = len(names)
    for i, name in enumerate(names):
        if i < start:
            log.info("[%d/%d] %s: finished earlier, skipped (%s)", i + 1, total, name, run_dir / name)
            continue
        spec = exp.stages[name]
        stage_dir = run_dir / name
        if stage_dir.exists():
            shutil.rmtree(stage_dir)  # a stage always starts from a clean folder: nothing to resume from
        stage_dir.mkdir(parents=True)
        record = records[i]
        record.update(status="running", started=time.strftime("%Y-%m-%dT%H:%M:%S"))
        _write(run_dir, records)
        log.info("[%d/%d] %s: running (%s%s)", i + 1, total, name, spec["kind"],
                 f", recipe {spec['recipe']}, profile {exp.profile}" if "recipe" in spec else "")
        ctx = StageContext(name, spec, stage_dir, exp, run_command)
        t0 = time.perf_counter()
        try:
            if spec["kind"] == "evaluation":  # no test row may have been seen by anything trained
                record["provenance"] = check_no_test_leak(exp, records, name)
                _write(run_dir, records)
            result = runners[spec["kind"]](ctx)
            data = stage_data(exp, name, spec)  # what the stage trained, selected or audited on
            if data is not None:
                result = {**result, "data": data}
        except Exception as exc:  # any failure is recorded with its cause; the next run starts here
            if isinstance(exc, TestRowLeak):
                record["provenance"] = exc.result
            record.update(status="failed", seconds=round(time.perf_counter() - t0, 1),
                          command=ctx.commands[0] if ctx.commands else None, commands=ctx.commands,
                          cause=f"{type(exc).__name__}: {exc}")
            _write(run_dir, records)
            log.error("[%d/%d] %s: FAILED after %.0f s: %s", i + 1, total, name, record["seconds"], exc)
            raise StageFailed(f"stage '{name}' failed: {exc}") from exc
        record.update(result)
        record.update(status="finished", seconds=round(time.perf_counter() - t0, 1),
                      command=ctx.commands[0] if ctx.commands else None, commands=ctx.commands)
        record.pop("cause", None)
        _write(run_dir, records)
        log.info("[%d/%d] %s: finished in %.0f s%s", i + 1, total, name, record["seconds"],
                 f" -> {record['model_out']}" if record.get("model_out") else "")
    return records
