"""The launcher composes the exact command for a cluster shape, and its pre-flight check validates that very
command: every GRPO recipe on 1, 2 and 4 nodes of 8 GPUs passes, shapes verl would reject fail with the keys
and numbers, several nodes go through Ray Jobs with absolute paths (issue 12, items 1 and 2)."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

from semantic_reward.launch import DEFAULT_JOBS_ADDRESS, FORWARDED_ENV, Shape, compose_launch, main
from semantic_reward.recipe_check import RecipeError, check_recipe, compose_recipe, recipe_kind

ROOT = Path(__file__).resolve().parents[1]
GRPO = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml") if recipe_kind(p) == "grpo")
SFT = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml") if recipe_kind(p) == "sft")


def _printed_command(out: str) -> list[str]:
    return shlex.split(out.splitlines()[0])


def _trainer_overrides(argv: list[str]) -> tuple[str, list[str]]:
    """The recipe name and the Hydra overrides of the verl command inside a printed launch command."""
    if argv[:3] == ["ray", "job", "submit"]:
        assert argv[argv.index("--") + 1:argv.index("--") + 3] == ["bash", "-c"]
        entry = argv[-1]
        argv = shlex.split(entry.split(" && ")[-1])
    name = next(a.split("=", 1)[1] for a in argv if a.startswith("--config-name="))
    start = next(i for i, a in enumerate(argv) if a.startswith("--config-name=")) + 1
    return name, argv[start:]


def _listed(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_grpo_and_sft_recipes_are_found():
    assert {"grpo_semantic_zh_bo", "grpo_semantic_bo_zh", "grpo_semantic_headline"} <= set(GRPO)
    assert "sft_cold_start" in SFT


@pytest.mark.parametrize("nnodes", [1, 2, 4])
@pytest.mark.parametrize("recipe", GRPO)
def test_dry_run_passes_for_every_grpo_recipe_on_8_gpu_nodes(recipe, nnodes, tmp_path, capsys):
    argv = [recipe, "--dry-run", "--nnodes", str(nnodes), "--gpus-per-node", "8"]
    if nnodes > 1:
        argv += ["--shared-root", str(tmp_path)]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    command = _printed_command(out)
    assert (command[:3] == ["ray", "job", "submit"]) == (nnodes > 1)
    name, overrides = _trainer_overrides(command)
    assert name == recipe
    assert {"profile=paper", f"profile.nnodes={nnodes}", "profile.n_gpus_per_node=8",
            "profile.encoder.num_gpus=0"} <= set(overrides)
    # what was printed is what was checked: the same overrides compose to this shape
    cfg = check_recipe(recipe, None, overrides, shared_paths=nnodes > 1)
    assert (cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (nnodes, 8)
    assert cfg.data.train_batch_size * cfg.actor_rollout_ref.rollout.n % (8 * nnodes) == 0
    if nnodes > 1:
        for f in [*_listed(cfg.data.train_files), *_listed(cfg.data.val_files)]:
            assert Path(f).is_absolute() and str(f).startswith(str(tmp_path))
        assert str(cfg.trainer.default_local_dir).startswith(str(tmp_path))
    assert f"ok    {recipe} on {nnodes} node(s) x 8 GPU(s)" in out


def _verl_validate(recipe: str, overrides: list[str]) -> None:
    """verl's own pre-flight (validate_config), on the composed config, with the vLLM-only check skipped."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = compose_recipe(recipe, None, overrides)
    OmegaConf.resolve(cfg)
    with open_dict(cfg):
        cfg.actor_rollout_ref.rollout.name = "not-vllm"
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


