"""Whether a training curve rises: a least-squares line through (step, value), tested with autocorrelation in mind.

A short RL run's per-step means are autocorrelated: consecutive steps share the policy, and a tiny run
samples the same few prompts at every step, so a noise excursion lasts several steps. Ordinary least
squares treats the steps as independent and then calls such an excursion a trend (on an AR(1) series
with coefficient 0.7 and 24 steps, its one-sided 5% test fires about a quarter of the time). Here the
slope is OLS, but its standard error is widened for the residuals' lag-1 autocorrelation r1 through an
effective number of steps, n_eff = n (1 - r1) / (1 + r1), and the one-sided t-test uses n_eff - 2 degrees
of freedom. r1 is bias-corrected ((n r1 + 1) / (n - 3): the sample lag-1 autocorrelation of a short
detrended series is biased low) and floored at 0 (a negative r1 would narrow the error). With fewer than
3 effective steps there is no test (``p_rise`` None). Newey-West errors were measured and rejected: at 24
steps they reject a trend-free AR(1) series as often as OLS does. The first and last windows' means say
how large the change is in the reward's own units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["curve_trend", "format_trend", "trend_test", "TREND_METHOD"]

TREND_METHOD = ("OLS slope; standard error and one-sided t-test of a rise corrected for lag-1 autocorrelation "
                "of the residuals (effective steps n(1-r1)/(1+r1), r1 bias-corrected, floored at 0)")
MIN_EFFECTIVE_STEPS = 3.0


def trend_test(values: Sequence[float], steps: Sequence[float] | None = None) -> dict[str, Any]:
    """OLS slope of ``values`` on ``steps`` with its autocorrelation-corrected standard error and one-sided p.

    Returns slope_per_step, intercept, slope_stderr (corrected), lag1_autocorrelation (bias-corrected, >= 0),
    effective_steps and p_rise (slope_stderr and p_rise None below 3 effective steps). ``steps``: 0, 1, 2, ...
    """
    import numpy as np
    from scipy import stats

    y = np.asarray(values, dtype=float)
    t = np.arange(y.size, dtype=float) if steps is None else np.asarray(steps, dtype=float)
    n = y.size
    if n < 3 or t.size != n or np.ptp(t) == 0:
        raise ValueError(f"a trend needs at least 3 points at 2 or more steps, got {n} values")
    design = np.column_stack([np.ones(n), t])
    (intercept, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ np.array([intercept, slope])
    ss = float(resid @ resid)
    sxx = float(((t - t.mean()) ** 2).sum())
    se_iid = (ss / (n - 2) / sxx) ** 0.5
    if ss <= 1e-24 * max(1.0, float(y @ y)):  # an exact line: no noise to test against
        return {"slope_per_step": float(slope), "intercept": float(intercept), "lag1_autocorrelation": 0.0,
                "effective_steps": float(n), "method": TREND_METHOD, "slope_stderr": 0.0,
                "p_rise": 0.0 if slope > 0 else 1.0}
    r1_raw = float(resid[:-1] @ resid[1:]) / ss
    r1 = min(max((n * r1_raw + 1) / (n - 3), 0.0), 0.99) if n > 3 else 0.0
    n_eff = n * (1 - r1) / (1 + r1)
    out: dict[str, Any] = {"slope_per_step": float(slope), "intercept": float(intercept),
                           "lag1_autocorrelation": r1, "effective_steps": n_eff, "method": TREND_METHOD}
    if n_eff < MIN_EFFECTIVE_STEPS:
        out.update(slope_stderr=None, p_rise=None)
        return out
    se = se_iid * ((n - 2) / (n_eff - 2)) ** 0.5
    out.update(slope_stderr=float(se), p_rise=float(stats.t.sf(slope / se, n_eff - 2)))
    return out


def curve_trend(curve: Sequence[Mapping[str, float]], key: str = "reward_mean",
                window: int | None = None) -> dict[str, Any] | None:
    """Slope per step (corrected standard error, one-sided p of a rise), first/last window means.

    ``window`` defaults to a quarter of the steps (at least 1). None when fewer than 3 steps carry ``key``.
    """
    points = sorted((float(r["step"]), float(r[key])) for r in curve if key in r and "step" in r)
    if len(points) < 3:
        return None
    steps, values = [p[0] for p in points], [p[1] for p in points]
    if len(set(steps)) < 2:
        return None
    test = trend_test(values, steps)
    w = window or max(1, len(points) // 4)
    first, last = sum(values[:w]) / w, sum(values[-w:]) / w
    return {"key": key, "steps": len(points), **test, "window": w, "first_mean": first, "last_mean": last,
            "change": last - first}


def format_trend(trend: Mapping[str, Any]) -> str:
    """One line: the slope with its corrected standard error, p of a rise (and how it was tested), the windows."""
    w = int(trend["window"])
    p = trend.get("p_rise")
    n_eff = trend.get("effective_steps")
    if n_eff is None:  # a report written before the correction: its p treated the steps as independent
        test = f"one-sided p of a rise {p:.3g}, steps treated as independent"
    elif p is None:
        test = f"not tested: {n_eff:.1f} effective steps (lag-1 autocorrelation {trend['lag1_autocorrelation']:.2f})"
    else:
        test = (f"one-sided p of a rise {p:.3g}, autocorrelation-corrected: lag-1 "
                f"{trend['lag1_autocorrelation']:.2f}, {n_eff:.1f} effective steps")
    se = trend.get("slope_stderr")
    error = f" +- {se:.4f}" if se is not None else ""
    return (f"{trend['key']} slope {trend['slope_per_step']:+.4f}{error} per step over "
            f"{int(trend['steps'])} steps ({test}); mean of the first {w} "
            f"steps {trend['first_mean']:.3f}, of the last {w} {trend['last_mean']:.3f} ({trend['change']:+.3f})")
