"""Script detection on real rows of ../shared/data and on hostile strings."""

import pytest

from semantic_reward.config import SemanticRewardConfig
from semantic_reward.languages import LanguageError, LanguageRegistry, dominant_script, letter_count, script_share
from semantic_reward.reward_math import reward_components

REG = LanguageRegistry()
CFG = SemanticRewardConfig()


def lang_reward(text: str, language: str) -> float:
    res = reward_components(text, scripts=REG.get(language).scripts, config=CFG, sim_reference=0.0)
    return res["language_reward"]


def test_real_tibetan_passes_chinese_and_mixed_fail(news_pairs):
    assert len(news_pairs) >= 100
    for row in news_pairs:
        assert lang_reward(row["bo"], "bo") == 1.0, row["id"]  # zh->bo: a Tibetan output passes
        assert lang_reward(row["zh"], "bo") == 0.0, row["id"]  # Chinese output fails
        mixed = row["bo"][: len(row["bo"]) // 2] + row["zh"]
        assert lang_reward(mixed, "bo") == 0.0, row["id"]  # half Tibetan, then Chinese: fails
    passing_zh = sum(lang_reward(row["zh"], "zh") for row in news_pairs)
    assert passing_zh >= 0.95 * len(news_pairs)  # bo->zh: Chinese passes (a few rows carry "GDP" etc.)


def test_share_reported_continuously(news_pairs):
    row = news_pairs[0]
    share = script_share(row["bo"] + row["zh"], ["Tibetan"])
    expected = letter_count(row["bo"]) / (letter_count(row["bo"]) + letter_count(row["zh"]))
    assert share.share == pytest.approx(expected)
    assert 0.0 < share.share < 1.0


def test_only_letters_count():
    assert letter_count("2024, ... 1.5%  \n\t!?") == 0
    assert script_share("བཀྲ་ཤིས། 2024 ༢༠༢༤ !!!", ["Tibetan"]).share == 1.0  # Tibetan digits and shad ignored
    assert script_share("中文 123 ABC", ["Han"]).share == pytest.approx(2 / 5)
    assert script_share("e\u0301", ["Latin"]).share == 1.0  # combining acute (Inherited) is not a letter


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Привет мир", "russian", 1.0),
        ("مرحبا بالعالم", "uyghur", 1.0),
        ("ᠮᠣᠩᠭᠣᠯ", "mongolian", 1.0),
        ("ꆈꌠꁱꂷ", "yi", 1.0),
        ("こんにちは世界", "ja", 1.0),
        ("Hello world", "bo", 0.0),
        ("", "bo", 0.0),
    ],
)
def test_other_scripts(text, language, expected):
    share = script_share(text, REG.get(language).scripts)
    assert (share.share >= 0.9) == bool(expected)


@pytest.mark.parametrize(
    "text",
    ["\ud800", "\x00" * 50, "\u200b\u200d\ufeff", "🙂" * 100, "ཀ\ud83d", "A" * 100_000, "་" * 1000, "\U0010ffff"],
)
def test_hostile_strings_do_not_raise(text):
    share = script_share(text, ["Tibetan"])
    assert 0.0 <= share.share <= 1.0
    assert share.target_letters <= share.total_letters


def test_new_language_by_script_name_and_errors():
    reg = LanguageRegistry({"santali": ["Ol_Chiki"]})
    assert reg.get("santali").scripts == ("Ol_Chiki",)
    assert REG.get("script:Tifinagh").scripts == ("Tifinagh",)
    assert dominant_script("བཀྲ་ཤིས་ 中", ["Tibetan", "Han"])[0] == "Tibetan"
    with pytest.raises(LanguageError, match="unknown language 'klingon'"):
        REG.get("klingon")
    with pytest.raises(LanguageError, match="Klingonese"):
        LanguageRegistry({"tlh": ["Klingonese"]})
