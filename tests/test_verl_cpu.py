"""verl's own SFT trainer on CPU with our cold-start recipe: train, checkpoint, resume."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.cli import main as data_tools_main
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
CPU_OVERRIDES = [
    "trainer.device=cpu", "trainer.n_gpus_per_node=1", "engine.strategy=fsdp2",
    "+model.override_config.attn_implementation=sdpa", "data.num_workers=0",
]


def _env(platform: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"})
    if platform:
        env["VERL_PLATFORM"] = platform
    return env


def test_cpu_platform_changes_nothing_unless_selected():
    code = ("import verl, torch.distributed as d\n"
            "from verl.plugin.platform.platform_manager import PlatformRegistry\n"
            "print(getattr(d.init_process_group, '_semantic_reward_cpu', False), PlatformRegistry.get('cpu') is not None)")
    off = subprocess.run([sys.executable, "-c", code], env=_env(None), capture_output=True, text=True, timeout=300)
    on = subprocess.run([sys.executable, "-c", code], env=_env("cpu"), capture_output=True, text=True, timeout=300)
    assert off.stdout.split() == ["False", "True"]  # registered, but inactive
    assert on.stdout.split() == ["True", "True"]


def test_cold_start_recipe_trains_checkpoints_and_resumes_on_cpu(tmp_path, news_pairs):
    from semantic_reward.tiny_policy import build_tiny_policy

    data = tmp_path / "data"
    assert data_tools_main(["mt", "--input", str(SHARED_DATA / "bo_zh_news.jsonl"), "--out", str(data), "--quiet"]) == 0
    model = build_tiny_policy([r["bo"] for r in news_pairs] + [r["zh"] for r in news_pairs], tmp_path / "model",
                              vocab_size=800, hidden_size=32, num_layers=1, num_heads=2)
    ckpt = tmp_path / "ckpt"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
            "-m", "verl.trainer.sft_trainer", f"--config-path={ROOT / 'recipes' / 'sft_cold_start'}",
            "--config-name=config", f"model.path={model}", f"data.train_files={data / 'sft' / 'cold_start.parquet'}",
            f"data.val_files={data / 'sft' / 'dev.parquet'}", "data.train_batch_size=8",
            "data.micro_batch_size_per_gpu=4", "data.max_length=256", f"trainer.default_local_dir={ckpt}",
            "trainer.save_freq=2", *CPU_OVERRIDES]

    first = subprocess.run([*args, "trainer.total_training_steps=2"], env=_env("cpu"), cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    steps = re.findall(r"^step:(\d+) - perf.*train/loss:([0-9.]+)", first.stdout + first.stderr, re.M)
    assert [s for s, _ in steps] == ["1", "2"]
    assert (ckpt / "global_step_2" / "huggingface").is_dir()

    second = subprocess.run([*args, "trainer.total_training_steps=3"], env=_env("cpu"), cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = re.findall(r"^step:(\d+) - perf", second.stdout + second.stderr, re.M)
    assert resumed == ["3"]  # continued from the checkpoint instead of starting over
    assert (ckpt / "global_step_3").is_dir()


def test_sft_without_the_cpu_platform_fails_as_documented(tmp_path):
    pytest.importorskip("verl")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m",
         "verl.trainer.sft_trainer", f"--config-path={ROOT / 'recipes' / 'sft_cold_start'}", "--config-name=config",
         "trainer.device=cpu", "data.train_files=/nonexistent.parquet"],
        env=_env(None), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "NCCL" in proc.stdout + proc.stderr  # verl alone has no CPU process group


@pytest.mark.ray
def test_grpo_end_to_end_on_cpu_with_checkpoint_and_resume(tmp_path, news_pairs):
    """rollout (hf) -> our reward -> GRPO update -> weight sync, a checkpoint, and a resume."""
    import json

    out = tmp_path / "qs"
    base = [sys.executable, str(ROOT / "scripts" / "quickstart.py"), "--out", str(out), "--cold-start-steps", "10"]
    first = subprocess.run([*base, "--steps", "2", "trainer.save_freq=2"], env=_env(None), cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == [1, 2]
    assert all(isinstance(r, float) for r in summary["reward_mean"])  # our reward reached the trainer
    assert summary["kl_loss"][1] > 0  # the update moved the policy away from the reference
    log = (out / "main_ppo.log").read_text()
    assert "hf rollout: weights synced for step 1" in log  # actor weights reached the rollout after the update
    assert (out / "checkpoints" / "global_step_2").is_dir()

    second = subprocess.run([*base, "--steps", "3", "trainer.save_freq=2"], env=_env(None), cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:] + second.stdout[-2000:]
    assert json.loads((out / "summary.json").read_text())["steps"] == [3]  # resumed after step 2
