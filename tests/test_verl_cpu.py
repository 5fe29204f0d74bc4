"""verl's own entry points on CPU with our recipe files (recipes/<name>.yaml at profile=cpu-tiny):
the SFT trainer and main_ppo (legacy and V1 GRPO) train, checkpoint and resume; the plugins register."""

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from data_tools.cli import main as data_tools_main
from semantic_reward.experiment.metrics import SCORE_KEY, parse_step_line
from semantic_reward.recipe_check import RECIPES_DIR
from semantic_reward.reward_math import REWARD_KEYS
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
# The profile carries every CPU setting (device, fp32, hf rollout, V1 trainer, LoRA, thinking off); a test
# adds only its paths and step counts, as semantic_reward.experiment.stages does.
PROFILE = "profile=cpu-tiny"
# A tiny policy earns almost no reward, so GRPO's advantages are ~0 and the policy would barely move; an
# entropy bonus and a large step size move it every step, so a rollout that missed an update would show in
# its log-probs. With the profile's LoRA (B starts at zero) lr 0.01 gave kl_loss 5.2e-4 after one update.
# No warmup: the profile's would keep the first updates of a 2-3 step run near zero.
MOVE = ["actor_rollout_ref.actor.entropy_coeff=0.01", "actor_rollout_ref.actor.optim.lr=0.03",
        "profile.grpo.lr_warmup_steps=0"]
# The hf rollout returns log-probs of its processed (temperature / top-p) distribution, as vLLM does, and the
# actor's apply the temperature only; with the recipe's top_p 0.9 the two differ by about 1e-4 before any
# update (measured, both trainers). top_p 1.0 makes them comparable, so a missed weight sync shows.
SYNC = ["actor_rollout_ref.rollout.top_p=1.0"]
DIFF_KEY = "training/rollout_probs_diff_max"
log = logging.getLogger(__name__)


def _bf16_exact(x: float) -> bool:
    import torch

    return float(torch.tensor(x, dtype=torch.float32).to(torch.bfloat16).float()) == x


def _env(platform: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled",
                "RAY_DEDUP_LOGS": "0"})
    if platform:
        env["VERL_PLATFORM"] = platform
    return env


_PROBE = """
import json, sys
import verl, torch.distributed as d
from verl.plugin.platform.platform_manager import PlatformRegistry
from verl.workers.engine.base import EngineRegistry
from verl.workers.rollout.base import _ROLLOUT_REGISTRY
from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER
print(json.dumps({
    "cpu_platform": PlatformRegistry.get("cpu") is not None,
    "patched": bool(getattr(d.init_process_group, "_semantic_reward_cpu", False)),
    "cpu_engines": any("cpu" in r for b in EngineRegistry._engines.values() for r in b.values()),
    "hf_rollout": _ROLLOUT_REGISTRY.get(("hf", "async")),
    "hf_module_loaded": "semantic_reward.verl_cpu.hf_rollout" in sys.modules,
    "verl_cpu_loaded": any(m.startswith("semantic_reward.verl_cpu") for m in sys.modules),
    "semantic_manager": "semantic" in REWARD_MANAGER,
    "replay_buffer_loaded": "verl.trainer.ppo.v1.replay_buffer" in sys.modules,
}))
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
print(json.dumps({"poll": ReplayBuffer("sync", {}, None, "drop", {}).poll_interval,
                  "explicit_poll": ReplayBuffer("sync", {}, None, "drop", {}, 3.0).poll_interval}))
"""


def _probe(**env) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE], env={**_env(None), **env}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    return {**json.loads(lines[-2]), **json.loads(lines[-1])}


def test_both_plugins_are_declared_and_installed_as_separate_entry_points():
    import tomllib
    from importlib.metadata import entry_points

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["verl.plugins"]
    assert declared == {"semantic_reward": "semantic_reward.verl_adapter.plugin",
                        "semantic_reward_cpu": "semantic_reward.verl_cpu.plugin"}
    installed = {ep.name: ep.value for ep in entry_points(group="verl.plugins")}
    for name, target in declared.items():  # verl swallows a failed plugin at DEBUG level: check it is there
        assert installed.get(name) == target, f"entry point {name} not installed: run pip install -e . again"


