"""Lengths in the policy's tokens: the headline passage budget, and the percentiles recipes are sized from.

verl counts prompt and response lengths in the policy's tokens, so a budget or a
percentile in the project's units (syllables) says little about what verl will
truncate or filter: Tibetan costs about 5.5 Qwen tokens per syllable. Sources
over the budget are cut at their last whole unit (:data:`semantic_reward.text.SEGMENTER`:
a Tibetan syllable with its tsheg or shad, a Han character, a word) that fits,
never inside a syllable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semantic_reward.text import SEGMENTER, SHADS, TSHEG

from .config import WHAT, ConfigError, TokenConfig

__all__ = ["load_tokenizer", "tokenizer_for", "Truncator", "TruncationCounts", "token_percentiles", "measure_lengths"]


_CLOSERS = TSHEG + SHADS  # kept after the last syllable: it ends the syllable (or the sentence) cleanly


def load_tokenizer(name: str) -> Any:
    """The tokenizer of ``name`` (a model folder or hub name), or a ConfigError saying how to fix it."""
    from transformers import AutoTokenizer

    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir():
        raise ConfigError.at("tokens.tokenizer", f"{name} is not a folder; pass --tokenizer with the policy's "
                             "model folder (its tokenizer files suffice) or a hub name", WHAT)
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # OSError for a missing folder or no hub access; ValueError for a bad one
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError.at(
            "tokens.tokenizer",
            f"cannot load the tokenizer {name!r} ({first}); pass --tokenizer with a local model folder of the "
            "policy (its tokenizer files suffice), or the hub name where the hub is reachable", WHAT) from exc


def token_percentiles(values: Sequence[int]) -> dict[str, float]:
    """count, P50/P90/P99 and max of token counts (``{"count": 0}`` when there are none)."""
    if not len(values):
        return {"count": 0}
    arr = np.asarray(values)
    return {"count": int(arr.size), "p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
            "p99": float(np.percentile(arr, 99)), "max": int(arr.max())}


def _count(tokenizer: Any, texts: list[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _unit_ends(text: str) -> list[int]:
    """Character offsets where each unit of ``text`` ends, its trailing tsheg/shads included.

    ``text`` is normalised (the pipeline normalises first), so each unit of the
    segmenter is a substring found in order; a unit that cannot be found (text the
    pipeline was told not to normalise) ends the list, which only cuts earlier.
    """
    ends, pos = [], 0
    for unit in SEGMENTER(text):
        start = text.find(unit, pos)
        if start < 0:
            break
        pos = start + len(unit)
        while pos < len(text) and text[pos] in _CLOSERS:
            pos += 1
        ends.append(pos)
    return ends


@dataclass
class TruncationCounts:
    """What truncation did: token counts of every source seen, before and after."""

    before: list[int] = field(default_factory=list)
    after: list[int] = field(default_factory=list)

    @property
    def truncated(self) -> int:
        return sum(b != a for b, a in zip(self.before, self.after, strict=True))

    def stats(self, tokenizer_name: str, budget: int) -> dict[str, Any]:
        cut = [(b, a) for b, a in zip(self.before, self.after, strict=True) if b != a]
        return {
            "tokenizer": tokenizer_name,
            "source_tokens": budget,
            "rows": len(self.before),
            "truncated": len(cut),
            "source_tokens_before": token_percentiles(self.before),
            "source_tokens_after": token_percentiles(self.after),
            "truncated_rows_tokens_before": token_percentiles([b for b, _ in cut]),
            "truncated_rows_tokens_after": token_percentiles([a for _, a in cut]),
        }


class Truncator:
    """Cuts a source to at most ``budget`` tokens at a unit boundary; counts every source it sees."""

    def __init__(self, tokenizer: Any, budget: int):
        self.tokenizer = tokenizer
        self.budget = budget
        self.counts = TruncationCounts()

    def _tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def __call__(self, text: str) -> str:
        encoded = self.tokenizer(text, add_special_tokens=False)
        before = len(encoded["input_ids"])
        if before <= self.budget:
            self.counts.before.append(before)
            self.counts.after.append(before)
            return text
        ends = _unit_ends(text)
        # the character where the budget runs out, from a fast tokenizer's offsets (else: unknown, search all)
        limit = len(text)
        span = encoded.token_to_chars(self.budget - 1) if getattr(self.tokenizer, "is_fast", False) else None
        if span is not None:
            limit = span.end

        counted: dict[int, int] = {}

        def fits(i: int) -> bool:
            counted[i] = self._tokens(text[:ends[i]].rstrip())
            return counted[i] <= self.budget

        # the last unit end within the limit usually fits; re-tokenising decides, as a BPE merge across the
        # cut can differ from the full text's tokens. Otherwise: the largest fitting prefix, by bisection.
        guess = int(np.searchsorted(ends, limit, side="right")) - 1
        best = -1
        if guess >= 0 and fits(guess):
            best = guess
        else:
            lo, hi = 0, guess - 1
            while lo <= hi:
                mid = (lo + hi) // 2
                if fits(mid):
                    best, lo = mid, mid + 1
                else:
                    hi = mid - 1
        cut = text[:ends[best]].rstrip() if best >= 0 else ""
        after = counted.get(best, 0)
        self.counts.before.append(before)
        self.counts.after.append(after)
        return cut


def measure_lengths(tokenizer: Any, tokenizer_name: str, conversations: Sequence[list[dict[str, str]]],
                    references: Sequence[str | None], enable_thinking: bool) -> dict[str, Any]:
    """Token percentiles of what verl sees: RL prompts (chat template, generation prompt), references, SFT rows.

    Counted as verl counts them: the template is rendered to text, then tokenised
    without special tokens. ``sft`` is the whole conversation with the reference as
    the assistant turn (verl's SFT ``max_length``); ``reference`` is the answer alone,
    to which a generation adds one end-of-turn token.
    """
    kwargs = {"enable_thinking": enable_thinking}
    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True, **kwargs)
               for c in conversations]
    pairs = [(c, r) for c, r in zip(conversations, references, strict=True) if r is not None]
    sft = [tokenizer.apply_chat_template([*c, {"role": "assistant", "content": r}], tokenize=False, **kwargs)
           for c, r in pairs]
    return {
        "tokenizer": tokenizer_name,
        "enable_thinking": enable_thinking,
        "prompt": token_percentiles(_count(tokenizer, prompts)),
        "reference": token_percentiles(_count(tokenizer, [r for _, r in pairs])),
        "sft": token_percentiles(_count(tokenizer, sft)),
    }


def tokenizer_for(config: TokenConfig, given: Any = None) -> tuple[Any, str] | None:
    """(tokenizer, its name) for a build: ``tokens.tokenizer`` if set, else ``given`` (verl's), else None.

    A source budget without any tokenizer is an error: the budget means nothing in another tokenizer's tokens.
    """
    if config.tokenizer:
        return load_tokenizer(config.tokenizer), config.tokenizer
    if given is not None:
        return given, str(getattr(given, "name_or_path", "") or type(given).__name__)
    if config.source_tokens is not None:
        raise ConfigError.at(
            "tokens.tokenizer",
            f"sources are truncated to tokens.source_tokens={config.source_tokens} tokens of the policy's "
            "tokenizer, and none is given: pass --tokenizer with the policy's model folder or hub name (e.g. "
            "Qwen/Qwen3-4B), or --source-tokens null to keep sources whole", WHAT)
    return None
