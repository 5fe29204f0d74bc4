"""Per-request seeded sampling for the hf rollout.

``transformers``' ``generate`` draws every row of a batch from one global generator, so a row's
tokens depend on which other requests shared its batch, and verl's agent loop sends a step's
requests concurrently, in an order and in rounds that vary between runs. Here each row samples
from its own generator, seeded by its request, so a rerun of a config samples the same rollouts
(vLLM seeds its engine with ``rollout.seed`` the same way, per replica).
"""

from __future__ import annotations

import zlib

import torch
from transformers import LogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

__all__ = ["RowSampler", "request_seed"]


def request_seed(seed: int, step: int, prompt_ids: list[int], copy: int) -> int:
    """The seed of one request: the rollout seed, the training step, the prompt and which copy of it (GRPO's n)."""
    digest = zlib.crc32(repr(list(prompt_ids)).encode())
    return (seed * 1_000_003 + step * 65_537 + digest * 131 + copy) % (2 ** 63)


class RowSampler(LogitsProcessor):
    """Draws each row's next token from its own generator; ``generate`` then runs greedy over a one-hot.

    It applies temperature, top-k and top-p as ``generate``'s sampling does, and keeps the log-prob
    of each drawn token under that processed distribution (what vLLM returns).
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float = 1.0, top_k: int = -1):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        warpers = [TemperatureLogitsWarper(temperature)]
        if top_k > 0:
            warpers.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p))
        self.warpers = LogitsProcessorList(warpers)
        self.log_probs: list[list[float]] = [[] for _ in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        log_probs = torch.log_softmax(self.warpers(input_ids, scores.float()), dim=-1)
        probs = log_probs.exp()
        chosen = [int(torch.multinomial(probs[row], 1, generator=gen)) for row, gen in enumerate(self.generators)]
        for row, token in enumerate(chosen):
            self.log_probs[row].append(float(log_probs[row, token]))
        one_hot = torch.full_like(scores, float("-inf"))
        one_hot[torch.arange(len(chosen)), torch.tensor(chosen)] = 0.0
        return one_hot
