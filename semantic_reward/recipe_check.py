"""Checks a recipe before it reaches a cluster: composes recipe + scale profile + overrides exactly as
verl's command line (and the experiment runner) will, rejects keys verl does not know (Hydra would
silently add a misspelt key from a YAML file), runs verl's own config validation plus ours, and catches
batch sizes the data cannot fill (verl's SFT validation loss is NaN when the dev split is smaller than
the per-rank batch: its loaders drop the last incomplete batch).

    python -m semantic_reward.recipe_check [--profile cpu-tiny] recipes/*.yaml [--set key=value ...]
    python -m semantic_reward.recipe_check grpo_semantic_headline --stats data/headline/stats.json

``--stats`` also checks the recipe's prompt, response and SFT lengths against the token percentiles of
a data_tools build (``data_tools.lengths``): a length below the data's P99 fails, below its longest row warns.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import logging
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

__all__ = [
    "RecipeError", "RECIPES_DIR", "DEFAULT_PROFILE", "recipe_path", "recipe_kind", "compose_recipe",
    "unknown_keys", "check_profiles", "check_batch_fits_data", "check_warmup", "check_cluster_shape",
    "relative_paths", "check_shared_paths",
    "check_recipe", "EXTENSIONS",
]

log = logging.getLogger(__name__)

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
DEFAULT_PROFILE = "paper"

EXTENSIONS = ("reward.reward_kwargs", "reward.custom_reward_function.reward_kwargs", "data.raw_corpus", "profile")
"""Subtrees that are ours (validated by our own config classes or by check_profiles), not verl's."""

FREE_FORM = (
    "ray_kwargs.ray_init",
    "engine.mixed_precision",
    "actor_rollout_ref.actor.fsdp_config.mixed_precision",
    "actor_rollout_ref.ref.fsdp_config.mixed_precision",
    "actor_rollout_ref.rollout.engine_kwargs.hf",  # validated by semantic_reward.verl_cpu's HFEngineSettings
)
"""verl subtrees that are passed on as keyword arguments (any key is legal)."""

BASES = {"ppo_trainer": "grpo", "sft_trainer_engine": "sft"}


class RecipeError(ValueError):
    """A recipe that would fail (or silently misbehave) on the cluster."""


def recipe_path(recipe: str | Path) -> Path:
    """``grpo_semantic_zh_bo`` or a path to a recipe YAML -> the YAML's path."""
    path = Path(recipe)
    if path.suffix not in (".yaml", ".yml"):
        path = RECIPES_DIR / f"{recipe}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
        raise RecipeError(f"no recipe {path}; recipes here: {', '.join(known)}")
    return path


def recipe_kind(recipe: str | Path) -> str:
    """``grpo`` (verl's main_ppo) or ``sft`` (verl's SFT trainer), from the recipe's defaults list."""
    path = recipe_path(recipe)
    raw = OmegaConf.load(path)
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry in BASES:
            return BASES[entry]
    raise RecipeError(f"{path}: its defaults list names none of {sorted(BASES)}")


def _compose(config_dir: Path, name: str, overrides: Sequence[str] = ()) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base=None):
        return compose(config_name=name, overrides=list(overrides))


