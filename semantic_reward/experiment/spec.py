"""An experiment file: named stages in order, each a real command (a verl recipe, data_tools, the
encoder tools, the evaluation), with every scale value taken from a profile as ``${profile.*}`` and
every hand-off as ``${stage:NAME.FIELD}`` (a path inside the run folder, known before anything runs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..recipe_check import RECIPES_DIR, recipe_path

__all__ = ["ExperimentError", "KINDS", "LENGTH_CHECKS", "Experiment", "load_experiment", "profile_path",
           "planned_outputs", "fingerprint"]

KINDS = ("data", "encoder_train", "encoder_audit", "sft", "grpo", "evaluation")
LENGTH_CHECKS = ("error", "warn")
"""A profile's ``length_check``: a recipe length below the data's P99 stops the stage, or is only recorded."""


class ExperimentError(ValueError):
    """An experiment file, profile or run folder that cannot be run as asked."""


def profile_path(name: str) -> Path:
    path = RECIPES_DIR / "profile" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (RECIPES_DIR / "profile").glob("*.yaml"))
        raise ExperimentError(f"no profile '{name}' ({path}); profiles: {', '.join(known)}")
    return path


def planned_outputs(kind: str, stage_dir: Path, spec: DictConfig | dict) -> dict[str, str | None]:
    """Where a stage of this kind leaves its outputs (fixed paths, so later stages can name them up front)."""
    out = stage_dir / "out"
    model_in = spec.get("model_in")
    return {
        "data": {"out": str(out), "model_out": None},
        "encoder_train": {"out": str(out), "model_out": str(out / "final")},
        "encoder_audit": {"out": str(out), "model_out": None if model_in is None else str(model_in)},
        "sft": {"out": str(stage_dir / "checkpoints"), "model_out": str(stage_dir / "model")},
        "grpo": {"out": str(stage_dir / "checkpoints"), "model_out": str(stage_dir / "model")},
        "evaluation": {"out": str(out), "model_out": None},
    }[kind]


@dataclass
class Experiment:
    """The experiment with its profile merged in and every stage resolved."""

    name: str
    profile: str
    run_dir: Path
    profile_overrides: list[str]
    stages: dict[str, dict[str, Any]]
    profile_values: dict[str, Any]


def _stage_resolver(run_dir: Path, raw_stages: DictConfig):
    def resolve(ref: str) -> Any:
        name, _, field = ref.partition(".")
        if name not in raw_stages:
            raise ExperimentError(f"${{stage:{ref}}}: no stage '{name}' (stages: {', '.join(raw_stages)})")
        spec = raw_stages[name]
        outputs = planned_outputs(spec.kind, run_dir / name, {"model_in": spec.get("model_in")})
        if field not in outputs:
            raise ExperimentError(f"${{stage:{ref}}}: a stage has {sorted(outputs)}, not '{field}'")
        return outputs[field]

    return resolve


def load_experiment(path: str | Path, profile: str, run_dir: Path, sets: Sequence[str] = ()) -> Experiment:
    """Experiment YAML + ``profile`` + ``--set key=value`` overrides -> resolved stages in order."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"no experiment file {path}")
    raw = OmegaConf.load(path)
    if "stages" not in raw or not isinstance(raw.stages, DictConfig) or not len(raw.stages):
        raise ExperimentError(f"{path}: 'stages' must be a mapping of stage name -> settings, in run order")
    cfg = OmegaConf.merge(raw, {"profile": OmegaConf.load(profile_path(profile))})
    for item in sets:
        if "=" not in item:
            raise ExperimentError(f"--set wants KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if OmegaConf.select(cfg, key, default="__absent__") == "__absent__":
            raise ExperimentError(f"--set {item}: {path} with profile {profile} has no key '{key}'")
        OmegaConf.update(cfg, key, OmegaConf.from_dotlist([f"v={value}"]).v, merge=False)  # YAML-typed, as Hydra reads it
    # the stage resolver needs each stage's kind and model_in, so those resolve first
    OmegaConf.register_new_resolver("stage", _stage_resolver(run_dir, cfg.stages), replace=True)
    try:
        stages: dict[str, dict[str, Any]] = {}
        for name in cfg.stages:
            spec = cfg.stages[name]
            if spec.get("kind") not in KINDS:
                raise ExperimentError(f"{path}: stage '{name}' has kind {spec.get('kind')!r}; kinds: {', '.join(KINDS)}")
            if spec.get("enabled", True) is False:
                continue
            if spec.kind in ("sft", "grpo"):
                recipe_path(spec.recipe)  # a missing recipe stops here, before anything runs
            stages[str(name)] = OmegaConf.to_container(spec, resolve=True)
        profile_values = OmegaConf.to_container(cfg.profile, resolve=True)
    finally:
        OmegaConf.clear_resolver("stage")
    if profile_values.get("length_check") not in LENGTH_CHECKS:  # read by the SFT/GRPO stages' pre-flight
        raise ExperimentError(f"profile {profile}: length_check must be one of {', '.join(LENGTH_CHECKS)}, "
                              f"not {profile_values.get('length_check')!r}")
    profile_overrides = [s for s in sets if s.startswith("profile.")]
    return Experiment(str(raw.get("name", path.stem)), profile, run_dir, profile_overrides, stages, profile_values)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (settings that decide what a stage produces)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]
