"""The reward arithmetic against values computed by hand."""

import math

import numpy as np
import pytest

from semantic_reward.config import SemanticRewardConfig
from semantic_reward.languages import UnitShare
from semantic_reward.penalties import (
    length_penalty,
    ramp,
    repeated_ngram_ratio,
    repetition_penalty,
    text_units,
)
from semantic_reward.reward_math import (
    REWARD_KEYS,
    combine_additive,
    combine_gated,
    cosine_similarity,
    empty_components,
    language_reward,
    mix_similarity,
    reward_components,
    similarity_reward,
)

TIBETAN = ("Tibetan",)
BO = "བཀྲ་ཤིས་བདེ་ལེགས།"  # 4 syllables, all letters Tibetan


def test_paper_formula_example():
    # s = 0.8, tau = 0.5: R_sim = (0.8 - 0.5) / (1 - 0.5) = 0.6; total = 1.5 * 0.6 + 1.0 * 1 = 1.9
    assert similarity_reward(0.8, 0.5) == pytest.approx(0.6)
    assert combine_additive(0.6, 1.0) == pytest.approx(1.9)
    result = reward_components(BO, scripts=TIBETAN, config=SemanticRewardConfig(tau=0.5), sim_reference=0.8)
    assert result["semantic_reward"] == pytest.approx(0.6)
    assert result["language_reward"] == 1.0
    assert result["score"] == pytest.approx(1.9)


@pytest.mark.parametrize(
    ("s", "tau", "expected"),
    [(0.5, 0.5, 0.0), (0.3, 0.5, 0.0), (1.0, 0.5, 1.0), (0.75, 0.5, 0.5), (0.2, 0.0, 0.2), (0.91, 0.9, 0.1),
     (-0.4, 0.0, 0.0), (float("nan"), 0.2, 0.0), (1.5, 0.5, 1.0)],
)
def test_similarity_reward_threshold_and_rescale(s, tau, expected):
    assert similarity_reward(s, tau) == pytest.approx(expected)


def test_cosine_normalises_and_guards():
    assert cosine_similarity([3.0, 0.0], [10.0, 0.0]) == pytest.approx(1.0)
    assert cosine_similarity([1.0, 1.0], [1.0, 0.0]) == pytest.approx(1 / math.sqrt(2))
    assert cosine_similarity([1.0, 0.0], [-2.0, 0.0]) == pytest.approx(-1.0)
    assert cosine_similarity([0.0, 0.0], [1.0, 0.0]) == 0.0
    assert cosine_similarity([np.nan, 1.0], [1.0, 0.0]) == 0.0
    assert cosine_similarity([np.inf, 1.0], [1.0, 0.0]) == 0.0


def test_language_reward_purity_and_min_letters():
    assert language_reward(UnitShare(9, 10), purity=0.9) == 1.0
    assert language_reward(UnitShare(8, 10), purity=0.9) == 0.0
    assert language_reward(UnitShare(0, 0), purity=0.9) == 0.0
    assert language_reward(UnitShare(2, 2), purity=0.9, min_letters=3) == 0.0


def test_text_units_per_script():
    assert text_units(BO) == ["བཀྲ", "ཤིས", "བདེ", "ལེགས"]
    assert text_units("新中国，成立") == ["新", "中", "国", "成", "立"]
    assert text_units("hello, big  world!") == ["hello", "big", "world"]
    assert text_units("...!!! \u200b\x00") == []
    assert text_units("ཀ\u0f0cཁ༔ག ༢༠༢༤ GDP") == ["ཀ", "ཁ", "ག", "༢༠༢༤", "GDP"]


def test_repeated_ngram_ratio_by_hand():
    # "a b c d a b c d": 5 four-grams, 4 distinct -> 1 - 4/5 = 0.2
    assert repeated_ngram_ratio(list("abcdabcd"), 4) == pytest.approx(0.2)
    assert repeated_ngram_ratio(list("abcdefgh"), 4) == 0.0
    assert repeated_ngram_ratio(["x"] * 10, 4) == pytest.approx(1 - 1 / 7)
    assert repeated_ngram_ratio(list("abc"), 4) == 0.0


def test_ramps_and_penalties_by_hand():
    assert ramp(2.0, 2.5, 5.0) == 0.0
    assert ramp(3.75, 2.5, 5.0) == pytest.approx(0.5)
    assert ramp(float("inf"), 2.5, 5.0) == 1.0
    assert ramp(float("nan"), 2.5, 5.0) == 0.0
    assert repetition_penalty(0.15) == 0.0
    assert repetition_penalty(0.575, 0.15) == pytest.approx(0.5)
    # 30 units against a reference of 8: ratio 3.75 -> halfway between 2.5 and 5.0
    assert length_penalty(30, 8) == pytest.approx(0.5)
    assert length_penalty(5, 0) == pytest.approx(1.0)  # empty reference counts as length 1


def test_gated_combination_by_hand():
    # g * max(1.0*0.6 - 0.2*0.5 - 0.05*1.0, 0) = 0.45
    assert combine_gated(0.6, 1.0, 0.5, 1.0) == pytest.approx(0.45)
    assert combine_gated(0.6, 0.0, 0.0, 0.0) == 0.0
    assert combine_gated(0.1, 1.0, 1.0, 1.0) == 0.0


