"""Similarity as a weighted mean of terms (issue 12, item 4) and the batch-median length penalty (item 5).

Every expected value is computed independently: cosines from the test encoder's own
vectors, BLEU and chrF++ from sacrebleu on the units ``text.pretokenize`` gives, and the
paper's R_sim / R formulas written out here.
"""

import asyncio
import math

import pytest
import sacrebleu

from semantic_reward.config import ConfigError, SemanticRewardConfig
from semantic_reward.reward_math import (
    REWARD_KEYS,
    apply_batch_median_length_penalty,
    batch_median_length,
    cosine_similarity,
    mix_terms,
)
from semantic_reward.scorer import SemanticScorer
from semantic_reward.service import LocalEmbeddingService
from semantic_reward.text import pretokenize
from tests.helpers import HashEncoder

REF = "བཀྲ་ཤིས་བདེ་ལེགས་ཕུན་སུམ་ཚོགས།"  # 7 syllables
OUT = "བཀྲ་ཤིས་བདེ་ལེགས་ཡིན།"  # shares the first four syllables


def scorer_for(**settings):
    config = SemanticRewardConfig.from_mapping(settings)
    backend = HashEncoder()
    service = LocalEmbeddingService(service=config.service, backend=backend) if config.similarity.uses_encoder else None
    return SemanticScorer(config, service), backend


def bleu(out, ref):
    return sacrebleu.sentence_bleu(pretokenize(out), [pretokenize(ref)], tokenize="none").score / 100


def chrf(out, ref):
    return sacrebleu.sentence_chrf(pretokenize(out), [pretokenize(ref)], word_order=2).score / 100


def r_sim(s, tau):
    return 0.0 if s <= tau else (s - tau) / (1 - tau)


# ---- settings ----------------------------------------------------------------------------------
def test_default_is_embedding_only():
    config = SemanticRewardConfig.from_mapping({})
    assert config.similarity.weights() == {"embedding": 1.0, "bleu": 0.0, "chrf": 0.0}
    assert config.similarity.uses_encoder and not config.similarity.lexical


@pytest.mark.parametrize(
    ("similarity", "needle"),
    [
        ({"embedding": 0}, "'similarity.embedding': at least one similarity weight"),
        ({"bleu": -0.5}, "'similarity.bleu': must be a finite number in [0, inf)"),
        ({"chrf": float("nan")}, "'similarity.chrf'"),
        ({"bleu_": 1}, "similarity.bleu_"),
        ("bleu", "'similarity': expected a mapping"),
    ],
)
def test_similarity_weights_are_validated(similarity, needle):
    with pytest.raises(ConfigError) as info:
        SemanticRewardConfig.from_mapping({"similarity": similarity})
    assert needle in str(info.value), str(info.value)


def test_mix_terms_is_a_normalised_weighted_sum():
    assert mix_terms({"embedding": 0.8, "bleu": 0.2}, {"embedding": 1.0, "bleu": 1.0}) == pytest.approx(0.5)
    assert mix_terms({"embedding": 0.8, "bleu": 0.2}, {"embedding": 3.0, "bleu": 1.0}) == pytest.approx(0.65)
    assert mix_terms({"embedding": 0.8, "bleu": 0.2}, {"embedding": 0.0, "bleu": 2.0}) == pytest.approx(0.2)
    assert mix_terms({"bleu": float("nan")}, {"bleu": 1.0}) == 0.0
    with pytest.raises(ValueError):
        mix_terms({"bleu": 0.3}, {"bleu": 0.0})


# ---- one test per term, through the scorer -----------------------------------------------------
def test_embedding_term_default_scores_as_before():
    """The default (embedding only) is the paper's R = 1.5 * R_sim(cos) + 1.0 * R_lang, unchanged."""
    for settings in ({}, {"similarity": {"embedding": 1.0}}, {"similarity": {"embedding": 4.0}}):
        scorer, backend = scorer_for(tau=0.0, **settings)
        res = asyncio.run(scorer.score(OUT, reference=REF))
        cos = cosine_similarity(backend.vector(OUT), backend.vector(REF))
        assert res["semantic_similarity"] == pytest.approx(cos)
        assert res["similarity_embedding"] == pytest.approx(cos) == res["similarity_reference"]
        assert res["similarity_bleu"] == 0.0 and res["similarity_chrf"] == 0.0  # not computed at weight 0
        assert res["score"] == pytest.approx(1.5 * r_sim(cos, 0.0) + 1.0)
    scorer, _ = scorer_for()
    assert asyncio.run(scorer.score(REF, reference=REF))["score"] == pytest.approx(2.5)


