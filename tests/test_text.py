"""One normalisation and one segmentation (semantic_reward.text), and every consumer counting the same units."""

import importlib.util
import random
import sys
from pathlib import Path

import pytest
import sacrebleu

from semantic_reward.config import SemanticRewardConfig
from semantic_reward.text import SEGMENTER, normalize, pretokenize, strip_reasoning, text_units

ROOT = Path(__file__).resolve().parents[1]

# Strings exercising U+0F0B / U+0F0C, shads (U+0F0D-U+0F12, U+0F14), Tibetan digits, Latin and Han,
# with the units the rules of the module docstring give, written out by hand.
CASES = [
    # tsheg and non-breaking tsheg both separate; "། །" and "༎" are shads; digits and an acronym stand alone
    ("བཀྲ་ཤིས༌བདེ་ལེགས། །༢༠༢༤ལོའི་NBAརྒྱལ་ཁ༎",
     ["བཀྲ", "ཤིས", "བདེ", "ལེགས", "༢༠༢༤", "ལོའི", "NBA", "རྒྱལ", "ཁ"]),
    # gter tsheg U+0F14, rgya gram shad U+0F12, tsheg shad U+0F0F, a half digit U+0F2A
    ("ཀ༔ཁ༒ག༏ང ༪", ["ཀ", "ཁ", "ག", "ང", "༪"]),
    # Han one character each, a Latin acronym one word, digits split at the decimal point, no punctuation
    ("海洋经济占全省GDP的8.5%。", ["海", "洋", "经", "济", "占", "全", "省", "GDP", "的", "8", "5"]),
    # all three scripts with spaces and commas
    ("中文 English words, ཀ་ཁ", ["中", "文", "English", "words", "ཀ", "ཁ"]),
    # a change of script ends a unit even without a separator
    ("POWER6ཀ中", ["POWER", "6", "ཀ", "中"]),
]
IDS = ["tibetan", "gter-tsheg", "chinese", "mixed", "no-separators"]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=IDS)
def test_units_follow_the_documented_rules(text, expected):
    assert text_units(text) == expected
    assert SEGMENTER(text) == expected
    assert pretokenize(text) == " ".join(expected)


def test_non_breaking_tsheg_and_marks_without_base():
    assert text_units("ཀ\u0f0cཁ\u0f0cག") == text_units("ཀ\u0f0bཁ\u0f0bག") == ["ཀ", "ཁ", "ག"]
    assert text_units("\u0f71\u0f72\u0f90\u0fb2") == []  # vowel signs and subjoined letters alone: no unit
    assert text_units("\u0f71ཀ") == ["ཀ"]  # a stray leading mark is dropped, the syllable stays
    assert text_units("ཀ\u200bཁ") == ["ཀཁ"]  # invisible characters are removed before splitting
    assert SEGMENTER.signature() == "units-1"


def test_normalize_steps():
    assert normalize("ཀ\u0f0cཁ") == "ཀ\u0f0bཁ"
    assert normalize("ཀ\u200bཁ\ufeff\x00 \x07") == "ཀཁ"
    assert normalize("  a \t\n  b  ") == "a b"
    assert normalize("བཀྲ་ཤིས །  །ཡིན།") == "བཀྲ་ཤིས། །ཡིན།"
    assert normalize("ཀ ༔") == "ཀ༔"  # gter tsheg is a shad for spacing too
    assert normalize("e\u0301") == "\u00e9"
    assert normalize("ཀ\u0f0c", tsheg=False) == "ཀ\u0f0c"
    for text, _ in CASES:
        assert normalize(normalize(text)) == normalize(text)  # idempotent


# ---- every consumer counts the same units -------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), CASES, ids=IDS)
def test_penalties_and_reward_count_these_units(text, expected):
    from semantic_reward.penalties import repeated_ngram_ratio
    from semantic_reward.penalties import text_units as penalty_units
    from semantic_reward.reward_math import reward_components

    assert penalty_units(text) == expected
    looped = " ".join([text] * 3)
    res = reward_components(looped, scripts=("Tibetan",), config=SemanticRewardConfig(), length_basis=1)
    assert res["length_ratio"] == 3 * len(expected)  # length basis 1: the ratio is the unit count
    assert res["repeated_ngram_ratio"] == pytest.approx(repeated_ngram_ratio(expected * 3, 4))


