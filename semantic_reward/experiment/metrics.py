"""verl's console logger lines (``step:N - key:value - ...``) -> per-step metrics and the reward curve."""

from __future__ import annotations

import math
import re

__all__ = ["parse_step_line", "reward_steps", "SCORE_KEY", "DIAGNOSTIC_PREFIX"]

STEP_LINE = re.compile(r"(?:^|\s)step:(\d+) - (.*)$")
PAIR = re.compile(r"([\w/@.()\-]+):(?:np\.float\d+\()?(-?(?:[0-9.]+(?:[eE][+-]?\d+)?|nan|inf))\)?(?= - |\s*$)")
SCORE_KEY = "critic/score/mean"
"""verl's mean sequence score of a step: the reward our manager returned."""
DIAGNOSTIC_PREFIX = "semantic_reward/diagnostics/"
"""The training hook's reward-hacking diagnostics (``semantic_reward.verl_adapter.metrics``)."""
DIAGNOSTIC_TIMING = "timing_s/semantic_reward_diagnostics"


def parse_step_line(line: str) -> tuple[int, dict[str, float]] | None:
    """One console-logger line -> (step, {metric: value}); None for any other line."""
    m = STEP_LINE.search(line.rstrip("\n"))
    if not m:
        return None
    metrics = {}
    for key, value in PAIR.findall(m.group(2)):
        try:
            metrics[key] = float(value)
        except ValueError:
            continue
    return int(m.group(1)), metrics


def reward_steps(per_step: dict[int, dict[str, float]]) -> list[dict[str, float]]:
    """In step order: ``step``, ``reward_mean`` (verl's score mean), every logged ``*reward*`` mean and the
    reward-hacking diagnostics (``semantic_reward/diagnostics/*``, with the hook's time as ``diagnostics_seconds``).

    Values that are not finite numbers are left out of a row (a diagnostic that could not be measured
    that step), so every row reads back through ``evaluation.report.read_reward_curve``.
    """
    steps = []
    for step in sorted(per_step):
        metrics = per_step[step]
        row: dict[str, float] = {"step": step, "reward_mean": metrics.get(SCORE_KEY, math.nan)}
        for key, value in metrics.items():
            if key.startswith(DIAGNOSTIC_PREFIX) and math.isfinite(value):
                row[key] = value
            elif key == DIAGNOSTIC_TIMING and math.isfinite(value):
                row["diagnostics_seconds"] = value
            elif "reward" in key and not key.startswith(("timing", "perf")) and key.endswith("mean"):
                row[key] = value
        steps.append(row)
    return steps
