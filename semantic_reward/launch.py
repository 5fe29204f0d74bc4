"""Compose, check and run one recipe on a cluster shape: the exact command a user runs, checked before it runs.

One node without a Ray address runs verl's own entry point directly (verl's single-node way). Several
nodes, or any Ray address, go through Ray Jobs as verl's multi-node docs do::

    ray job submit --address http://HEAD:8265 --runtime-env-json '{"env_vars": {...}}' -- bash -c \\
        'python -m semantic_reward.cluster check ... && python -m verl.trainer.main_ppo --config-path=... ...'

The job first probes every node (GPUs as Ray detects them, our reward manager registered in verl),
then starts verl. Settings travel as Hydra overrides and the runtime env: Ray does not pass the
submitting shell's environment to the workers. ``--dry-run`` prints the command and runs
``recipe_check`` on exactly those overrides, with no GPU, Ray or cluster.

    python -m semantic_reward.launch RECIPE [--dry-run] [--nnodes N --gpus-per-node G --encoder-gpus E]
                                     [--address ADDR] [--shared-root DIR] [overrides...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from .recipe_check import (DEFAULT_PROFILE, RECIPES_DIR, RecipeError, check_recipe, compose_recipe, recipe_kind,
                           recipe_path, relative_paths)

__all__ = ["Shape", "Launch", "DEFAULT_JOBS_ADDRESS", "FORWARDED_ENV", "shape_overrides", "shared_path_overrides",
           "compose_launch", "main"]

log = logging.getLogger(__name__)

DEFAULT_JOBS_ADDRESS = "http://127.0.0.1:8265"
"""Ray's job server on the head node (``ray start --head`` starts it); launch from the head node."""

FORWARDED_ENV = ("HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "SEMANTIC_REWARD_TRAIN_METRICS", "VERL_USE_EXTERNAL_PLUGINS", "WANDB_MODE", "WANDB_PROJECT")
"""Variables read at run time inside Ray workers (hub cache and offline mode, our metrics switch, verl's
plugin policy, the logger): copied from the submitting shell into the job's runtime env when set."""

VERL_FORWARDS = ("VERL_FULL_DETERMINISM", "VLLM_BATCH_INVARIANT", "VERL_RL_INSIGHT_ENABLE", "PYTHONHASHSEED",
                 "CUBLAS_WORKSPACE_CONFIG", "FLASH_ATTENTION_DETERMINISTIC", "NCCL_DETERMINISTIC", "NCCL_ALGO")
"""Keys verl's driver puts into its own ``ray.init`` runtime env (verl/trainer/constants_ppo.py); Ray
refuses a job env holding the same keys unless RAY_OVERRIDE_JOB_RUNTIME_ENV=1, which the job sets."""


@dataclass(frozen=True)
class Shape:
    """A cluster as the launcher sees it: nodes, GPUs per node, and GPUs per node kept out of verl's pools."""

    nnodes: int
    gpus_per_node: int
    encoder_gpus: int = 0

    def __post_init__(self) -> None:
        if self.nnodes < 1 or self.gpus_per_node < 1 or self.encoder_gpus < 0:
            raise RecipeError(f"cluster shape NNODES={self.nnodes} GPUS_PER_NODE={self.gpus_per_node} "
                              f"ENCODER_GPUS={self.encoder_gpus}: need at least 1 node and 1 GPU, no negative count")
        if self.encoder_gpus >= self.gpus_per_node:
            raise RecipeError(f"ENCODER_GPUS={self.encoder_gpus} leaves none of GPUS_PER_NODE={self.gpus_per_node} "
                              "to verl")

    @property
    def verl_gpus_per_node(self) -> int:
        return self.gpus_per_node - self.encoder_gpus


@dataclass
class Launch:
    """Everything composed for one launch."""

    recipe: Path
    kind: str
    shape: Shape
    overrides: list[str]
    trainer: list[str]
    command: list[str]
    runtime_env: dict | None = None
    manager: str | None = None

    @property
    def shell(self) -> str:
        return shlex.join(self.command)


def shape_overrides(shape: Shape, profile: str, model: str | None = None) -> list[str]:
    """The overrides that put the recipe on ``shape`` (verl's pools get the GPUs the encoder does not keep)."""
    out = [f"profile={profile}", f"profile.nnodes={shape.nnodes}",
           f"profile.n_gpus_per_node={shape.verl_gpus_per_node}", f"profile.encoder.num_gpus={shape.encoder_gpus}"]
    if shape.encoder_gpus:
        out.append("profile.encoder.device=cuda")
    if model:
        out.append(f"profile.model={model}")
    return out


def _hydra_value(values: list[str]) -> str:
    """Hydra's override grammar: a plain value, a quoted one when it holds grammar characters, or a list."""
    quoted = [f"'{v}'" if any(c in v for c in ",[]{}=() '\"") else v for v in values]
    return quoted[0] if len(quoted) == 1 else "[" + ",".join(quoted) + "]"


def shared_path_overrides(recipe: Path, profile: str, overrides: list[str], shared_root: Path) -> list[str]:
    """``key=<shared_root>/<relative path>`` for every relative path the composed recipe holds."""
    cfg = compose_recipe(recipe, None, overrides)
    OmegaConf.resolve(cfg)
    root = shared_root.resolve()
    return [f"{key}={_hydra_value([str(root / v) if not Path(v).is_absolute() else v for v in values])}"
            for key, values in relative_paths(cfg, recipe_kind(recipe)).items()]


def _profile_shape(profile: str) -> tuple[int, int]:
    raw = OmegaConf.load(RECIPES_DIR / "profile" / f"{profile}.yaml")
    return int(raw.nnodes), int(raw.n_gpus_per_node)


def _jobs_env(extra: dict[str, str]) -> dict:
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k) is not None}
    env.update(extra)
    env["RAY_OVERRIDE_JOB_RUNTIME_ENV"] = "1"
    return {"env_vars": env}


