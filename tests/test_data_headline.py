"""Headline passages cut to a token budget of the policy's tokenizer, and recipe lengths from measured tokens.

The real headline data (../shared/data/bo_title_generation.jsonl) is built with the
defaults and the test suite's tiny tokenizer standing in for Qwen's (no hub here).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from data_tools.cli import main as cli_main
from data_tools.config import HEADLINE_SOURCE_TOKENS, BuildConfig, ConfigError
from data_tools.lengths import ROUND, check_lengths, check_recipe_lengths, propose
from data_tools.normalize import Normalizer
from data_tools.pipeline import build
from data_tools.splits import SPLITS
from data_tools.tokens import Truncator
from semantic_reward.text import SHADS, TSHEG, text_units
from tests.conftest import SHARED_DATA, read_jsonl

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = "bo_title_generation.jsonl"
HEADLINE_RECIPES = ("grpo_semantic_headline", "sft_cold_start_headline", "sft_strong_headline",
                    "fewshot_headline_from_mt")


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def ends_cleanly(cut: str, full: str) -> bool:
    """``cut`` is ``full``'s beginning, ends after a whole unit (a Tibetan syllable with its tsheg or shad)."""
    units, all_units = text_units(cut), text_units(full)
    return full.startswith(cut) and units == all_units[:len(units)] and (
        cut in ("", full) or cut[-1] in TSHEG + SHADS or not ("\u0f00" <= cut[-1] <= "\u0fff"))


@pytest.fixture(scope="module")
def headline_build(tmp_path_factory, tiny_tokenizer_dir):
    """``python -m data_tools headline`` with its defaults, the tiny tokenizer as the policy's."""
    rows = read_jsonl(HEADLINE)  # skips with a message when ../shared/data is absent
    out = tmp_path_factory.mktemp("headline") / "data"
    assert cli_main(["headline", "--input", str(SHARED_DATA / HEADLINE), "--tokenizer", tiny_tokenizer_dir,
                     "--out", str(out), "--quiet"]) == 0
    return rows, out, json.loads((out / "stats.json").read_text(encoding="utf-8"))


def test_headline_defaults_truncate_every_long_passage_and_drop_none_for_length(headline_build, tokenizer):
    rows, out, stats = headline_build
    budget = stats["settings"]["tokens"]["source_tokens"]
    assert budget == HEADLINE_SOURCE_TOKENS == 2048
    # no passage is dropped for its length, and at least 90% of the rows are kept
    assert stats["filtered"]["too_long_source"] == 0
    assert stats["kept"] >= 0.9 * len(rows) and stats["rows_read"] == len(rows)
    # every truncation is counted: the number of passages over the budget, measured here independently
    normalise = Normalizer()
    over = [r for r in rows if count(tokenizer, normalise(r["text"])) > budget]
    t = stats["truncation"]
    assert t["rows"] == len(rows) and t["truncated"] == len(over) > 0
    assert t["source_tokens_before"]["max"] == max(count(tokenizer, normalise(r["text"])) for r in rows) > budget
    assert t["source_tokens_after"]["max"] <= budget
    assert t["truncated_rows_tokens_before"]["count"] == len(over)
    # the written passages: within the budget, and each cut after a whole syllable
    originals = {r["id"]: normalise(r["text"]) for r in rows}
    cut = 0
    for split in SPLITS:
        for row in pq.read_table(out / "rl" / f"{split}.parquet").to_pylist():
            source, full = row["extra_info"]["source"], originals[row["extra_info"]["id"]]
            assert count(tokenizer, source) <= budget
            assert ends_cleanly(source, full), (row["extra_info"]["id"], source[-20:])
            if source != full:
                cut += 1
                assert count(tokenizer, source) > budget - 40  # as much as fits (a syllable is a few tokens)
    assert 0 < cut <= t["truncated"]


def test_token_lengths_are_measured_as_verl_counts_them(headline_build, tokenizer):
    _, out, stats = headline_build
    lengths = stats["lengths_in_tokens"]
    rl = [r for s in SPLITS for r in pq.read_table(out / "rl" / f"{s}.parquet").to_pylist()]
    prompts = [count(tokenizer, tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True,
                                                              enable_thinking=False)) for r in rl]
    refs = [count(tokenizer, r["reward_model"]["ground_truth"]) for r in rl]
    assert lengths["prompt"]["count"] == len(rl) == stats["kept"]
    assert (lengths["prompt"]["max"], lengths["reference"]["max"]) == (max(prompts), max(refs))
    assert lengths["sft"]["max"] > lengths["prompt"]["max"] - 10  # the whole conversation, answer included
    # the template adds a fixed overhead: a prompt is its (truncated) passage + at most 64 tokens
    assert lengths["prompt"]["max"] <= HEADLINE_SOURCE_TOKENS + 64