@pytest.mark.parametrize("nnodes,gpus", [(1, 7), (4, 7)])
def test_a_gpu_per_node_for_the_encoder_fails_with_keys_and_numbers(nnodes, gpus, capsys):
    argv = ["grpo_semantic_zh_bo", "--dry-run", "--nnodes", str(nnodes), "--gpus-per-node", "8",
            "--encoder-gpus", "1", "--shared-root", str(ROOT)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    err = captured.err
    total = nnodes * gpus
    assert (f"data.train_batch_size 128 x actor_rollout_ref.rollout.n 8 = 1024 rollouts per step is not divisible "
            f"by trainer.nnodes {nnodes} x trainer.n_gpus_per_node {gpus} = {total} GPUs") in err
    # ... and verl itself rejects the same composed command
    _, overrides = _trainer_overrides(_printed_command(captured.out))
    with pytest.raises(AssertionError, match=f"real_train_batch_size \\(1024\\) must be divisible .*\\({total}\\)"):
        _verl_validate("grpo_semantic_zh_bo", overrides)


def test_a_shape_verl_accepts_before_start_but_rejects_at_the_first_update_is_caught(capsys):
    """16 nodes x 8: 1024 rollouts divide over 128 GPUs (verl's pre-flight passes), but each rank's mini-batch
    is 32 x 8 / 128 = 2 rollouts, not divisible by the micro-batch 4: verl asserts it only in the workers."""
    argv = ["grpo_semantic_zh_bo", "--dry-run", "--nnodes", "16", "--gpus-per-node", "8", "--shared-root", str(ROOT)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert ("actor_rollout_ref.actor.ppo_mini_batch_size 32 x rollout.n 8 / 128 ranks = 2 is not divisible by "
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu 4") in captured.err
    _, overrides = _trainer_overrides(_printed_command(captured.out))
    _verl_validate("grpo_semantic_zh_bo", overrides)  # verl's own check does not see it


def test_log_prob_micro_batch_rule_names_the_key(capsys):
    argv = ["grpo_semantic_zh_bo", "--dry-run", "--nnodes", "1", "--gpus-per-node", "8",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=48"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert ("per-rank log-prob batch 1024 rollouts / 8 ranks = 128 is not divisible by "
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu 48") in err


def test_several_nodes_refuse_relative_paths_and_name_them(capsys):
    assert main(["grpo_semantic_zh_bo", "--dry-run", "--nnodes", "2", "--gpus-per-node", "8"]) == 1
    err = capsys.readouterr().err
    for key, value in [("data.train_files", "data/mt_zh_bo/rl/rl.parquet"),
                       ("data.val_files", "data/mt_zh_bo/rl/dev.parquet"),
                       ("trainer.default_local_dir", "checkpoints/semantic-reward/grpo_semantic_zh_bo")]:
        assert f"{key}={value}" in err
    assert "SHARED_ROOT" in err
    # a hub id is not a relative path; a relative local encoder folder is
    cfg = compose_recipe("grpo_semantic_zh_bo", "paper", ["profile.nnodes=2", "data.train_files=/a/rl.parquet",
                                                          "data.val_files=/a/dev.parquet",
                                                          "trainer.default_local_dir=/a/ckpt",
                                                          "reward.reward_kwargs.encoder.model=runs/enc/model"])
    from semantic_reward.recipe_check import relative_paths

    assert relative_paths(cfg, "grpo") == {"reward.reward_kwargs.encoder.model": ["runs/enc/model"]}


def test_ray_job_command_carries_the_environment_and_probes_every_node(monkeypatch):
    for key in FORWARDED_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SEMANTIC_REWARD_TRAIN_METRICS", "0")
    monkeypatch.setenv("UNRELATED_VAR", "not forwarded")
    launch = compose_launch("grpo_semantic_zh_bo", Shape(2, 8), shared_root=ROOT, env={"MY_FLAG": "x"})
    cmd = launch.command
    assert cmd[:5] == ["ray", "job", "submit", "--address", DEFAULT_JOBS_ADDRESS]
    env = json.loads(cmd[cmd.index("--runtime-env-json") + 1])["env_vars"]
    assert env == {"HF_HUB_OFFLINE": "1", "SEMANTIC_REWARD_TRAIN_METRICS": "0", "MY_FLAG": "x",
                   "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1"}
    # Ray's CLI joins the words after `--` with shlex.join and the job's shell splits them again
    dash = cmd.index("--")
    assert shlex.split(shlex.join(cmd[dash + 1:])) == ["bash", "-c", cmd[-1]]
    probe, trainer = cmd[-1].split(" && ")[-2:]
    assert shlex.split(probe) == ["python", "-m", "semantic_reward.cluster", "check", "--nnodes", "2",
                                  "--gpus-per-node", "8", "--manager", "semantic"]
    assert shlex.split(trainer)[:3] == ["python", "-m", "verl.trainer.main_ppo"]
    assert cmd[-1].startswith(f"cd {ROOT} && ")
    with pytest.raises(RecipeError, match="VERL_FULL_DETERMINISM"):
        compose_launch("grpo_semantic_zh_bo", Shape(2, 8), env={"VERL_FULL_DETERMINISM": "1"})


def test_sft_runs_under_torchrun_on_one_node_and_verls_ray_trainer_on_several():
    local = compose_launch("sft_cold_start", Shape(1, 8))
    assert local.command[:4] == ["torchrun", "--standalone", "--nproc_per_node=8", "-m"]
    assert local.command[4] == "verl.trainer.sft_trainer" and local.runtime_env is None
    jobs = compose_launch("sft_cold_start", Shape(2, 8), shared_root=ROOT)
    trainer = shlex.split(jobs.command[-1].split(" && ")[-1])
    assert trainer[:3] == ["python", "-m", "verl.trainer.sft_trainer_ray"]
    assert "--manager" not in jobs.command[-1]


def test_shape_refuses_an_encoder_that_takes_every_gpu():
    with pytest.raises(RecipeError, match="ENCODER_GPUS=8 leaves none of GPUS_PER_NODE=8"):
        Shape(1, 8, 8)


@pytest.mark.parametrize("env,ok", [({"NNODES": "4"}, True), ({"NNODES": "4", "ENCODER_GPUS": "1"}, False)])
def test_launch_sh_dry_run_without_gpus_or_ray(env, ok, tmp_path):
    run_env = {**os.environ, "PYTHON": sys.executable, "GPUS_PER_NODE": "8", "SHARED_ROOT": str(tmp_path),
               "PYTHONPATH": str(ROOT), "RAY_ADDRESS": "", **env}
    proc = subprocess.run([str(ROOT / "scripts" / "launch.sh"), "grpo_semantic_zh_bo", "--dry-run"],
                          capture_output=True, text=True, env=run_env, timeout=600)
    assert proc.returncode == (0 if ok else 1), proc.stderr[-2000:]
    first = proc.stdout.splitlines()[0]
    assert first.startswith("ray job submit --address http://127.0.0.1:8265")
    assert "profile.nnodes=4" in first
    assert ("profile.n_gpus_per_node=8" if ok else "profile.n_gpus_per_node=7") in first
    if not ok:
        assert "= 28 GPUs" in proc.stderr
