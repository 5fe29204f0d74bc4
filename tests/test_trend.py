"""The reward-curve trend: slope, its p-value of a rise, first/last windows (semantic_reward.evaluation.trend)."""

from __future__ import annotations

import random

import pytest
from scipy.stats import linregress

from semantic_reward.evaluation.trend import curve_trend, format_trend


def _curve(values):
    return [{"step": i + 1, "reward_mean": v} for i, v in enumerate(values)]


def test_a_noisy_rise_is_found_and_sized():
    rng = random.Random(0)
    values = [1.0 + 0.01 * i + rng.gauss(0, 0.01) for i in range(20)]
    trend = curve_trend(_curve(values))
    fit = linregress(range(1, 21), values)
    assert trend["slope_per_step"] == pytest.approx(fit.slope) and trend["slope_stderr"] == pytest.approx(fit.stderr)
    assert trend["p_rise"] == pytest.approx(fit.pvalue / 2) and trend["p_rise"] < 1e-6
    assert trend["window"] == 5
    assert trend["first_mean"] == pytest.approx(sum(values[:5]) / 5)
    assert trend["change"] == pytest.approx(sum(values[-5:]) / 5 - sum(values[:5]) / 5)
    assert "+0.0" in format_trend(trend) and "20 steps" in format_trend(trend)


def test_a_fall_or_flat_noise_is_not_called_a_rise():
    falling = curve_trend(_curve([2.0 - 0.02 * i for i in range(10)]))
    assert falling["slope_per_step"] < 0 and falling["p_rise"] > 0.99
    rng = random.Random(1)
    flat = curve_trend(_curve([1.0 + rng.gauss(0, 0.05) for _ in range(12)]))
    assert flat["p_rise"] > 0.05


def test_unordered_steps_and_too_short_curves():
    shuffled = [{"step": 3, "reward_mean": 3.0}, {"step": 1, "reward_mean": 1.0}, {"step": 2, "reward_mean": 2.0},
                {"step": 4, "reward_mean": 4.0}]
    trend = curve_trend(shuffled)
    assert trend["slope_per_step"] == pytest.approx(1.0) and trend["first_mean"] == 1.0 and trend["last_mean"] == 4.0
    assert curve_trend(_curve([1.0, 2.0])) is None
    assert curve_trend([{"step": 1, "other": 1.0}] * 5) is None


def test_systems_at_the_same_point_share_one_label():
    from semantic_reward.evaluation.report import label_groups

    # the quickstart's CMRC panel: three tuned systems at one point, the base apart
    points = [("base", 0.0, 0.0), ("cold_start", 0.0, 0.0129), ("grpo", 0.0, 0.0129), ("sft_strong", 0.0, 0.0129)]
    assert label_groups(points) == [(0.0, 0.0, ["base"]), (0.0, 0.0129, ["cold_start", "grpo", "sft_strong"])]
    # its drift panel: 2.89 and 2.98 are 3% of the span apart (one label), 2.30 is 20% away (its own)
    points = [("base", 0.0, 0.0), ("cold_start", 2.89, 0.0129), ("grpo", 2.98, 0.0129), ("sft_strong", 2.30, 0.0129)]
    assert [names for _, _, names in label_groups(points)] == [["base"], ["cold_start", "grpo"], ["sft_strong"]]
    assert label_groups([]) == []


def test_a_label_that_would_run_into_the_next_point_goes_to_the_left():
    from semantic_reward.evaluation.report import label_groups, label_sides

    # the quickstart's drift panel: sft_strong's label at 2.37 ran into grpo's point at 3.04 (19% of the span)
    points = [("base", 0.0, 0.0), ("sft_strong", 2.37, 0.0129), ("cold_start", 3.08, 0.0129), ("grpo", 3.04, 0.0129)]
    groups = label_groups(points)
    assert [names for _, _, names in groups] == [["base"], ["sft_strong"], ["cold_start", "grpo"]]
    assert label_sides(groups) == ["right", "left", "right"]
    # the same x gap at another height, or a point far to the right, leaves the label where it was
    assert label_sides([(0.0, 0.0, ["a"]), (0.1, 1.0, ["b"])]) == ["right", "right"]
    assert label_sides([(0.0, 0.0, ["a"]), (0.5, 0.0, ["b"]), (1.0, 0.5, ["c"])]) == ["right", "right", "right"]
    assert label_sides([]) == []