def test_cpu_plugin_registers_names_but_patches_nothing_unless_selected():
    off = _probe()
    assert off["cpu_platform"] and off["semantic_manager"]
    assert off["hf_rollout"] == "semantic_reward.verl_cpu.hf_rollout.HFServerAdapter"
    assert not off["patched"] and not off["cpu_engines"]  # torch and verl untouched without VERL_PLATFORM=cpu
    assert not off["hf_module_loaded"]  # the rollout is imported only when a config names it
    assert off["poll"] == 2.0  # verl's replay-buffer poll untouched

    on = _probe(VERL_PLATFORM="cpu")
    assert on["patched"] and on["cpu_engines"] and on["cpu_platform"] and on["semantic_manager"]
    # the V1 replay buffer is patched when imported (not imported by the plugin itself), an explicit value wins
    assert not on["replay_buffer_loaded"] and on["poll"] == 0.1 and on["explicit_poll"] == 3.0


def test_reward_plugin_loads_without_the_cpu_plugin():
    gpu_user = _probe(VERL_USE_EXTERNAL_PLUGINS="semantic_reward")
    assert gpu_user["semantic_manager"]
    assert not gpu_user["verl_cpu_loaded"] and not gpu_user["cpu_platform"] and gpu_user["hf_rollout"] is None


def test_patches_refuse_another_verl_version(monkeypatch, caplog):
    import verl

    from semantic_reward.verl_cpu import patches, plugin

    with pytest.raises(patches.VerlVersionError, match=r"verl 0\.9\.1.*verl 9\.9\.9 is installed"):
        patches.check_verl_version("9.9.9")
    monkeypatch.setattr(verl, "__version__", "9.9.9")
    monkeypatch.delenv("VERL_PLATFORM", raising=False)
    plugin.load()  # not selected: left out quietly, nothing raised
    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    with caplog.at_level("ERROR"), pytest.raises(patches.VerlVersionError):
        plugin.load()
    assert any("VERL_PLATFORM=cpu cannot be used" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def mt_data(tmp_path_factory, news_pairs) -> Path:
    """data_tools' MT build of the real news pairs, split as the experiment splits it at cpu-tiny."""
    out = tmp_path_factory.mktemp("data")
    argv = ["mt", "--input", str(SHARED_DATA / "bo_zh_news.jsonl"), "--out", str(out), "--quiet",
            "--direction", "zh-bo", "--cold-start", "0.5", "--dev", "0.1", "--test", "0.1"]
    assert data_tools_main(argv) == 0
    return out


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory, news_pairs) -> Path:
    from tiny_models import build_tiny_policy

    texts = [r["bo"] for r in news_pairs] + [r["zh"] for r in news_pairs]
    return build_tiny_policy(texts, tmp_path_factory.mktemp("policy"), vocab_size=2000, hidden_size=32,
                             num_layers=1, num_heads=2)


def _run(cmd: list[str], env: dict, cwd: Path, timeout: int = 900) -> dict[int, dict[str, float]]:
    """Run one verl command; its console logger's step lines as {step: metrics} (the experiment's parser)."""
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    steps: dict[int, dict[str, float]] = {}
    for line in (proc.stdout + "\n" + proc.stderr).splitlines():
        parsed = parse_step_line(line)
        if parsed:
            steps.setdefault(parsed[0], {}).update(parsed[1])
    return steps


def _sft_cmd(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
            "-m", "verl.trainer.sft_trainer", f"--config-path={RECIPES_DIR}", "--config-name=sft_cold_start",
            *overrides]


def _grpo_cmd(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={RECIPES_DIR}",
            "--config-name=grpo_semantic_zh_bo", *overrides]


def _grpo_overrides(tmp_path: Path, mt_data: Path, policy: Path, minilm: str) -> list[str]:
    return [PROFILE, f"actor_rollout_ref.model.path={policy}", f"data.train_files={mt_data / 'rl' / 'rl.parquet'}",
            f"data.val_files={mt_data / 'rl' / 'dev.parquet'}", f"trainer.default_local_dir={tmp_path / 'ckpt'}",
            f"reward.reward_kwargs.encoder.model={minilm}", f"hydra.run.dir={tmp_path / 'hydra'}", *MOVE, *SYNC]


def _summary(steps: dict[int, dict[str, float]]) -> dict[int, dict[str, float]]:
    """The numbers these tests judge, per step, for the log (pytest -o log_cli=true --log-cli-level=INFO)."""
    keys = (SCORE_KEY, "semantic_reward/score/mean", "semantic_reward/semantic_similarity/mean",
            "semantic_reward/language_reward/mean", "actor/kl_loss", DIFF_KEY)
    return {step: {k: m[k] for k in keys if k in m} for step, m in sorted(steps.items())}


