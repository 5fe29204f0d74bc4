"""A recipe's lengths against the token percentiles a build measured (``lengths_in_tokens`` in stats.json).

verl drops prompts over ``data.max_prompt_length`` (``filter_overlong_prompts``),
cuts generations at ``data.max_response_length`` and cuts SFT rows at
``data.max_length`` (``truncation: right``: the answer goes first). A length below
the data's P99 loses more than 1% of the rows that way: an error. Below the
longest row it loses some: a warning. Proposals cover every measured row,
rounded up to a multiple of :data:`ROUND`.

    python -m data_tools lengths data/headline/stats.json [--max-prompt-length N ...]
    python -m semantic_reward.recipe_check grpo_semantic_headline --stats data/headline/stats.json
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataToolsError

__all__ = ["ROUND", "LengthReport", "load_stats", "propose", "check_lengths", "recipe_lengths",
           "check_recipe_lengths"]

ROUND = 64
EOS = 1
"""A generation ends with one end-of-turn token after the answer (``<|im_end|>`` in Qwen's template)."""

# recipe key -> (measured field, tokens added to the measurement, what verl does to a longer row)
_KEYS = {
    "data.max_prompt_length": ("prompt", 0, "drops the row (filter_overlong_prompts) or stops (truncation: error)"),
    "data.max_response_length": ("reference", EOS, "cuts the generation, so the reference cannot be reproduced"),
    "data.max_length": ("sft", 0, "cuts the row on the right, the answer first"),
}


@dataclass
class LengthReport:
    """Errors (more than 1% of rows lost), warnings (some rows lost, or another tokenizer), proposals."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    proposed: dict[str, int] = field(default_factory=dict)


def load_stats(path: str | Path) -> dict[str, Any]:
    """A build's stats.json with its token lengths, or a DataToolsError saying how to get them."""
    try:
        stats = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataToolsError(f"{path}: cannot read the build's stats: {exc}") from exc
    if "lengths_in_tokens" not in stats:
        raise DataToolsError(f"{path}: no token lengths (lengths_in_tokens); build the data with --tokenizer "
                             "set to the policy's model so its lengths are measured in the policy's tokens")
    return stats


def _round_up(value: float) -> int:
    return int(math.ceil(value / ROUND) * ROUND)


def propose(stats: dict[str, Any]) -> dict[str, int]:
    """Lengths that fit every measured row, rounded up to a multiple of ``ROUND``."""
    lengths = stats["lengths_in_tokens"]
    return {key: _round_up(lengths[name]["max"] + extra) for key, (name, extra, _) in _KEYS.items()
            if lengths[name].get("count")}


def check_lengths(stats: dict[str, Any], values: dict[str, int | None], model: str | None = None) -> LengthReport:
    """Compare the recipe keys in ``values`` (``data.max_prompt_length`` ...) with the measured tokens."""
    lengths = stats["lengths_in_tokens"]
    report = LengthReport(proposed=propose(stats))
    tokenizer = lengths.get("tokenizer")
    for key, value in values.items():
        if value is None or key not in _KEYS:
            continue
        name, extra, effect = _KEYS[key]
        measured = lengths[name]
        if not measured.get("count"):
            continue
        p99, longest = measured["p99"] + extra, measured["max"] + extra
        plus = f" (+{extra} end-of-turn)" if extra else ""
        where = f"{name} tokens{plus} of {stats.get('data_source', 'the data')} measured with {tokenizer}"
        fix = f"; set it to {report.proposed[key]} to fit every row"
        if value < p99:
            report.errors.append(f"{key} {value} is below the P99 {p99:.0f} of the {where}: for more than 1% of "
                                 f"the rows verl {effect}{fix}")
        elif value < longest:
            report.warnings.append(f"{key} {value} is below the longest {longest} of the {where} (P99 {p99:.0f}): "
                                   f"for up to 1% of the rows verl {effect}{fix}")
    if model and tokenizer and str(model).rstrip("/") != str(tokenizer).rstrip("/"):
        report.warnings.append(f"the lengths were measured with the tokenizer {tokenizer}, the recipe's model is "
                               f"{model}: rebuild with --tokenizer {model} unless they share a tokenizer")
    return report


def recipe_lengths(cfg: Any, kind: str) -> dict[str, int | None]:
    """The length keys of a composed recipe: GRPO's prompt and response, SFT's whole row."""
    if kind == "grpo":
        return {"data.max_prompt_length": int(cfg.data.max_prompt_length),
                "data.max_response_length": int(cfg.data.max_response_length)}
    return {"data.max_length": int(cfg.data.max_length)}


def check_recipe_lengths(stats: dict[str, Any], cfg: Any, kind: str) -> LengthReport:
    """:func:`check_lengths` for a composed recipe (``recipe_check --stats``)."""
    model = cfg.actor_rollout_ref.model.path if kind == "grpo" else cfg.model.path
    return check_lengths(stats, recipe_lengths(cfg, kind), str(model))