def compose_recipe(recipe: str | Path, profile: str | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """The recipe composed exactly as ``--config-path/--config-name profile=P overrides`` composes it."""
    path = recipe_path(recipe)
    prefix = [f"profile={profile}"] if profile else []
    return _compose(path.parent, path.stem, [*prefix, *overrides])


_BASE_CACHE: dict[str, DictConfig] = {}


def _base_config(name: str) -> DictConfig:
    if name not in _BASE_CACHE:
        from hydra import compose, initialize_config_module
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        with initialize_config_module("verl.trainer.config", version_base=None):
            _BASE_CACHE[name] = compose(config_name=name)
    return _BASE_CACHE[name]


def _leaves(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, DictConfig) and len(node):
        for key in node.keys():
            child = node._get_node(key) if OmegaConf.is_missing(node, key) else node[key]
            yield from _leaves(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def unknown_keys(cfg: DictConfig, kind: str) -> list[str]:
    """Keys of a composed recipe that the verl base config does not have (with a suggestion)."""
    base = _base_config(next(name for name, k in BASES.items() if k == kind))
    problems = []
    for key in _leaves(cfg):
        if any(key == e or key.startswith(e + ".") for e in (*EXTENSIONS, *FREE_FORM, "hydra")):
            continue
        node: Any = base
        walked: list[str] = []
        for part in key.split("."):
            if isinstance(node, DictConfig) and len(node) == 0:
                break  # a free-form mapping such as override_config: {}
            if not isinstance(node, DictConfig) or part not in node.keys():  # keys() also lists ??? values
                siblings = list(node.keys()) if isinstance(node, DictConfig) else []
                close = difflib.get_close_matches(part, [str(s) for s in siblings], n=1)
                where = ".".join(walked) or "<root>"
                hint = f" (did you mean '{'.'.join([*walked, close[0]])}'?)" if close else ""
                problems.append(f"'{key}': verl has no key '{part}' under {where}{hint}")
                break
            walked.append(part)
            node = node._get_node(part) if OmegaConf.is_missing(node, part) else node[part]
    return problems


def check_profiles(recipes_dir: Path = RECIPES_DIR) -> list[str]:
    """Every profile has exactly the keys of ``paper.yaml`` (a misspelt scale key would be silently unused)."""
    folder = recipes_dir / "profile"
    reference = set(_leaves(OmegaConf.load(folder / f"{DEFAULT_PROFILE}.yaml")))
    problems = []
    for path in sorted(folder.glob("*.yaml")):
        keys = set(_leaves(OmegaConf.load(path)))
        for key in sorted(keys - reference):
            close = difflib.get_close_matches(key, sorted(reference), n=1)
            problems.append(f"{path}: '{key}' is not a profile key" + (f" (did you mean '{close[0]}'?)" if close else ""))
        problems += [f"{path}: lacks '{key}' (every profile sets every scale key)" for key in sorted(reference - keys)]
    return problems


def _rows(path: str) -> int | None:
    """Row count of a local parquet file (None when it is not there yet or not a parquet file)."""
    p = Path(path)
    if p.suffix != ".parquet" or not p.is_file():
        return None
    import pyarrow.parquet as pq

    return pq.ParquetFile(p).metadata.num_rows


def _files(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, ListConfig)) else [str(value)]


def check_batch_fits_data(cfg: DictConfig, kind: str) -> list[str]:
    """Batch sizes the data files (when present) cannot fill: no training step, or a NaN validation loss.

    verl drops the last incomplete batch in its train loaders and, for SFT, in the validation
    loader too (batch = the training batch per data-parallel rank, verl/trainer/sft_trainer.py), so a
    dev split below that size gives the mean of nothing: ``val/loss: nan``.
    """
    dp = int(cfg.trainer.nnodes) * int(cfg.trainer.n_gpus_per_node)
    batch = int(cfg.data.train_batch_size)
    problems = []
    if kind == "sft":
        per_rank = batch // dp
        for field in ("train_files", "val_files"):
            if cfg.data.get(field) is None:
                continue
            for f in _files(cfg.data[field]):
                rows = _rows(f)
                if rows is not None and rows // dp < per_rank:
                    what = "no validation batch, so val/loss would be NaN" if field == "val_files" else "no training step"
                    problems.append(
                        f"data.{field} {f} has {rows} rows = {rows // dp} per rank on {dp} rank(s), fewer than the "
                        f"per-rank batch data.train_batch_size / ranks = {batch} / {dp} = {per_rank}: verl drops the "
                        f"incomplete batch, {what}. Make the split larger (data_tools --dev) or lower "
                        f"data.train_batch_size (the profile's sft.train_batch_size) to at most {rows // dp * dp}")
    else:
        cap = int(cfg.data.get("train_max_samples") or -1)
        if 0 < cap < batch:
            problems.append(f"data.train_max_samples {cap} (the profile's grpo.train_max_samples) is below "
                            f"data.train_batch_size {batch}: verl drops the incomplete batch, so there is no "
                            f"training step. Use -1 (every prompt) or at least {batch}")
        for f in _files(cfg.data.train_files):
            rows = _rows(f)
            if rows is not None and rows < batch:
                problems.append(f"data.train_files {f} has {rows} rows, fewer than data.train_batch_size {batch}: "
                                "verl drops the incomplete batch, so there is no training step")
    return problems


def check_warmup(cfg: DictConfig, kind: str) -> list[str]:
    """A GRPO warm-up as long as the run never reaches the learning rate the recipe asks for."""
    if kind != "grpo":
        return []
    optim = cfg.actor_rollout_ref.actor.optim
    warmup, steps = int(optim.get("lr_warmup_steps") or 0), cfg.trainer.get("total_training_steps")
    if steps is not None and warmup >= int(steps) > 0:
        return [f"actor_rollout_ref.actor.optim.lr_warmup_steps {warmup} (the profile's grpo.lr_warmup_steps) "
                f"is not below trainer.total_training_steps {steps}: the learning rate would never reach "
                f"optim.lr {optim.lr}"]
    return []


def check_cluster_shape(cfg: DictConfig, kind: str) -> list[str]:
    """verl 0.9.1's batch arithmetic for ``trainer.nnodes`` x ``trainer.n_gpus_per_node``, with keys and numbers.

    Only ``validate_config``'s first rule runs before Ray starts; the others are asserts deep in the
    workers, reached after the models are loaded. Each rule names where verl enforces it.
    """
    nnodes, per_node = int(cfg.trainer.nnodes), int(cfg.trainer.n_gpus_per_node)
    shape = f"trainer.nnodes {nnodes} x trainer.n_gpus_per_node {per_node}"
    if nnodes < 1 or per_node < 1:
        return [f"{shape}: verl needs at least one node and one GPU per node"]
    gpus = nnodes * per_node
    if kind == "sft":
        batch = int(cfg.data.train_batch_size)
        if batch % gpus:
            return [f"data.train_batch_size {batch} is not divisible by the {gpus} data-parallel ranks of {shape} "
                    f"(verl/trainer/sft_trainer.py gives each rank the floor of batch / ranks, silently dropping the rest)"]
        return []
    arr = cfg.actor_rollout_ref
    actor, rollout = arr.actor, arr.rollout
    problems = []
    sp = int(actor.get("ulysses_sequence_parallel_size") or 1)
    if gpus % sp:
        problems.append(f"{shape} = {gpus} GPUs is not divisible by "
                        f"actor_rollout_ref.actor.ulysses_sequence_parallel_size {sp}")
        return problems
    dp = gpus // sp
    rollout_world = 1
    for key in ("tensor_model_parallel_size", "data_parallel_size", "pipeline_model_parallel_size"):
        rollout_world *= int(rollout.get(key) or 1)
    if gpus % rollout_world:
        problems.append(f"{shape} = {gpus} GPUs is not divisible by the rollout replica size "
                        f"(actor_rollout_ref.rollout tensor x data x pipeline parallel) {rollout_world} "
                        f"(verl/single_controller/ray/base.py split_resource_pool)")
    n = int(rollout.n)
    batch = int(cfg.data.train_batch_size)
    rollouts = batch * n
    if actor.get("use_dynamic_bsz"):
        if rollouts % gpus:
            problems.append(f"data.train_batch_size {batch} x actor_rollout_ref.rollout.n {n} = {rollouts} "
                            f"rollouts per step is not divisible by {shape} = {gpus} GPUs "
                            "(verl/utils/config.py validate_config)")
        return problems
    if rollouts % gpus:
        problems.append(f"data.train_batch_size {batch} x actor_rollout_ref.rollout.n {n} = {rollouts} rollouts per "
                        f"step is not divisible by {shape} = {gpus} GPUs (verl/utils/config.py validate_config); "
                        f"GPU counts that divide {rollouts}: {_divisors_near(rollouts, gpus)}")
        return problems
    mini = int(actor.ppo_mini_batch_size)
    micro = actor.get("ppo_micro_batch_size_per_gpu")
    mini_rollouts = mini * n
    if mini_rollouts % dp:
        problems.append(f"actor_rollout_ref.actor.ppo_mini_batch_size {mini} x rollout.n {n} = {mini_rollouts} is not "
                        f"divisible by the {dp} data-parallel ranks of {shape} "
                        "(verl/workers/engine_workers.py train_mini_batch asserts it at the first update)")
        return problems
    per_rank_mini = mini_rollouts // dp
    if micro and per_rank_mini % int(micro):
        problems.append(f"the per-rank mini-batch actor_rollout_ref.actor.ppo_mini_batch_size {mini} x rollout.n {n} "
                        f"/ {dp} ranks = {per_rank_mini} is not divisible by "
                        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu {micro} "
                        "(verl/workers/engine/utils.py prepare_micro_batches asserts it at the first update)")
    # the V1 trainer pads a step's rollouts to a multiple of lcm(dp, mini-batch rollouts) before the
    # log-prob passes (trainer/ppo/v1/trainer_base.py _balance_batch); the legacy trainer does not pad
    padded = rollouts
    if cfg.trainer.get("use_v1"):
        unit = math.lcm(dp, mini_rollouts)
        padded = -(-rollouts // unit) * unit
    per_rank = padded // dp
    for role in ("rollout", "ref"):
        key = f"actor_rollout_ref.{role}.log_prob_micro_batch_size_per_gpu"
        value = OmegaConf.select(cfg, key)
        if OmegaConf.select(cfg, f"actor_rollout_ref.{role}.log_prob_use_dynamic_bsz"):
            continue
        if value and per_rank % int(value):
            problems.append(f"the per-rank log-prob batch {padded} rollouts / {dp} ranks = {per_rank} is not divisible "
                            f"by {key} {value} (verl/workers/engine/utils.py prepare_micro_batches)")
    return problems


def _divisors_near(total: int, gpus: int) -> str:
    options = [d for d in range(1, 2 * gpus + 1) if total % d == 0 and d >= gpus // 2]
    return ", ".join(map(str, options[:8])) or "none nearby"


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _relative_path(value: Any, hub_ok: bool) -> bool:
    """A value that names a relative local path (a hub id ``org/name`` that is not a local folder is fine)."""
    if value is None or value == "":
        return False
    text = str(value)
    if "://" in text or text.startswith("pkg:") or Path(text).is_absolute():
        return False
    if hub_ok and _HUB_ID.match(text) and not Path(text).exists():
        return False
    return True


def relative_paths(cfg: DictConfig, kind: str) -> dict[str, list[str]]:
    """Config keys holding relative local paths -> those paths (a hub id ``org/name`` that is no local folder is fine).

    Covers the data files, the checkpoint and dump folders, the policy and the reward encoder.
    """
    keys = [("data.train_files", False), ("data.val_files", False), ("trainer.default_local_dir", False),
            ("trainer.rollout_data_dir", False), ("trainer.validation_data_dir", False),
            ("actor_rollout_ref.model.path" if kind == "grpo" else "model.path", True),
            ("reward.reward_kwargs.encoder.model", True),
            ("reward.custom_reward_function.reward_kwargs.encoder.model", True),
            ("reward.custom_reward_function.path", False)]
    found: dict[str, list[str]] = {}
    for key, hub_ok in keys:
        value = OmegaConf.select(cfg, key)
        if value is None:
            continue
        values = _files(value)
        if any(_relative_path(v, hub_ok) for v in values):
            found[key] = values
    return found


def check_shared_paths(cfg: DictConfig, kind: str) -> list[str]:
    """Paths a multi-node run resolves on every node: they must be absolute (and on shared storage).

    A relative ``data/...`` or ``checkpoints/...`` is resolved against each worker's own working
    directory, which under Ray Jobs is not the folder the command was typed in.
    """
    found = relative_paths(cfg, kind)
    if not found:
        return []
    listed = ", ".join(f"{key}={values[0] if len(values) == 1 else values}" for key, values in found.items())
    return [f"relative paths on a multi-node run: {listed}. Each node resolves them against its own working "
            "directory; use absolute paths on storage every node mounts (scripts/launch.sh does it with "
            "SHARED_ROOT=<the project folder on that storage>)"]


def check_encoder_placement(settings: Any) -> list[str]:
    """An encoder that runs, but on the CPU in half precision or on one thread: a step slower by minutes."""
    enc, svc = settings.encoder, settings.service
    uses_encoder = settings.similarity.embedding > 0 if hasattr(settings, "similarity") else True
    on_cpu = enc.device == "cpu" or (enc.device == "auto" and svc.num_gpus == 0 and svc.backend == "ray")
    if not (uses_encoder and on_cpu):
        return []
    problems = []
    if enc.dtype == "float16":
        problems.append("reward.reward_kwargs.encoder.dtype float16 with the encoder on CPU (encoder.device "
                        f"{enc.device}, service.num_gpus {svc.num_gpus}): CPUs have no fast fp16 matmul; use "
                        "bfloat16 (measured 2.8x faster than float32 on 16 cores, recipes/README.md) or float32")
    if enc.device == "auto" and svc.num_gpus == 0:
        problems.append("reward.reward_kwargs.encoder.device auto with service.num_gpus 0: the shared actor holds no "
                        "GPU, so say where it runs: device cpu (the default placement) or service.num_gpus > 0")
    return problems


def check_recipe(recipe: str | Path, profile: str | None = None, overrides: Sequence[str] = (),
                 shared_paths: bool | None = None) -> DictConfig:
    """Compose recipe + profile + overrides, check keys, the cluster shape, verl's validation, ours and the data sizes.

    ``shared_paths`` (default: when ``trainer.nnodes`` > 1) refuses relative paths, which each node
    would resolve on its own. Returns the composed, resolved config: the one verl will run.
    """
    path = recipe_path(recipe)
    kind = recipe_kind(path)
    cfg = compose_recipe(path, profile, overrides)
    problems = unknown_keys(cfg, kind)
    if problems:
        raise RecipeError(f"{path}: " + "; ".join(problems))
    OmegaConf.resolve(cfg)
    problems = check_cluster_shape(cfg, kind)
    if shared_paths or (shared_paths is None and int(cfg.trainer.nnodes) > 1):
        problems += check_shared_paths(cfg, kind)
    if problems:
        raise RecipeError(f"{path}: " + "; ".join(problems))
    if kind == "grpo":
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config

        checked = cfg
        if cfg.actor_rollout_ref.rollout.name == "vllm" and importlib.util.find_spec("vllm") is None:
            # verl's last check asks vLLM which LoRA ranks it allows; without vLLM (a CPU
            # machine) run every other check and say so.
            log.warning("vLLM is not installed here; %s's vLLM LoRA-rank check is skipped", path)
            checked = cfg.copy()
            with open_dict(checked):
                checked.actor_rollout_ref.rollout.name = "not-vllm"
        validate_config(checked, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        if cfg.reward.reward_manager.name == "semantic" or cfg.reward.get("reward_kwargs"):
            from .verl_adapter.manager import _check_batch_terms, settings_from_verl_config

            settings = settings_from_verl_config(cfg)
            _check_batch_terms(settings, cfg)
            problems = check_encoder_placement(settings)
            if problems:
                raise RecipeError(f"{path}: " + "; ".join(problems))
        crf = cfg.reward.get("custom_reward_function") or {}
        if str(crf.get("path") or "").endswith("semantic_reward.verl_adapter.compute_score"):
            # verl only binds these with functools.partial: nothing of ours sees them before the first
            # rollout, so this check is the earliest one (every field, the device's spelling, the model folder)
            from .verl_adapter.compute_score import validate_reward_kwargs

            validate_reward_kwargs(crf.get("reward_kwargs"))
        if cfg.data.get("raw_corpus"):
            from data_tools.verl_dataset import build_config_from_verl

            # validates data.raw_corpus; the input paths come from data.train_files at run time
            build_config_from_verl(_files(cfg.data.train_files), cfg.data)
    problems = check_batch_fits_data(cfg, kind) + check_warmup(cfg, kind)
    if problems:
        raise RecipeError(f"{path}: " + "; ".join(problems))
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semantic_reward.recipe_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipes", nargs="+", help="recipe names or YAML paths")
    ap.add_argument("--profile", default=None, help=f"scale profile (default: the recipe's, {DEFAULT_PROFILE})")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a Hydra override, exactly as passed to verl (repeatable)")
    ap.add_argument("--stats", default=None, metavar="STATS_JSON",
                    help="a data_tools stats.json (built with --tokenizer): check the recipe's lengths against it")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    failed = 0
    for problem in check_profiles():
        failed += 1
        print(f"FAIL  {problem}")
    for p in args.recipes:
        try:
            cfg = check_recipe(p, args.profile, args.overrides)
            if args.stats:
                from data_tools.lengths import check_recipe_lengths, load_stats

                lengths = check_recipe_lengths(load_stats(args.stats), cfg, recipe_kind(p))
                for line in lengths.warnings:
                    print(f"WARN  {p}: {line}")
                if lengths.errors:
                    raise RecipeError("; ".join(lengths.errors))
            print(f"ok    {p}" + (f" (profile {args.profile})" if args.profile else ""))
        except Exception as exc:  # report every recipe, then fail
            failed += 1
            print(f"FAIL  {p}: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
