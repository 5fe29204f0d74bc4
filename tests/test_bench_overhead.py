"""The overhead benchmark's table code on synthetic verl step records (the full run is `make bench-overhead`)."""

from __future__ import annotations

import math

import pytest
from bench_reward_overhead import compare, constant_reward, format_table, step_rows, summarize


def _records(steps: list[float], gen: list[float], save_last: float = 0.0, reward: list[float] | None = None):
    out = {}
    for i, (s, g) in enumerate(zip(steps, gen, strict=True), start=1):
        m = {"timing_s/step": s, "timing_s/gen": g, "response_length/mean": 20.0 + i}
        if reward is not None:
            m["timing_s/reward"] = reward[i - 1]
        if i == len(steps) and save_last:
            m["timing_s/save_checkpoint"] = save_last
        out[i] = m
    return out


def test_rows_leave_out_the_checkpoint_save_and_keep_step_order():
    rows = step_rows({2: {"timing_s/step": 12.0}, 1: {"timing_s/step": 30.0, "timing_s/save_checkpoint": 4.0,
                                                      "timing_s/agent_loop/compute_score/mean": 0.25}})
    assert [r["step"] for r in rows] == [1, 2]
    assert [r["step_s"] for r in rows] == [26.0, 12.0]
    assert rows[0]["reward_call_s"] == 0.25 and math.isnan(rows[1]["reward_call_s"])
    assert math.isnan(rows[1]["gen_s"]) and math.isnan(rows[1]["reward_s"])


def test_a_step_without_verl_step_timer_is_an_error_naming_it():
    with pytest.raises(ValueError, match="step 3 has no timing_s/step"):
        step_rows({3: {"timing_s/gen": 1.0}})


def test_summary_ratio_and_share_from_step_times():
    # warm-up 40 / 35, then semantic 12, 14, 16 (+2 s save at the end) vs constant 10, 10, 10
    ours = summarize([step_rows(_records([40.0, 12.0, 14.0, 18.0], [30.0, 9.0, 10.0, 11.0], save_last=2.0))])
    const = summarize([step_rows(_records([35.0, 10.0, 10.0, 10.0], [25.0, 8.0, 8.0, 8.0]))])
    assert ours["warmup_step_s"] == [40.0] and ours["steps_measured"] == 3
    assert ours["mean_step_s"] == pytest.approx(14.0)
    assert ours["mean_response_length"] == pytest.approx(23.0)  # steps 2..4: 22, 23, 24
    cmp = compare(ours, const)
    assert cmp["step_ratio"] == pytest.approx(1.4)
    assert cmp["reward_share"] == pytest.approx(4.0 / 14.0)
    assert cmp["gen_ratio"] == pytest.approx(10.0 / 8.0)
    assert "reward_share_logged" not in cmp  # V1 logs no timing_s/reward


def test_logged_reward_timer_gives_its_own_share():
    ours = summarize([step_rows(_records([20.0, 10.0, 10.0], [5.0, 5.0, 5.0], reward=[9.0, 2.0, 3.0]))])
    const = summarize([step_rows(_records([20.0, 8.0, 8.0], [5.0, 5.0, 5.0]))])
    cmp = compare(ours, const)
    assert cmp["reward_share_logged"] == pytest.approx(2.5 / 10.0)
    assert cmp["reward_share"] == pytest.approx(0.2)


def test_repeats_pool_their_steady_steps_and_keep_each_warm_up():
    first = step_rows(_records([40.0, 10.0, 12.0], [1.0, 1.0, 1.0]))
    second = step_rows(_records([30.0, 20.0, 20.0], [1.0, 1.0, 1.0]))
    pooled = summarize([first, second])
    assert pooled["warmup_step_s"] == [40.0, 30.0]
    assert pooled["steps_measured"] == 4
    assert pooled["mean_step_s"] == pytest.approx(15.5)  # (10 + 12 + 20 + 20) / 4


def test_summary_needs_a_step_after_warm_up():
    with pytest.raises(ValueError, match="1 step"):
        summarize([step_rows(_records([5.0], [1.0]))])


