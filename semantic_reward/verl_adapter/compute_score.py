"""An async ``compute_score`` for ``reward.custom_reward_function.path``.

For projects that keep verl's ``naive`` manager (or their own) and only swap the
reward function. Settings arrive as keyword arguments from
``reward.custom_reward_function.reward_kwargs``; one scorer (and one embedding
service) is built per distinct settings and reused by every call in the process.
"""

from __future__ import annotations

import threading
from typing import Any

from ..config import SemanticRewardConfig
from ..scorer import SemanticScorer
from .keys import LANGUAGE_KEY, SOURCE_KEY

__all__ = ["compute_score", "get_scorer"]

# Arguments verl itself may add to the call; they are not reward settings.
_VERL_CALL_KWARGS = ("reward_router_address", "reward_model_tokenizer")

_SCORERS: dict[str, SemanticScorer] = {}
_LOCK = threading.Lock()


def get_scorer(settings: dict[str, Any]) -> SemanticScorer:
    """The process's scorer for these settings (validated on first use)."""
    config = SemanticRewardConfig.from_mapping(settings)
    key = config.cache_key()
    with _LOCK:
        scorer = _SCORERS.get(key)
        if scorer is None:
            scorer = SemanticScorer(config)
            _SCORERS[key] = scorer
        return scorer


async def compute_score(
    data_source: str | None = None,
    solution_str: str | None = None,
    ground_truth: Any = None,
    extra_info: dict | None = None,
    **settings: Any,
) -> dict[str, float]:
    """verl's reward-function signature; returns ``score`` plus every component."""
    for name in _VERL_CALL_KWARGS:
        settings.pop(name, None)
    extra_info = extra_info or {}
    scorer = get_scorer(settings)
    return await scorer.score(
        solution_str,
        reference=ground_truth,
        source=extra_info.get(SOURCE_KEY),
        language=extra_info.get(LANGUAGE_KEY),
    )