def test_recipe_lengths_are_checked_against_the_measured_tokens(headline_build):
    _, _, stats = headline_build
    lengths = stats["lengths_in_tokens"]
    proposed = propose(stats)
    assert proposed["data.max_prompt_length"] % ROUND == 0
    assert lengths["prompt"]["max"] <= proposed["data.max_prompt_length"] < lengths["prompt"]["max"] + ROUND
    assert lengths["reference"]["max"] + 1 <= proposed["data.max_response_length"]  # + the end-of-turn token
    assert check_lengths(stats, {k: v for k, v in proposed.items()}).errors == []
    p99 = int(lengths["prompt"]["p99"])
    below = check_lengths(stats, {"data.max_prompt_length": p99 - 1})
    assert len(below.errors) == 1 and f"below the P99 {lengths['prompt']['p99']:.0f}" in below.errors[0]
    assert str(proposed["data.max_prompt_length"]) in below.errors[0]
    if lengths["sft"]["p99"] < lengths["sft"]["max"]:
        between = check_lengths(stats, {"data.max_length": int(lengths["sft"]["p99"]) + 1})
        assert between.errors == [] and "below the longest" in between.warnings[0]
    other = check_lengths(stats, {}, model="Qwen/Qwen3-4B")
    assert other.warnings and "Qwen/Qwen3-4B" in other.warnings[0]


def test_lengths_command_proposes_and_fails_below_p99(headline_build, capsys):
    _, out, stats = headline_build
    assert cli_main(["lengths", str(out / "stats.json")]) == 0
    text = capsys.readouterr().out
    assert f"data.max_prompt_length={propose(stats)['data.max_prompt_length']}" in text
    assert cli_main(["lengths", str(out / "stats.json"), "--max-length", "512"]) == 1
    assert "FAIL  data.max_length 512" in capsys.readouterr().out


def test_headline_recipes_at_the_cpu_profile_fit_a_build_at_its_budget(tmp_path, tiny_tokenizer_dir):
    """Build at cpu-tiny's budget: the headline recipes' lengths cover every measured P99 (recipe_check --stats)."""
    from semantic_reward.recipe_check import compose_recipe, recipe_kind

    read_jsonl(HEADLINE)
    profile = OmegaConf.load(ROOT / "recipes" / "profile" / "cpu-tiny.yaml")
    out = tmp_path / "data"
    assert cli_main(["headline", "--input", str(SHARED_DATA / HEADLINE), "--tokenizer", tiny_tokenizer_dir,
                     "--source-tokens", str(profile.headline.source_tokens), "--out", str(out), "--quiet"]) == 0
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["truncation"]["truncated"] > 0.9 * stats["truncation"]["rows"]
    for recipe in HEADLINE_RECIPES:
        cfg = compose_recipe(recipe, "cpu-tiny")
        OmegaConf.resolve(cfg)
        report = check_recipe_lengths(stats, cfg, recipe_kind(recipe))
        assert report.errors == [], (recipe, report.errors)


@pytest.mark.parametrize("profile", ["paper", "cpu-tiny"])
def test_profile_headline_lengths_are_consistent_and_reach_the_recipes(profile):
    from semantic_reward.recipe_check import compose_recipe

    h = OmegaConf.load(ROOT / "recipes" / "profile" / f"{profile}.yaml").headline
    assert h.max_prompt_length == h.source_tokens + 64  # + the chat template and instruction
    assert h.sft_max_length == h.max_prompt_length + h.max_response_length
    grpo = compose_recipe("grpo_semantic_headline", profile)
    assert (grpo.data.max_prompt_length, grpo.data.max_response_length) == (h.max_prompt_length,
                                                                           h.max_response_length)
    for recipe in HEADLINE_RECIPES[1:]:
        cfg = compose_recipe(recipe, profile)
        assert cfg.data.max_length == h.sft_max_length and "headline" in str(cfg.data.train_files)
    if profile == "paper":
        assert h.source_tokens == HEADLINE_SOURCE_TOKENS  # data_tools' default is the paper profile's budget
    mt = compose_recipe("grpo_semantic_zh_bo", profile)
    assert mt.data.max_prompt_length != h.max_prompt_length  # MT keeps its own, shorter lengths


