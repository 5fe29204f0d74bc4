"""Pairwise LLM judge through any OpenAI-compatible chat endpoint (e.g. a local vLLM server).

Each item is asked twice, with the systems in both positions, to cancel position
bias: a system wins an item only if the judge prefers it in both orders; a split
or a tie verdict counts as a tie. The win rate counts ties as half a win, with a
Wilson interval over items.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = ["JudgeConfig", "load_template", "parse_verdict", "combine", "judge_pairwise", "wilson_interval"]

DEFAULT_TEMPLATE = Path(__file__).with_name("judge_prompt.yaml")


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    model: str
    api_key: str = "EMPTY"
    template_file: str = str(DEFAULT_TEMPLATE)
    temperature: float = 0.0
    max_tokens: int = 16
    timeout_s: float = 120.0
    retries: int = 3


def load_template(path: str) -> dict[str, str]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for key in ("system", "user"):
        if key not in data:
            raise ValueError(f"judge template {path} lacks '{key}'")
    return data


def parse_verdict(text: str) -> str:
    """'A', 'B' or 'tie' from the judge's reply (first standalone A/B/tie wins)."""
    m = re.search(r"\b(A|B|tie|TIE|Tie)\b", text or "")
    if not m:
        return "tie"
    v = m.group(1)
    return "tie" if v.lower() == "tie" else v


def combine(first: str, second: str) -> str:
    """Order 1 shows (x, y) as (A, B); order 2 shows (y, x). Returns 'x', 'y' or 'tie'."""
    x_first = {"A": "x", "B": "y"}.get(first, "tie")
    x_second = {"A": "y", "B": "x"}.get(second, "tie")
    return x_first if x_first == x_second else "tie"


def wilson_interval(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _ask(client: httpx.Client, cfg: JudgeConfig, messages: list[dict[str, str]]) -> str:
    last: Exception | None = None
    for _ in range(cfg.retries):
        try:
            resp = client.post("/v1/chat/completions", json={
                "model": cfg.model, "messages": messages, "temperature": cfg.temperature,
                "max_tokens": cfg.max_tokens})
            resp.raise_for_status()
            return resp.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
    raise RuntimeError(f"judge endpoint {cfg.base_url} failed {cfg.retries} times: {last!r}")


def judge_pairwise(cfg: JudgeConfig, items: Sequence[dict[str, str]], name_x: str = "x",
                   name_y: str = "y") -> dict[str, Any]:
    """items: dicts with ``source``, ``reference`` (may be empty), ``x`` and ``y`` outputs."""
    template = load_template(cfg.template_file)
    outcomes = []
    headers = {"Authorization": f"Bearer {cfg.api_key}"}
    with httpx.Client(base_url=cfg.base_url.rstrip("/"), timeout=cfg.timeout_s, headers=headers) as client:
        for item in items:
            verdicts = []
            for a, b in ((item["x"], item["y"]), (item["y"], item["x"])):
                user = template["user"].format(source=item["source"], reference=item.get("reference", ""),
                                               answer_a=a, answer_b=b)
                reply = _ask(client, cfg, [{"role": "system", "content": template["system"]},
                                           {"role": "user", "content": user}])
                verdicts.append(parse_verdict(reply))
            outcomes.append(combine(*verdicts))
    n = len(outcomes)
    wins_x, wins_y = outcomes.count("x"), outcomes.count("y")
    ties = n - wins_x - wins_y
    score = wins_x + 0.5 * ties
    low, high = wilson_interval(score, n)
    return {"items": n, f"{name_x}_wins": wins_x, f"{name_y}_wins": wins_y, "ties": ties,
            f"{name_x}_win_rate": score / n if n else 0.0, "ci95": [low, high], "outcomes": outcomes}
