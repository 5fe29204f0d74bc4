"""Thousands of hostile outputs through the real encoder: always a finite reward in range."""

import asyncio
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semantic_reward.config import SemanticRewardConfig
from semantic_reward.reward_math import REWARD_KEYS
from semantic_reward.scorer import SemanticScorer
from semantic_reward.service import LocalEmbeddingService
from tests.helpers import HashEncoder

REFERENCE = "ཀྲུང་གོ་གསར་པ་དབུ་བརྙེས་དུས།"


def hostile_outputs(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pieces = ["ཀ", "་", "།", "中", "a", "Я", "ع", "ᠮ", "ꆈ", "🙂", "\u200b", "\x00", "\n", " ", "1", "...", "<|im_end|>"]
    fixed = [
        "", " ", "\t\n", "\x00" * 10, "\ud800", "abc\udfff", "ཀ\ud83d", "!!!???", "།།།", "་" * 5000,
        "ཀ" * 200_000, "中" * 50_000, "a " * 100_000, "🙂" * 3000, "\u202e\u202d", "\U0010ffff" * 10,
        "བཀྲ་ཤིས་" * 2000, REFERENCE, REFERENCE + "中文混合", "<unk>" * 100, "\r" * 100, "\x7f\x1b[31m",
    ]
    out = list(fixed)
    while len(out) < count:
        kind = rng.random()
        if kind < 0.5:
            out.append("".join(rng.choice(pieces) for _ in range(rng.randint(0, 60))))
        elif kind < 0.7:
            out.append("".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 40))))
        elif kind < 0.85:
            token = rng.choice(pieces + ["བཀྲ་", "中国"])
            out.append(token * rng.randint(1, 400))
        else:
            cut = rng.randint(0, len(REFERENCE))
            out.append(REFERENCE[:cut] + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10))))
    return out


def check(results, config):
    low, high = config.reward_range
    for res in results:
        assert tuple(res) == REWARD_KEYS
        assert all(isinstance(v, float) and math.isfinite(v) for v in res.values())
        assert low - 1e-9 <= res["score"] <= high + 1e-9


@pytest.mark.parametrize(
    "settings_",
    [
        {},
        {"combine": "gated", "semantic_weight": 1.0, "length_penalty": {"weight": 0.2},
         "repetition_penalty": {"weight": 0.05}},
        {"length_penalty": {"weight": 0.2, "relative_to": "batch_median"}, "repetition_penalty": {"weight": 0.05}},
    ],
)
def test_thousands_of_hostile_outputs_real_encoder(minilm_path, settings_):
    config = SemanticRewardConfig.from_mapping({**settings_, "encoder": {"model": minilm_path, "device": "cpu"}})
    scorer = SemanticScorer(config, LocalEmbeddingService(config.encoder, config.service))
    outputs = hostile_outputs(2000)
    check(scorer.score_batch(outputs, [REFERENCE] * len(outputs)), config)

    async def per_trajectory():
        return await asyncio.gather(*(scorer.score(o, reference=REFERENCE) for o in outputs[:300]))

    check(asyncio.run(per_trajectory()), config)


SCORER = SemanticScorer(
    SemanticRewardConfig(), LocalEmbeddingService(backend=HashEncoder())
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec=None), max_size=300), st.text(max_size=50))
def test_any_unicode_output_and_reference(output, reference):
    check([asyncio.run(SCORER.score(output, reference=reference))], SCORER.config)