@pytest.mark.parametrize(("text", "expected"), CASES, ids=IDS)
def test_lexical_reward_tokenises_into_these_units(text, expected):
    from semantic_reward.scorer import lexical_similarity

    other = CASES[0][1][:3]
    by_hand = sacrebleu.sentence_bleu(" ".join(other), [" ".join(expected)], tokenize="none").score / 100
    assert lexical_similarity("bleu", "་".join(other), text) == pytest.approx(by_hand)
    chrf = sacrebleu.sentence_chrf(" ".join(other), [" ".join(expected)], word_order=2).score / 100
    assert lexical_similarity("chrf", "་".join(other), text) == pytest.approx(chrf)
    assert lexical_similarity("bleu", text.replace("\u0f0b", "\u0f0c"), text) == pytest.approx(1.0)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=IDS)
def test_evaluation_bleu_and_rouge_use_these_units(text, expected):
    from semantic_reward.evaluation import metrics

    for language in ("bo", "zh", "en"):
        assert metrics._rouge_units(text, language) == expected
        assert metrics._segmented([text], language)[0].split() == expected
        assert metrics._metric("bleu", language).tokenizer.signature() == "none"
    hyp = " ".join(expected[:-1])
    by_hand = sacrebleu.corpus_bleu([hyp], [[" ".join(expected)]], tokenize="none").score / 100
    assert metrics.bleu([hyp], [text], "bo") == pytest.approx(by_hand)
    # ROUGE-L over n-1 of n units in order: P = 1, R = (n-1)/n
    n = len(expected)
    assert metrics.rouge_l(hyp, text, "zh") == pytest.approx(2 * (n - 1) / n / (1 + (n - 1) / n))


@pytest.mark.parametrize(("text", "expected"), CASES, ids=IDS)
def test_audit_perturbations_cut_and_shuffle_these_units(text, expected):
    from semantic_reward.encoder_tools.audit import perturb

    truncated = perturb("truncated", text, "src", "other", random.Random(0))
    assert text_units(truncated) == expected[: len(expected) // 2]
    shuffled = perturb("shuffled", text, "src", "other", random.Random(0))
    assert sorted(text_units(shuffled)) == sorted(expected) and text_units(shuffled) != expected


@pytest.mark.parametrize(("text", "expected"), CASES, ids=IDS)
def test_data_tools_filter_counts_these_units(text, expected):
    from data_tools.config import FilterConfig
    from data_tools.filters import RowFilter
    from data_tools.records import Pair

    def reason(max_units: int) -> str | None:
        cfg = FilterConfig(max_target_units=max_units, max_length_ratio=None, min_script_share=0.0)
        return RowFilter(cfg, "zh", "script:Tibetan+Han+Latin", reward_purity=0.0).reason(
            Pair("1", "中文", text, "x", 1), ("中文", text))

    assert reason(len(expected)) is None
    assert reason(len(expected) - 1) == "too_long_target"


@pytest.mark.parametrize(("text", "expected"), CASES, ids=IDS)
def test_grpo_step_candidates_use_these_units(text, expected):
    spec = importlib.util.spec_from_file_location("grpo_step", ROOT / "scripts" / "grpo_step.py")
    grpo_step = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("grpo_step", grpo_step)  # dataclasses look their module up by name
    spec.loader.exec_module(grpo_step)
    truncated = grpo_step.candidate("truncated", text, "src", "other", random.Random(0))
    assert text_units(truncated) == expected[: max(1, len(expected) // 2)]


# ---- reasoning blocks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer", "removed"),
    [
        ("<think>ཀ་ཁ</think>བཀྲ་ཤིས།", "བཀྲ་ཤིས།", len("<think>ཀ་ཁ</think>")),
        ("  <think>\nplan\n</think>\n答案", "\n答案", len("  <think>\nplan\n</think>")),
        ("plan only</think>答案", "答案", len("plan only</think>")),  # template opened the block in the prompt
        ("<think>never closed", "", len("<think>never closed")),  # no answer at all
        ("答案<think>x</think>", "答案<think>x</think>", 0),  # not a leading block
        ("no reasoning", "no reasoning", 0),
        ("", "", 0),
    ],
)
def test_strip_reasoning(text, answer, removed):
    assert strip_reasoning(text) == (answer, removed)