@pytest.mark.parametrize(("term", "metric"), [("bleu", bleu), ("chrf", chrf)])
def test_lexical_term_alone(term, metric):
    scorer, _ = scorer_for(similarity={"embedding": 0, term: 1}, tau=0.2)
    assert scorer.service is None  # weight 0: the encoder is never loaded
    res = asyncio.run(scorer.score(OUT, reference=REF))
    expected = metric(OUT, REF)
    assert 0.05 < expected < 0.95  # a partial match, so the check means something
    assert res[f"similarity_{term}"] == pytest.approx(expected)
    assert res["semantic_similarity"] == pytest.approx(expected)
    assert res["similarity_embedding"] == 0.0
    assert res["score"] == pytest.approx(1.5 * r_sim(expected, 0.2) + 1.0)
    assert tuple(res) == REWARD_KEYS


def test_bleu_plus_embedding_mixes_both_terms():
    scorer, backend = scorer_for(similarity={"embedding": 1, "bleu": 3}, tau=0.1, language_weight=0.0)
    res = asyncio.run(scorer.score(OUT, reference=REF))
    cos = cosine_similarity(backend.vector(OUT), backend.vector(REF))
    b = bleu(OUT, REF)
    s = 0.25 * cos + 0.75 * b
    assert res["similarity_embedding"] == pytest.approx(cos) and res["similarity_bleu"] == pytest.approx(b)
    assert res["semantic_similarity"] == pytest.approx(s)
    assert res["score"] == pytest.approx(1.5 * r_sim(s, 0.1))  # no language term in this row
    assert scorer.score_batch([OUT], [REF])[0] == pytest.approx(res)


def test_all_three_terms():
    scorer, backend = scorer_for(similarity={"embedding": 1, "bleu": 1, "chrf": 2}, tau=0.0)
    res = asyncio.run(scorer.score(OUT, reference=REF))
    cos = cosine_similarity(backend.vector(OUT), backend.vector(REF))
    s = (cos + bleu(OUT, REF) + 2 * chrf(OUT, REF)) / 4
    assert res["semantic_similarity"] == pytest.approx(s)
    assert res["score"] == pytest.approx(1.5 * max(s, 0.0) + 1.0)


# ---- item 5: the length penalty against ONE batch's median --------------------------------------
def syllables(n):
    return "་".join(f"ཀ{chr(0x0F71 + i % 10)}" for i in range(n)) + "།"


LP = {"length_penalty": {"weight": 0.2, "relative_to": "batch_median"}}


def test_window_setting_is_gone():
    with pytest.raises(ConfigError, match="length_penalty.window"):
        SemanticRewardConfig.from_mapping({"length_penalty": {"window": 8}})


def test_batch_median_penalty_values_pure():
    config = SemanticRewardConfig.from_mapping(LP)
    base = {k: 0.0 for k in REWARD_KEYS}
    rows = [dict(base, length_units=n, semantic_reward=0.5, language_reward=1.0) for n in (10, 20, 30, 100)]
    rows.append(dict(base, is_empty=1.0, score=-0.2))  # an empty output: not in the median, keeps its score
    assert batch_median_length(rows) == 25.0
    out = apply_batch_median_length_penalty(rows, config)
    # 100 / 25 = 4: ramp from 2.5 (0) to 5.0 (1) -> 0.6; the others are at or below 1.2x
    assert [r["length_penalty"] for r in out[:4]] == pytest.approx([0.0, 0.0, 0.0, 0.6])
    assert [r["length_ratio"] for r in out[:4]] == pytest.approx([0.4, 0.8, 1.2, 4.0])
    assert [r["score"] for r in out[:4]] == pytest.approx([1.75, 1.75, 1.75, 1.75 - 0.2 * 0.6])
    assert out[4] == rows[4]
    assert rows[3]["length_penalty"] == 0.0  # the input is not modified


def test_batch_median_depends_only_on_that_batch():
    scorer, _ = scorer_for(**LP)
    long_output = syllables(40)
    first = scorer.score_batch([REF, REF, REF, long_output], [REF] * 4)  # median 7: 40/7 > 5 -> full
    assert first[3]["length_penalty"] == 1.0 and first[3]["length_ratio"] == pytest.approx(40 / 7)
    assert [r["length_penalty"] for r in first[:3]] == [0.0, 0.0, 0.0]
    second = scorer.score_batch([long_output, long_output, REF], [REF] * 3)  # median 40: no penalty
    assert [r["length_penalty"] for r in second] == [0.0, 0.0, 0.0]
    assert second[0]["score"] - first[3]["score"] == pytest.approx(0.2)
    fresh, _ = scorer_for(**LP)  # no state carries over between batches
    assert fresh.score_batch([long_output, long_output, REF], [REF] * 3) == second
    assert not any("recent" in name or "window" in name for name in vars(scorer))


def test_per_trajectory_scores_leave_the_batch_penalty_to_finish_batch():
    scorer, _ = scorer_for(**LP)
    outputs = [REF, REF, syllables(40)]
    single = [asyncio.run(scorer.score(o, reference=REF)) for o in outputs]
    assert all(r["length_penalty"] == 0.0 for r in single)  # not known before the batch is complete
    assert scorer.finish_batch(single) == scorer.score_batch(outputs, [REF] * 3)
    assert math.isclose(scorer.finish_batch(single)[2]["length_penalty"], 1.0)
