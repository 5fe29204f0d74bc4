"""Issue 20 item 3: the reward-hacking diagnostics (pure math on hand-made inputs) and the reward's decoy."""

from __future__ import annotations

import asyncio

import pytest

from semantic_reward import diagnostics as d
from semantic_reward.config import SemanticRewardConfig
from semantic_reward.reward_math import REWARD_KEYS, cosine_similarity, similarity_reward
from semantic_reward.scorer import SemanticScorer
from semantic_reward.service import LocalEmbeddingService
from tests.helpers import HashEncoder

KA, KHA, GA, NGA, CA = "ཀ", "ཁ", "ག", "ང", "ཅ"


def test_distinct_n_counts_tibetan_syllables_and_han_characters():
    units = [d.text_units("ཀ་ཁ་ཀ་ཁ"), d.text_units("ག་ཀ།")]
    assert units == [[KA, KHA, KA, KHA], [GA, KA]]  # syllables, shad and tsheg are no units
    assert d.distinct_n(units, 1) == 3 / 6
    assert d.distinct_n(units, 2) == 3 / 4  # (ཀ ཁ) twice, (ཁ ཀ), (ག ཀ)
    assert d.distinct_n([d.text_units("你好你")], 1) == 2 / 3
    assert d.distinct_n([[KA]], 2) is None  # no bigram at all: not measurable, not 0
    with pytest.raises(ValueError):
        d.ngrams([KA], 0)


def test_group_distinct_and_zero_spread_use_groups_of_two_or_more():
    units = [[KA, KHA], [KA, KHA], [GA, NGA], [CA], [KA, KA]]
    groups = ["a", "a", "b", "b", "c"]
    assert d.group_distinct_n(units, groups, 1) == (2 / 4 + 3 / 3) / 2  # the single sample of c is left out
    assert d.group_distinct_n(units, groups, 2) == (1 / 2 + 1 / 1) / 2
    assert d.group_distinct_n(units, ["a", "b", "c", "d", "e"], 1) is None
    scores = [1.0, 1.0, 0.5, 1.0, 2.0]
    assert d.zero_spread_share(scores, groups) == 1 / 2  # a has no spread, b has 0.5, c is alone
    assert d.zero_spread_share([1.0, 1.0 + 1e-12], ["a", "a"]) == 1.0
    assert d.zero_spread_share([1.0], ["a"]) is None


def test_floor_repetition_distinct_outputs_and_specificity():
    assert d.floor_share([0.0, 0.2, 0.0, 0.5]) == 0.5
    assert d.floor_share([]) is None
    assert d.mean_repeated_ngram_ratio([[KA] * 4, [KA, KHA]], n=2) == pytest.approx((1 - 1 / 3 + 0.0) / 2)
    assert d.distinct_output_share(["ཀ་", "ཀ\u0f0c", "ཁ"]) == 2 / 3  # the non-breaking tsheg is normalised
    spec = d.specificity([0.5, 0.3, 0.2], [0.1, None, 0.2])
    assert spec == {"own": pytest.approx(0.35), "decoy": pytest.approx(0.15), "difference": pytest.approx(0.2),
                    "samples": 2}
    assert d.specificity([0.5], [None])["difference"] is None


def _info(score: float, r_sim: float, sim: float, decoy_r: float | None = None, decoy_s: float | None = None):
    info = {"score": score, "semantic_reward": r_sim, "semantic_similarity": sim, "language_reward": 1.0}
    if decoy_r is not None:
        info.update(decoy_semantic_reward=decoy_r, decoy_similarity=decoy_s)
    return info


def test_step_diagnostics_of_a_constructed_step():
    infos = [_info(1.3, 0.2, 0.6, 0.0, 0.3), _info(1.3, 0.2, 0.6, 0.1, 0.4),
             _info(1.0, 0.0, 0.1, 0.0, 0.2), _info(1.6, 0.4, 0.8, 0.1, 0.5)]
    groups = ["p", "p", "q", "q"]
    outputs = ["ཀ་ཀ་ཀ་ཀ་ཀ", "ཀ་ཀ་ཀ་ཀ་ཀ", "ཁ་ག", "ཁ་ང"]
    out = d.step_diagnostics(infos, groups, outputs, n=4)
    assert out["zero_spread_groups"] == 0.5
    assert out["tau_floor_share"] == 0.25
    assert out["r_sim_own"] == pytest.approx(0.2) and out["r_sim_decoy"] == pytest.approx(0.05)
    assert out["specificity_r_sim"] == pytest.approx(0.15)
    assert out["similarity_own"] == pytest.approx(0.525) and out["similarity_decoy"] == pytest.approx(0.35)
    assert out["specificity_similarity"] == pytest.approx(0.175)
    assert out["specificity_samples"] == 4.0
    assert out["distinct_1_step"] == 4 / 14  # ཀ x10, ཁ, ག, ཁ, ང
    assert out["distinct_1_group"] == pytest.approx((1 / 10 + 3 / 4) / 2)
    assert out["distinct_2_step"] == 3 / 10  # (ཀ ཀ) x8, (ཁ ག), (ཁ ང)
    assert out["distinct_2_group"] == pytest.approx((1 / 8 + 2 / 2) / 2)
    assert out["repeated_4gram_ratio"] == pytest.approx((0.5 + 0.5 + 0 + 0) / 4)  # 2 4-grams, 1 distinct
    assert out["distinct_output_share"] == 3 / 4
    without = d.step_diagnostics([_info(1.0, 0.0, 0.1)] * 2, ["p", "p"])  # no decoy, no text
    assert without == {"zero_spread_groups": 1.0, "tau_floor_share": 1.0}
    with pytest.raises(ValueError):
        d.step_diagnostics(infos, groups[:3])