def test_additive_with_penalties_by_hand():
    # 1.5*0.6 + 1.0*1 - 0.2*0.5 - 0.05*1 = 1.75
    value = combine_additive(0.6, 1.0, 0.5, 1.0, length_weight=0.2, repetition_weight=0.05)
    assert value == pytest.approx(1.75)


def test_modes_pick_the_similarity():
    assert mix_similarity("reference", 0.8, 0.2, 0.5) == 0.8
    assert mix_similarity("source", 0.8, 0.2, 0.5) == 0.2
    assert mix_similarity("hybrid", 0.8, 0.2, 0.25) == pytest.approx(0.25 * 0.8 + 0.75 * 0.2)


def test_components_gated_config_end_to_end():
    cfg = SemanticRewardConfig.from_mapping(
        {"combine": "gated", "semantic_weight": 1.0, "tau": 0.0,
         "length_penalty": {"weight": 0.2}, "repetition_penalty": {"weight": 0.05}}
    )
    looping = "་".join(["བཀྲ", "ཤིས"] * 20)  # 40 units, reference 4 -> ratio 10 -> p_len 1
    res = reward_components(looping, scripts=TIBETAN, config=cfg, sim_reference=0.9, length_basis=4)
    ratio = repeated_ngram_ratio(text_units(looping), 4)
    expected = max(0.9 - 0.2 * 1.0 - 0.05 * repetition_penalty(ratio, 0.15), 0.0)
    assert res["length_penalty"] == 1.0
    assert res["score"] == pytest.approx(expected)
    wrong = reward_components("新中国成立", scripts=TIBETAN, config=cfg, sim_reference=0.9, length_basis=4)
    assert wrong["language_reward"] == 0.0 and wrong["score"] == 0.0


def test_empty_and_key_set_are_fixed():
    cfg = SemanticRewardConfig()
    for text in ["", "   ", "\x00\x01", "།།", "...?!", "\u0f71\u0f72\u0fb2"]:
        res = reward_components(text, scripts=TIBETAN, config=cfg, sim_reference=0.99)
        assert res == empty_components(cfg)
        assert res["score"] == 0.0 and res["is_empty"] == 1.0
    res = reward_components(BO, scripts=TIBETAN, config=cfg, sim_reference=0.7)
    assert tuple(res) == REWARD_KEYS == tuple(empty_components())


# ---- issue 13, item 14: an empty output is never the best choice ----------------------------------

MODES = {
    "paper": {},
    "additive+penalties": {"length_penalty": {"weight": 0.2}, "repetition_penalty": {"weight": 0.05}},
    "additive+heavy_penalties": {"length_penalty": {"weight": 1.0}, "repetition_penalty": {"weight": 1.0}},
    "gated": {"combine": "gated", "semantic_weight": 1.0, "length_penalty": {"weight": 0.2},
              "repetition_penalty": {"weight": 0.05}},
    "source": {"mode": "source", "length_penalty": {"weight": 0.2}},
    "hybrid": {"mode": "hybrid", "repetition_penalty": {"weight": 0.3}},
}


@pytest.mark.parametrize("settings", MODES.values(), ids=MODES.keys())
def test_empty_scores_the_bottom_of_the_range_in_every_mode(settings):
    cfg = SemanticRewardConfig.from_mapping(settings)
    low, _ = cfg.reward_range
    empty = reward_components("", scripts=TIBETAN, config=cfg, sim_reference=0.99, sim_source=0.99)
    assert empty["score"] == low
    # the worst genuine attempts: wrong language, long and looping, and similarity below tau
    for attempt in ["新中国成立" * 40, "་".join(["བཀྲ", "ཤིས"] * 50), "hello " * 100, BO]:
        res = reward_components(attempt, scripts=TIBETAN, config=cfg, sim_reference=-1.0, sim_source=-1.0,
                                length_basis=4)
        assert res["score"] >= empty["score"], attempt[:20]


def test_empty_ranks_below_a_penalised_attempt_issue_example():
    # additive with penalties (0.2 length, 0.05 repetition): a looping output in the wrong language
    cfg = SemanticRewardConfig.from_mapping({"length_penalty": {"weight": 0.2}, "repetition_penalty": {"weight": 0.05}})
    looping_chinese = "新中国" * 100  # 300 units vs a reference of 4 -> p_len 1; 297 4-grams, 3 distinct
    attempt = reward_components(looping_chinese, scripts=TIBETAN, config=cfg, sim_reference=0.1, length_basis=4)
    p_rep = (1 - 3 / 297 - 0.15) / (1 - 0.15)
    assert attempt["repeated_ngram_ratio"] == pytest.approx(1 - 3 / 297)
    assert attempt["score"] == pytest.approx(-0.2 - 0.05 * p_rep)  # about -0.25, the issue's example
    empty = reward_components("   ", scripts=TIBETAN, config=cfg, sim_reference=0.99)
    assert empty["score"] == pytest.approx(-0.25)
    assert empty["score"] < attempt["score"]  # was 0 > -0.25 before
