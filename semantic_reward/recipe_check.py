"""Checks a recipe before it reaches a GPU cluster: composes it against the installed verl
config tree, rejects keys verl does not know (Hydra would silently add a misspelt key
from a YAML file), and runs verl's own config validation plus ours.

    python -m semantic_reward.recipe_check recipes/*/config.yaml
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

__all__ = ["RecipeError", "compose_recipe", "unknown_keys", "check_recipe", "EXTENSIONS"]

EXTENSIONS = ("reward.reward_kwargs", "data.raw_corpus")
"""Subtrees that are ours (validated by our own config classes), not verl's."""

BASES = ("ppo_trainer", "sft_trainer_engine")


class RecipeError(ValueError):
    """A recipe that would fail (or silently misbehave) on the cluster."""


def _base_name(raw: dict[str, Any], path: Path) -> str:
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry in BASES:
            return entry
    raise RecipeError(f"{path}: its defaults list names none of {BASES}")


def _compose(config_dir: Path, name: str, overrides: Sequence[str] = ()) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base=None):
        return compose(config_name=name, overrides=list(overrides))


def compose_recipe(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The recipe composed exactly as ``--config-path/--config-name`` would compose it."""
    path = Path(path)
    return _compose(path.parent, path.stem, overrides)


def _leaves(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def unknown_keys(path: str | Path) -> list[str]:
    """Keys the recipe sets that the verl base config does not have (with a suggestion)."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    base = _base_config(_base_name(raw, path))
    problems = []
    for key in _leaves({k: v for k, v in raw.items() if k not in ("hydra", "defaults")}):
        if any(key == e or key.startswith(e + ".") for e in EXTENSIONS):
            continue
        node: Any = base
        walked = []
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


_BASE_CACHE: dict[str, DictConfig] = {}


def _base_config(name: str) -> DictConfig:
    if name not in _BASE_CACHE:
        from hydra import compose, initialize_config_module
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        with initialize_config_module("verl.trainer.config", version_base=None):
            _BASE_CACHE[name] = compose(config_name=name)
    return _BASE_CACHE[name]


def check_recipe(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose, reject unknown keys, run verl's validation and ours; returns the composed config."""
    path = Path(path)
    problems = unknown_keys(path)
    if problems:
        raise RecipeError(f"{path}: " + "; ".join(problems))
    cfg = compose_recipe(path, overrides)
    if "actor_rollout_ref" in cfg:
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config

        OmegaConf.resolve(cfg)
        checked = cfg
        if cfg.actor_rollout_ref.rollout.name == "vllm" and importlib.util.find_spec("vllm") is None:
            # verl's last check asks vLLM which LoRA ranks it allows; without vLLM (a CPU
            # machine) run every other check and say so.
            print(f"note: vLLM is not installed here; {path}'s vLLM LoRA-rank check is skipped", file=sys.stderr)
            checked = cfg.copy()
            with open_dict(checked):
                checked.actor_rollout_ref.rollout.name = "not-vllm"
        validate_config(checked, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        if cfg.reward.reward_manager.name == "semantic" or cfg.reward.get("reward_kwargs"):
            from .verl_adapter.manager import settings_from_verl_config

            settings_from_verl_config(cfg)
        if cfg.data.get("raw_corpus"):
            from data_tools.verl_dataset import build_config_from_verl

            # validates data.raw_corpus; the input paths come from data.train_files at run time
            build_config_from_verl(list(cfg.data.train_files) if not isinstance(cfg.data.train_files, str)
                                   else [cfg.data.train_files], cfg.data)
    return cfg


def main(argv: list[str] | None = None) -> int:
    paths = argv if argv is not None else sys.argv[1:]
    failed = 0
    for p in paths:
        try:
            check_recipe(p)
            print(f"ok    {p}")
        except Exception as exc:  # report every recipe, then fail
            failed += 1
            print(f"FAIL  {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
