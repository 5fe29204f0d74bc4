"""Script detection on real rows of ../shared/data and on hostile strings."""

import pytest

from semantic_reward.config import SemanticRewardConfig
from semantic_reward.languages import (
    DEFAULT_PURITY,
    LanguageError,
    LanguageRegistry,
    letter_count,
    passes_language,
    script_share,
    unit_share,
)
from semantic_reward.reward_math import reward_components
from tests.conftest import read_jsonl

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
    for row in news_pairs:  # bo->zh: every Chinese reference passes, "GDP" and all
        assert lang_reward(row["zh"], "zh") == 1.0, row["id"]


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
    assert unit_share("ᱥᱟᱱᱛᱟᱲᱤ ᱯᱟᱹᱨᱥᱤ", reg.get("santali").scripts).share == 1.0
    with pytest.raises(LanguageError, match="unknown language 'klingon'"):
        REG.get("klingon")
    with pytest.raises(LanguageError, match="Klingonese"):
        LanguageRegistry({"tlh": ["Klingonese"]})


# ---- issue 13, item 11: script-only nonsense ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "\u0f71\u0f72\u0f74" * 20,  # vowel signs alone (the example)
        "\u0f90\u0fb2\u0f7e\u0f7f" * 10,  # subjoined letters, anusvara, visarga: still no base letter
        "ཱ་ི་ུ། ྐ",  # marks between tshegs and shads
        "\u0301\u0302" * 10,  # Latin-side combining marks alone
    ],
)
def test_combining_marks_alone_never_pass(text):
    assert unit_share(text, ["Tibetan"]).total_units == 0
    res = reward_components(text, scripts=("Tibetan",), config=CFG, sim_reference=0.99)
    assert res["language_reward"] == 0.0 and res["is_empty"] == 1.0 and res["score"] == 0.0


def test_marks_on_a_base_letter_still_count():
    assert unit_share("ཀྲུ་ཀཱ", ["Tibetan"]) == unit_share("ཀ་ཁ", ["Tibetan"])
    assert lang_reward("\u0f71\u0f71ཀ", "bo") == 1.0  # the stray marks are dropped, the syllable counts


# ---- issue 13, item 12: purity over comparable units ----------------------------------------------


def test_acronyms_count_as_one_unit():
    gdp = "海洋经济总产值占全省GDP的比重上升到8%。"  # the example: 16 Han characters and one word
    share = unit_share(gdp, ["Han"])
    assert (share.target_units, share.total_units) == (16, 17)
    assert lang_reward(gdp, "zh") == 1.0  # was 0.842 (16 of 19 letters)
    tibetan = "ཀྲུང་གོའི་NBAཚོགས་པས་ལོ་༢༠༢༤ལོར་འགྲན་བསྡུར་ཆེན་པོ་ཞིག་སྒྲིག་པ་རེད།"  # 14 syllables, one acronym, digits
    share = unit_share(tibetan, ["Tibetan"])
    assert (share.target_units, share.total_units) == (14, 15)
    assert lang_reward(tibetan, "bo") == 1.0
    # a sentence half in another language still fails, counted in words as well
    assert lang_reward("བཀྲ་ཤིས་བདེ་ལེགས། this is mostly English now", "bo") == 0.0


def test_purity_threshold_on_units():
    assert passes_language(unit_share("ཀ་ཁ་ག་ང་ཅ་ཆ་ཇ་ཉ་ཏ་ABC", ["Tibetan"]), DEFAULT_PURITY)  # 9 of 10
    assert not passes_language(unit_share("ཀ་ཁ་ག་ང་ཅ་ཆ་ཇ་ཉ་ABC", ["Tibetan"]), DEFAULT_PURITY)  # 8 of 9
    assert not passes_language(unit_share("༢༠༢༤ 2024", ["Tibetan"]), DEFAULT_PURITY)  # digits alone: no letter unit
    assert unit_share("中文 123 ABC", ["Han"]).share == pytest.approx(2 / 3)


def _kept(task: str, dataset: str, direction: str):
    """The pairs ``python -m data_tools TASK --input DATASET --direction DIRECTION`` writes, all splits."""
    from data_tools.cli import config_from_args, parser
    from data_tools.pipeline import build

    rows = read_jsonl(dataset)  # skips when the real data is absent
    from tests.conftest import SHARED_DATA

    # whole headline passages: the token budget needs the policy's tokenizer and does not touch the references
    whole = ["--source-tokens", "null"] if task == "headline" else []
    args = parser().parse_args([task, "--input", str(SHARED_DATA / dataset), "--direction", direction,
                                "--out", "unused", "--quiet", *whole])
    result = build(config_from_args(args), progress=False)
    return rows, [p for split in result.splits.values() for p in split], result.stats


@pytest.mark.parametrize(
    ("task", "dataset", "direction"),
    [
        ("headline", "bo_title_generation.jsonl", "bo-bo"),
        ("mt", "bo_zh_news.jsonl", "bo-zh"),
        ("mt", "bo_zh_news.jsonl", "zh-bo"),
        ("mt", "bo_zh_classical.jsonl", "bo-zh"),
        ("mt", "bo_zh_classical.jsonl", "zh-bo"),
    ],
)
def test_every_reference_data_tools_keeps_earns_r_lang_1(task, dataset, direction):
    rows, kept, stats = _kept(task, dataset, direction)
    assert len(kept) >= 0.5 * len(rows), stats["filtered"]
    language = direction.split("-")[1]
    failing = [p.id for p in kept if lang_reward(p.target, language) != 1.0]
    assert failing == []
