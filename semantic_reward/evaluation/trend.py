"""Whether a training curve rises: a least-squares line through (step, value) with scipy's linregress.

A short RL run's per-step means are noisy; comparing two single steps says little. The slope of a
fitted line, its standard error and the one-sided p-value of "slope > 0" say how sure the rise is,
and the first and last windows' means say how large it is in the reward's own units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["curve_trend", "format_trend"]


def curve_trend(curve: Sequence[Mapping[str, float]], key: str = "reward_mean",
                window: int | None = None) -> dict[str, float] | None:
    """Slope per step (with its standard error and one-sided p of a rise), first/last window means.

    ``window`` defaults to a quarter of the steps (at least 1). None when fewer than 3 steps carry ``key``.
    """
    from scipy.stats import linregress

    points = sorted((float(r["step"]), float(r[key])) for r in curve if key in r and "step" in r)
    if len(points) < 3:
        return None
    steps, values = [p[0] for p in points], [p[1] for p in points]
    if len(set(steps)) < 2:
        return None
    fit = linregress(steps, values)
    # linregress's p is two-sided (slope != 0); the question here is one-sided (slope > 0)
    p_rise = fit.pvalue / 2 if fit.slope > 0 else 1 - fit.pvalue / 2
    w = window or max(1, len(points) // 4)
    first, last = sum(values[:w]) / w, sum(values[-w:]) / w
    return {"key": key, "steps": len(points), "slope_per_step": float(fit.slope), "slope_stderr": float(fit.stderr),
            "intercept": float(fit.intercept), "p_rise": float(p_rise), "window": w, "first_mean": first,
            "last_mean": last, "change": last - first}


def format_trend(trend: Mapping[str, float]) -> str:
    """One line: the slope with its standard error, p of a rise, and the first vs last window."""
    w = int(trend["window"])
    return (f"{trend['key']} slope {trend['slope_per_step']:+.4f} +- {trend['slope_stderr']:.4f} per step over "
            f"{int(trend['steps'])} steps (one-sided p of a rise {trend['p_rise']:.3g}); mean of the first {w} "
            f"steps {trend['first_mean']:.3f}, of the last {w} {trend['last_mean']:.3f} ({trend['change']:+.3f})")