def test_dump_diagnostics_of_a_collapsed_dump():
    rows = [{"input": f"p{i}", "output": "<think>x</think>ར་ར་ར་ར་ར", "gts": "ཀ", "score": 1.0,
             "semantic_reward": 0.0} for i in range(3)]
    rows.append({"input": "p3", "output": "ཀ་ཁ", "gts": "ཁ", "score": 1.2, "semantic_reward": 0.1})
    out = d.dump_diagnostics(rows)
    assert out["prompts"] == 4.0 and out["distinct_outputs"] == 2.0 and out["distinct_output_share"] == 0.5
    assert out["repeated_4gram_ratio"] == pytest.approx((0.5 * 3 + 0.0) / 4)
    assert out["distinct_1"] == 3 / 17  # ར x15, ཀ, ཁ
    assert out["tau_floor_share"] == 0.75
    assert "specificity_r_sim" not in out  # no decoy keys in this dump
    assert d.dump_diagnostics([]) == {}


# -- the reward's decoy: a diagnostic that never changes the reward ---------------------------------------
OUT, REF, DECOY = "བཀྲ་ཤིས་བདེ་ལེགས།", "བཀྲ་ཤིས་བདེ་ལེགས་ཞུ།", "ཁ་ལག་ཟ་བ།"


@pytest.fixture()
def scorer():
    penalties = {"repetition_penalty": {"weight": 0.5}, "length_penalty": {"weight": 0.5}, "tau": 0.1}
    config = SemanticRewardConfig.from_mapping(penalties)
    encoder = HashEncoder()
    s = SemanticScorer(config, LocalEmbeddingService(service=config.service, backend=encoder))
    s.encoder_double = encoder
    yield s
    s.service.close()


@pytest.mark.parametrize("output", [OUT, REF, DECOY, "ཀ་ཀ་ཀ་ཀ་ཀ་ཀ་ཀ", "hello", "", "<think>a</think>བཀྲ"])
def test_the_decoy_leaves_every_reward_component_unchanged(scorer, output):
    plain = asyncio.run(scorer.score(output, reference=REF))
    with_decoy = asyncio.run(scorer.score(output, reference=REF, decoy_reference=DECOY))
    assert {k: with_decoy[k] for k in REWARD_KEYS} == plain  # exactly, value for value
    assert set(with_decoy) == set(REWARD_KEYS) | set(d.DECOY_KEYS)


def test_the_decoy_scores_the_output_against_the_decoy_reference(scorer):
    res = asyncio.run(scorer.score(OUT, reference=REF, decoy_reference=DECOY))
    enc = scorer.encoder_double
    expected = cosine_similarity(enc.vector(OUT), enc.vector(DECOY))
    assert res["decoy_similarity"] == pytest.approx(expected, abs=1e-6)
    assert res["decoy_semantic_reward"] == pytest.approx(similarity_reward(expected, 0.1), abs=1e-6)
    same = asyncio.run(scorer.score(OUT, reference=REF, decoy_reference=REF))  # a decoy equal to the reference
    assert same["decoy_similarity"] == pytest.approx(same["semantic_similarity"], abs=1e-6)
    assert same["decoy_semantic_reward"] == pytest.approx(same["semantic_reward"], abs=1e-6)
    empty = asyncio.run(scorer.score("།", reference=REF, decoy_reference=DECOY))
    assert empty["decoy_similarity"] == 0.0 and empty["decoy_semantic_reward"] == 0.0
    bad = asyncio.run(scorer.score(OUT, reference=REF, decoy_reference=5))  # not a text: no decoy, no error
    assert set(bad) == set(REWARD_KEYS)


def test_the_decoy_reference_is_cached_like_a_reference(scorer):
    asyncio.run(scorer.score(OUT, reference=REF, decoy_reference=DECOY))
    seen = scorer.encoder_double.texts_seen
    asyncio.run(scorer.score("ཁ་ལག", reference=REF, decoy_reference=DECOY))
    assert scorer.encoder_double.texts_seen - seen == 1  # only the new output is encoded


def test_writers_give_each_rl_row_another_prompts_reference_as_decoy():
    from data_tools.pipeline import with_decoys

    def row(i, source, ref):
        return {"reward_model": {"style": "model", "ground_truth": ref}, "extra_info": {"source": source, "index": i}}

    rows = [row(0, "s0", "r0"), row(1, "s1", "r0"), row(2, "s2", "r2"), row(3, "s0", "r3")]
    out = with_decoys(rows)
    assert [r["extra_info"]["decoy_reference"] for r in out] == ["r2", "r2", "r3", "r0"]
    assert [r["extra_info"]["decoy_source"] for r in out] == ["s2", "s2", "s0", "s1"]
    assert rows[0]["extra_info"] == {"source": "s0", "index": 0}  # the input rows are not changed
    lone = with_decoys([row(0, "s", "r"), row(1, "s", "r")])  # no other prompt in the file
    assert [r["extra_info"]["decoy_reference"] for r in lone] == [None, None]
    source_only = with_decoys([row(0, "s0", None), row(1, "s1", None)])
    assert [r["extra_info"]["decoy_source"] for r in source_only] == ["s1", "s0"]
