"""The reward-curve trend: OLS slope, its autocorrelation-corrected p of a rise, first/last windows
(semantic_reward.evaluation.trend)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats
from scipy.stats import linregress

from semantic_reward.evaluation.trend import curve_trend, format_trend, trend_test


def _curve(values):
    return [{"step": i + 1, "reward_mean": v} for i, v in enumerate(values)]


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """A stationary AR(1) series with unit marginal variance."""
    x = np.empty(n)
    x[0] = rng.normal()
    for i in range(1, n):
        x[i] = phi * x[i - 1] + rng.normal() * (1 - phi**2) ** 0.5
    return x


def test_a_noisy_rise_is_found_and_sized():
    rng = random.Random(0)
    values = [1.0 + 0.01 * i + rng.gauss(0, 0.01) for i in range(20)]
    trend = curve_trend(_curve(values))
    fit = linregress(range(1, 21), values)
    # the slope is OLS; its error is OLS's widened to n_eff = n (1 - r1) / (1 + r1) with r1 bias-corrected
    resid = np.array(values) - (fit.intercept + fit.slope * np.arange(1, 21))
    r1 = max(0.0, (20 * (resid[:-1] @ resid[1:]) / (resid @ resid) + 1) / 17)
    n_eff = 20 * (1 - r1) / (1 + r1)
    se = fit.stderr * ((20 - 2) / (n_eff - 2)) ** 0.5
    assert trend["slope_per_step"] == pytest.approx(fit.slope) and trend["intercept"] == pytest.approx(fit.intercept)
    assert trend["lag1_autocorrelation"] == pytest.approx(r1) and trend["effective_steps"] == pytest.approx(n_eff)
    assert trend["slope_stderr"] == pytest.approx(se) and trend["slope_stderr"] >= fit.stderr
    assert trend["p_rise"] == pytest.approx(stats.t.sf(fit.slope / se, n_eff - 2)) and trend["p_rise"] < 1e-4
    assert trend["window"] == 5
    assert trend["first_mean"] == pytest.approx(sum(values[:5]) / 5)
    assert trend["change"] == pytest.approx(sum(values[-5:]) / 5 - sum(values[:5]) / 5)
    line = format_trend(trend)
    assert "+0.0" in line and "20 steps" in line and "autocorrelation-corrected" in line
    assert f"{n_eff:.1f} effective steps" in line and "lag-1" in trend["method"]


def test_autocorrelated_noise_without_a_trend_is_rarely_called_a_rise():
    """AR(1) noise (phi 0.7, 24 steps, as a short RL run's per-step means): OLS's one-sided 5% test calls a rise
    in about a quarter of trend-free series; the corrected test stays near its nominal 5%."""
    rng = np.random.default_rng(20)
    trials, steps = 600, np.arange(24)
    naive = corrected = 0
    for _ in range(trials):
        y = _ar1(rng, 24, 0.7)
        fit = linregress(steps, y)
        naive += (fit.pvalue / 2 if fit.slope > 0 else 1 - fit.pvalue / 2) < 0.05
        p = trend_test(y, steps)["p_rise"]
        corrected += p is not None and p < 0.05
    assert naive / trials > 0.17  # the defect: the steps treated as independent
    assert corrected / trials < 0.11  # measured 0.07 at this seed; nominal 0.05
    assert corrected < naive / 2


def test_a_real_trend_in_autocorrelated_noise_is_still_found():
    rng = np.random.default_rng(21)
    found = sum((trend_test(_ar1(rng, 24, 0.5) + 0.2 * np.arange(24))["p_rise"] or 1.0) < 0.05 for _ in range(200))
    assert found / 200 > 0.75  # about 0.88 by simulation


def test_a_fall_or_flat_noise_is_not_called_a_rise():
    falling = curve_trend(_curve([2.0 - 0.02 * i + 0.001 * (-1) ** i for i in range(10)]))
    assert falling["slope_per_step"] < 0 and falling["p_rise"] > 0.99
    rng = random.Random(1)
    flat = curve_trend(_curve([1.0 + rng.gauss(0, 0.05) for _ in range(12)]))
    assert flat["p_rise"] > 0.05


def test_one_slow_swing_has_too_few_effective_steps_to_test():
    swing = 1.0 + 0.05 * np.sin(2 * np.pi * np.arange(24) / 24)  # one wave over the run: neighbours nearly equal
    trend = curve_trend(_curve(list(swing)))
    assert trend["effective_steps"] < 3 and trend["p_rise"] is None and trend["slope_stderr"] is None
    assert "not tested" in format_trend(trend) and "+-" not in format_trend(trend)


def test_a_trend_written_before_the_correction_still_formats():
    old = {"key": "reward_mean", "steps": 24, "slope_per_step": 0.0018, "slope_stderr": 0.0006, "intercept": 1.1,
           "p_rise": 0.0026, "window": 6, "first_mean": 1.122, "last_mean": 1.154, "change": 0.032}
    assert "one-sided p of a rise 0.0026, steps treated as independent" in format_trend(old)


def test_unordered_steps_and_too_short_curves():
    shuffled = [{"step": 3, "reward_mean": 3.0}, {"step": 1, "reward_mean": 1.0}, {"step": 2, "reward_mean": 2.0},
                {"step": 4, "reward_mean": 4.0}]
    trend = curve_trend(shuffled)
    assert trend["slope_per_step"] == pytest.approx(1.0) and trend["first_mean"] == 1.0 and trend["last_mean"] == 4.0
    assert trend["p_rise"] == 0.0 and trend["slope_stderr"] == 0.0  # an exact line
    assert curve_trend(_curve([1.0, 2.0])) is None
    assert curve_trend([{"step": 1, "other": 1.0}] * 5) is None
    with pytest.raises(ValueError, match="at least 3 points"):
        trend_test([1.0, 2.0])


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