def _kl_loss(metrics: dict[str, float]) -> float:
    return metrics["actor/kl_loss"]


def test_cold_start_recipe_trains_checkpoints_and_resumes_on_cpu(tmp_path, mt_data, tiny_policy):
    ckpt = tmp_path / "ckpt"
    overrides = [PROFILE, f"model.path={tiny_policy}", f"data.train_files={mt_data / 'sft' / 'cold_start.parquet'}",
                 f"data.val_files={mt_data / 'sft' / 'dev.parquet'}", f"trainer.default_local_dir={ckpt}",
                 "trainer.save_freq=2", "trainer.resume_mode=auto", f"hydra.run.dir={tmp_path / 'hydra'}",
                 # the recipe's cosine schedule ends at lr 0 after step 2 and the resumed run takes the optimizer's
                 # lr from the checkpoint, so step 3 would not move the weights (measured: identical val/loss)
                 "optim.lr_scheduler_type=constant"]

    first = _run(_sft_cmd(*overrides, "trainer.total_training_steps=2"), _env("cpu"), tmp_path)
    assert sorted(first) == [1, 2]
    losses = [first[s]["train/loss"] for s in (1, 2)]
    assert all(math.isfinite(x) for x in losses), losses
    assert not all(_bf16_exact(x) for x in losses), losses  # fp32 training: losses are not bf16 values
    # a LoRA checkpoint at the profile's rank, with the Hugging Face copy the recipe asks for (hf_model)
    lora = OmegaConf.load(RECIPES_DIR / "profile" / "cpu-tiny.yaml").lora
    meta = json.loads((ckpt / "global_step_2" / "lora_train_meta.json").read_text())
    assert (meta["r"], meta["lora_alpha"]) == (lora.rank, lora.alpha), meta
    assert (ckpt / "global_step_2" / "huggingface" / "model.safetensors").is_file()
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "2"

    second = _run(_sft_cmd(*overrides, "trainer.total_training_steps=3"), _env("cpu"), tmp_path)
    assert sorted(second) == [3]  # continued from the checkpoint instead of starting over
    assert (ckpt / "global_step_3").is_dir()
    # verl validates at the last step; a dev split without one full batch would log nan here
    val = {step: m["val/loss"] for run in (first, second) for step, m in run.items() if "val/loss" in m}
    log.info("SFT train/loss %s (step 3: %s), val/loss %s", losses, second[3].get("train/loss"), val)
    assert {2, 3} <= set(val) and all(math.isfinite(v) for v in val.values()), val
    assert val[3] != val[2], val  # the resumed step trained the restored adapter