def compose_launch(recipe: str | Path, shape: Shape, profile: str = DEFAULT_PROFILE, model: str | None = None,
                   overrides: list[str] | None = None, address: str | None = None,
                   shared_root: Path | None = None, env: dict[str, str] | None = None) -> Launch:
    """The exact command for ``recipe`` on ``shape``: verl directly on one node without ``address``, else a Ray Job."""
    path = recipe_path(recipe)
    kind = recipe_kind(path)
    jobs = address is not None or shape.nnodes > 1
    address = address or (DEFAULT_JOBS_ADDRESS if jobs else None)
    bad = sorted(set(env or {}) & set(VERL_FORWARDS))
    if bad:
        raise RecipeError(f"--env {', '.join(bad)}: verl forwards these from its own driver; set them on the nodes")
    over = [*shape_overrides(shape, profile, model), *(overrides or [])]
    config_dir = (shared_root.resolve() / "recipes") if shared_root else path.parent.resolve()
    if shared_root:
        over += shared_path_overrides(path, profile, over, shared_root)
    if kind == "grpo":
        trainer = ["python", "-m", "verl.trainer.main_ppo"]
    elif jobs:
        trainer = ["python", "-m", "verl.trainer.sft_trainer_ray"]  # the SFT trainer on Ray's pools, same config
    else:
        trainer = ["torchrun", "--standalone", f"--nproc_per_node={shape.verl_gpus_per_node}",
                   "-m", "verl.trainer.sft_trainer"]
    trainer += [f"--config-path={config_dir}", f"--config-name={path.stem}", *over]
    if not jobs:
        return Launch(path, kind, shape, over, trainer, trainer)
    manager = None
    if kind == "grpo":
        cfg = compose_recipe(path, None, over)
        if cfg.reward.reward_manager.get("source", "register") == "register":
            manager = str(cfg.reward.reward_manager.name)
    probe = ["python", "-m", "semantic_reward.cluster", "check", "--nnodes", str(shape.nnodes),
             "--gpus-per-node", str(shape.gpus_per_node)]
    if manager:
        probe += ["--manager", manager]
    entry = f"{shlex.join(probe)} && {shlex.join(trainer)}"
    if shared_root:
        entry = f"cd {shlex.quote(str(shared_root.resolve()))} && {entry}"
    runtime_env = _jobs_env(env or {})
    # `ray job submit` shell-quotes its entrypoint words (shlex.join) before the job's shell runs them, so
    # the `&&` chain goes in as one `bash -c` argument
    command = ["ray", "job", "submit", "--address", address, "--runtime-env-json",
               json.dumps(runtime_env, sort_keys=True), "--", "bash", "-c", entry]
    return Launch(path, kind, shape, over, trainer, command, runtime_env, manager)


