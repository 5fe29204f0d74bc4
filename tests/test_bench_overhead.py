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