def test_headline_experiment_has_all_three_systems_on_headline_recipes(tmp_path):
    from semantic_reward.experiment.spec import load_experiment

    for profile in ("paper", "cpu-tiny"):
        exp = load_experiment(ROOT / "recipes" / "experiments" / "headline_bo.yaml", profile, tmp_path / profile)
        s, p = exp.stages, exp.profile_values
        assert list(s) == ["data", "encoder", "encoder_audit", "cold_start", "grpo", "sft_strong", "evaluation"]
        assert s["data"]["task"] == "headline"
        args = s["data"]["args"]
        assert args[args.index("--tokenizer") + 1] == p["model"]
        assert str(args[args.index("--source-tokens") + 1]) == str(p["headline"]["source_tokens"])
        assert (s["cold_start"]["recipe"], s["grpo"]["recipe"], s["sft_strong"]["recipe"]) == (
            "sft_cold_start_headline", "grpo_semantic_headline", "sft_strong_headline")
        assert s["grpo"]["model_in"] == s["sft_strong"]["model_in"] == str(tmp_path / profile / "cold_start" / "model")
        assert s["sft_strong"]["train_files"].endswith("sft/train_all.parquet")
        ev = s["evaluation"]
        assert (ev["source_language"], ev["target_language"]) == ("bo", "bo")
        assert set(ev["systems"]) == {"base", "cold_start", "grpo", "sft_strong"}


# -- the truncation itself, on made-up text ---------------------------------------------------------------


def _tibetan(rng: random.Random, syllables: int) -> str:
    letters = [chr(c) for c in range(0x0F40, 0x0F6A) if c != 0x0F48]  # U+0F48 is unassigned
    marks = ["", "", "\u0f72", "\u0f74", "\u0f7c", "\u0fb1", "\u0fb2"]
    out = []
    for i in range(syllables):
        out.append("".join(rng.choice(letters) for _ in range(rng.randint(1, 3))) + rng.choice(marks))
        out.append("། " if i % 9 == 8 else "་")
    return "".join(out).strip()


@pytest.mark.parametrize("budget", [1, 5, 17, 64, 200])
def test_truncation_never_leaves_a_broken_syllable(tokenizer, budget):
    rng = random.Random(budget)
    for _ in range(20):
        text = Normalizer()(_tibetan(rng, rng.randint(20, 120)))
        truncator = Truncator(tokenizer, budget)
        cut = truncator(text)
        before = count(tokenizer, text)
        assert truncator.counts.before == [before] and truncator.counts.after == [count(tokenizer, cut)]
        assert count(tokenizer, cut) <= budget
        assert ends_cleanly(cut, text), (text, cut)
        if before <= budget:
            assert cut == text
        elif cut:  # the next whole unit would not have fitted
            unit = text_units(text)[len(text_units(cut))]
            end = text.index(unit, len(cut)) + len(unit)
            while end < len(text) and text[end] in TSHEG + SHADS:
                end += 1
            assert count(tokenizer, text[:end]) > budget


def test_truncation_of_chinese_cuts_between_characters_and_the_slow_path_agrees(tokenizer):
    text = "中华人民共和国成立了。" * 30

    class Slow:  # no character offsets: the truncator searches the unit boundaries itself
        is_fast = False

        def __call__(self, *args, **kwargs):
            return tokenizer(*args, **kwargs)

    fast, slow = Truncator(tokenizer, 25)(text), Truncator(Slow(), 25)(text)
    assert fast == slow and ends_cleanly(fast, text) and count(tokenizer, fast) <= 25 < count(tokenizer, text)


def test_a_budget_without_a_tokenizer_or_with_a_missing_one_fails_clearly(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": "ཀ་ཁ་ག།", "title": "ཀ"}, ensure_ascii=False) + "\n", encoding="utf-8")
    config = BuildConfig.from_mapping({"task": "headline", "input": {"paths": [str(corpus)]}})
    assert config.tokens.source_tokens == HEADLINE_SOURCE_TOKENS and config.tokens.tokenizer is None
    with pytest.raises(ConfigError, match=r"'tokens.tokenizer'.*--tokenizer.*--source-tokens null"):
        build(config, progress=False)
    missing = BuildConfig.from_mapping({"task": "headline", "input": {"paths": [str(corpus)]},
                                        "tokens": {"tokenizer": str(tmp_path / "no_model")}})
    with pytest.raises(ConfigError, match=r"'tokens.tokenizer'.*no_model is not a folder"):
        build(missing, progress=False)
    whole = build(BuildConfig.from_mapping({"task": "headline", "input": {"paths": [str(corpus)]},
                                            "tokens": {"source_tokens": None}, "splits": {"test": 0, "dev": 0}}),
                  progress=False)
    assert "truncation" not in whole.stats and "lengths_in_tokens" not in whole.stats
    with pytest.raises(ConfigError, match="'tokens.source_tokens'"):
        BuildConfig.from_mapping({"task": "headline", "input": {"paths": [str(corpus)]},
                                  "tokens": {"source_tokens": 0}})