def test_table_shows_both_runs_the_ratio_and_the_share():
    ours = summarize([step_rows(_records([40.0, 12.0, 16.0], [30.0, 9.0, 11.0]))])
    const = summarize([step_rows(_records([35.0, 10.0, 10.0], [25.0, 8.0, 8.0]))])
    result = {"runs": {"semantic": {"summary": ours}, "constant": {"summary": const}},
              "comparison": compare(ours, const), "steps_per_run": 3, "repeats": 1, "warmup": 1,
              "profile": "cpu-tiny"}
    table = format_table(result)
    assert "| semantic | 40.00 | 14.00 | 10.00 | - | 22.5 | 2 |" in table
    assert "| constant | 35.00 | 10.00 | 8.00 | - | 22.5 | 2 |" in table
    assert "ratio semantic/constant: 1.400 (gen 1.250)" in table
    assert "reward's share of a step: 28.6%" in table
    result["runs"]["semantic"]["runs"] = [{"steps": step_rows(_records([40.0, 12.0, 16.0], [1.0, 1.0, 1.0]))}]
    assert "semantic run 1 step s: 40.0 / 12.0 / 16.0" in format_table(result)


def test_constant_reward_ignores_the_response():
    assert constant_reward("zh-bo", "anything", "ref") == constant_reward("x", "", None, extra_info={}) == 0.5


@pytest.mark.shared_data
def test_the_semantic_run_reaches_verl_without_an_encoder_audit(tmp_path, news_pairs, minilm_path):
    """The benchmark reuses the experiment's GRPO stage with no audit and no data stage of its own:
    cpu-tiny's tau_from_audit stopped it before verl started ("the encoder audit wrote no audit.json"), and
    the stages' length check would have (no stats.json where the spec points). The stage now gets to verl's
    command (stubbed here), with the recipe's tau and the benchmark's step count."""
    import argparse
    from pathlib import Path

    from bench_reward_overhead import _experiment, grpo_spec
    from data_tools.cli import main as data_tools_main
    from tiny_models import build_tiny_policy

    from semantic_reward.experiment.stages import RUNNERS, StageContext
    from tests.conftest import SHARED_DATA

    corpus = SHARED_DATA / "bo_zh_news.jsonl"
    texts = [r["bo"] for r in news_pairs] + [r["zh"] for r in news_pairs]
    policy = build_tiny_policy(texts, tmp_path / "policy", vocab_size=2000, hidden_size=32, num_layers=1,
                               num_heads=2)
    data = tmp_path / "data"
    assert data_tools_main(["mt", "--input", str(corpus), "--out", str(data), "--quiet", "--direction", "zh-bo",
                            "--cold-start", "0.5", "--dev", "0.1", "--test", "0.1"]) == 0
    args = argparse.Namespace(corpus=corpus, profile="cpu-tiny")
    exp = _experiment(args, tmp_path / "bench", policy, Path(minilm_path))
    assert exp.stages["grpo"]["tau_from_audit"] is True  # what made the benchmark stop
    spec = grpo_spec(exp.stages["grpo"], policy, Path(minilm_path), data, 3, ["actor_rollout_ref.rollout.seed=7"])
    assert spec["tau_from_audit"] is False and spec["stats"] is None
    stage_dir = tmp_path / "bench" / "semantic"
    stage_dir.mkdir(parents=True)

    class ReachedVerl(Exception):
        pass

    def run(cmd, log_path, env, on_line=None):
        raise ReachedVerl(cmd)

    with pytest.raises(ReachedVerl) as reached:
        RUNNERS["grpo"](StageContext("semantic", spec, stage_dir, exp, run))
    cmd = reached.value.args[0]
    assert cmd[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert "trainer.total_training_steps=3" in cmd and "actor_rollout_ref.rollout.seed=7" in cmd
    assert not any(c.startswith("reward.reward_kwargs.tau=") for c in cmd)  # the recipe's tau stands
    assert f"actor_rollout_ref.model.path={policy}" in cmd