def _detect_shape(address: str | None, encoder_gpus: int) -> Shape:
    from .cluster import cluster_shape, node_gpus

    nnodes, per_node = cluster_shape(node_gpus(address))
    log.info("Ray detects %d node(s) with %d GPU(s) each", nnodes, per_node)
    return Shape(nnodes, per_node, encoder_gpus)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semantic_reward.launch", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", help="recipe name (recipes/NAME.yaml) or a recipe YAML path")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides passed to verl (and to the check) as given")
    ap.add_argument("--dry-run", action="store_true", help="print the command and check it; start nothing")
    ap.add_argument("--profile", default=DEFAULT_PROFILE)
    ap.add_argument("--model", default=None, help="policy checkpoint (default: the profile's)")
    ap.add_argument("--nnodes", type=int, default=None, help="default: Ray's detection (dry run: the profile's)")
    ap.add_argument("--gpus-per-node", type=int, default=None, help="default: Ray's detection (dry run: the profile's)")
    ap.add_argument("--encoder-gpus", type=int, default=0,
                    help="GPUs per node kept out of verl's pools for the reward encoder (default 0: driver CPUs)")
    ap.add_argument("--address", default=None, help=f"Ray job server; several nodes default to {DEFAULT_JOBS_ADDRESS}")
    ap.add_argument("--shared-root", type=Path, default=None,
                    help="the project folder on storage every node mounts: relative paths become absolute under it")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra job env var (repeatable)")
    args = ap.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        env = dict(item.split("=", 1) for item in args.env)
    except ValueError:
        ap.error(f"--env takes KEY=VALUE, got {args.env}")
    try:
        if args.nnodes is not None and args.gpus_per_node is not None:
            shape = Shape(args.nnodes, args.gpus_per_node, args.encoder_gpus)
        elif args.dry_run:
            nnodes, per_node = _profile_shape(args.profile)
            shape = Shape(args.nnodes or nnodes, args.gpus_per_node or per_node, args.encoder_gpus)
            log.info("dry run: shape from the profile %s / the flags (%s)", args.profile, shape)
        else:
            shape = _detect_shape(args.address, args.encoder_gpus)
            shape = Shape(args.nnodes or shape.nnodes, args.gpus_per_node or shape.gpus_per_node, args.encoder_gpus)
        launch = compose_launch(args.recipe, shape, args.profile, args.model, args.overrides, args.address,
                                args.shared_root, env)
        print(launch.shell, flush=True)
        check_recipe(launch.recipe, None, launch.overrides, shared_paths=launch.runtime_env is not None)
    except RecipeError as exc:
        print(f"FAIL  {exc}", file=sys.stderr)
        return 1
    print(f"ok    {launch.recipe.stem} on {shape.nnodes} node(s) x {shape.gpus_per_node} GPU(s) "
          f"({shape.verl_gpus_per_node} to verl, {shape.encoder_gpus} to the encoder)", flush=True)
    if args.dry_run:
        return 0
    logs = Path("logs") / launch.recipe.stem
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{time.strftime('%Y%m%d-%H%M%S')}.log"
    print(f"log: {log_path}", flush=True)
    with log_path.open("w", encoding="utf-8") as out, subprocess.Popen(
            launch.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