def test_sft_without_the_cpu_platform_fails_as_documented(tmp_path):
    pytest.importorskip("verl")
    proc = subprocess.run(
        _sft_cmd(PROFILE, "data.train_files=/nonexistent.parquet", f"hydra.run.dir={tmp_path / 'hydra'}"),
        env=_env(None), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "NCCL" in proc.stdout + proc.stderr  # verl alone has no CPU process group


@pytest.mark.ray
def test_grpo_legacy_trainer_end_to_end_on_cpu_with_checkpoint_and_resume(tmp_path, mt_data, tiny_policy,
                                                                           minilm_path):
    """rollout (hf) -> our reward -> GRPO update -> weight sync, a checkpoint, and a resume."""
    base = [*_grpo_overrides(tmp_path, mt_data, tiny_policy, minilm_path), "trainer.use_v1=false",
            "trainer.save_freq=2", "trainer.resume_mode=auto"]
    first = _run(_grpo_cmd(*base, "trainer.total_training_steps=2"), _env("cpu"), tmp_path)
    log.info("legacy GRPO: %s", _summary(first))
    assert sorted(first) == [1, 2]
    for step, m in first.items():  # our reward reached the trainer: verl's score is our manager's score
        assert math.isfinite(m[SCORE_KEY]), (step, m)
        assert m["semantic_reward/score/mean"] == pytest.approx(m[SCORE_KEY], abs=1e-5), (step, m)
        # the reward-hacking diagnostics that need no text (this trainer has no tokenizer at the hook)
        assert {f"semantic_reward/diagnostics/{k}" for k in ("specificity_r_sim", "zero_spread_groups",
                                                            "tau_floor_share")} <= set(m), (step, m)
    assert _kl_loss(first[2]) > 1e-3  # the update moved the policy away from the reference
    # the rollout follows the actor: its log-probs equal the actor's to float noise at every step
    diffs = [first[s][DIFF_KEY] for s in (1, 2)]
    assert max(diffs) < 1e-6, diffs
    assert (tmp_path / "ckpt" / "global_step_2" / "actor").is_dir()

    second = _run(_grpo_cmd(*base, "trainer.total_training_steps=3"), _env("cpu"), tmp_path)
    log.info("legacy GRPO resumed: %s", _summary(second))
    assert sorted(second) == [3]  # resumed after step 2
    assert second[3][DIFF_KEY] < 1e-6


@pytest.mark.ray
def test_grpo_v1_trainer_with_lora_keeps_the_rollout_in_sync(tmp_path, mt_data, tiny_policy, minilm_path):
    """verl's V1 trainer (the profile's), LoRA: the rollout receives the base once and the adapter each step."""
    steps = _run(_grpo_cmd(*_grpo_overrides(tmp_path, mt_data, tiny_policy, minilm_path), "trainer.use_v1=true",
                           "trainer.total_training_steps=3"), _env("cpu"), tmp_path)
    log.info("V1 GRPO with LoRA: %s", _summary(steps))
    assert sorted(steps) == [1, 2, 3]
    assert _kl_loss(steps[3]) > 1e-3  # the adapter moved the policy well away from the base
    diffs = [steps[s][DIFF_KEY] for s in (1, 2, 3)]
    # Measured before (rank 8, top_p 1): about 4e-10 at every step; with the adapter updates dropped (the old
    # behaviour) the same run gave 2.4e-4 at step 2 (a difference of probabilities: the tiny policy's are small).
    assert max(diffs) < 1e-6 and diffs[-1] <= diffs[0] + 1e-7, diffs
    for step, m in steps.items():  # every reward component reached the trainer's metrics
        missing = [k for k in REWARD_KEYS if f"semantic_reward/{k}/mean" not in m]
        assert not missing, (step, missing)
        # and the reward-hacking diagnostics (issue 20 item 3): the rows carry a decoy, the trainer decodes the text
        diag = {k.removeprefix("semantic_reward/diagnostics/"): v for k, v in m.items()
                if k.startswith("semantic_reward/diagnostics/")}
        assert {"specificity_r_sim", "r_sim_own", "r_sim_decoy", "specificity_similarity", "distinct_1_group",
                "distinct_2_step", "zero_spread_groups", "tau_floor_share", "repeated_4gram_ratio"} <= set(diag), diag
        assert diag["specificity_r_sim"] == pytest.approx(diag["r_sim_own"] - diag["r_sim_decoy"], abs=1e-6)
        assert 0.0 < diag["distinct_1_step"] <= 1.0 and 0.0 <= diag["zero_spread_groups"] <= 1.0, diag


def test_grpo_v1_batch_median_length_penalty_reaches_the_trainers_rewards(tmp_path, mt_data, tiny_policy,
                                                                          minilm_path):
    """The follow-up's batch-median penalty, applied by the V1 trainer hook once a step's outputs are all in:
    the penalty bites (start 0.5x / full 1.0x the median, so about half the outputs are over it), and the
    rewards verl trains on (critic/rewards/mean) are the re-scored ones, not the per-trajectory scores."""
    penalty = ["+reward.reward_kwargs.length_penalty.relative_to=batch_median",
               "+reward.reward_kwargs.length_penalty.weight=0.2", "+reward.reward_kwargs.length_penalty.start=0.5",
               "+reward.reward_kwargs.length_penalty.full=1.0"]
    steps = _run(_grpo_cmd(*_grpo_overrides(tmp_path, mt_data, tiny_policy, minilm_path), "trainer.use_v1=true",
                           "trainer.total_training_steps=2", *penalty), _env("cpu"), tmp_path)
    log.info("V1 GRPO, batch-median length penalty: %s", _summary(steps))
    assert sorted(steps) == [1, 2]
    for step, m in steps.items():
        assert m["semantic_reward/batch_median_length"] > 0, (step, m)
        assert m["semantic_reward/length_penalty/mean"] > 0, (step, m)
        # verl's reward statistic comes from the rewritten token-level scores: it equals the mean re-scored
        # score (within float32), which includes the penalty
        assert math.isclose(m[SCORE_KEY], m["semantic_reward/score/mean"], rel_tol=1e-4, abs_tol=1e-4), (step, m)
