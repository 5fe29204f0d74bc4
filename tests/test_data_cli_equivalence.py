"""``python -m data_tools`` and ``data.raw_corpus`` (RawCorpusDataset) give the same rows, on real data.

Both routes build their settings through ``BuildConfig.from_mapping`` (task defaults
included); before they shared it, the command line kept every headline row while
``data.raw_corpus`` dropped them all on a length-ratio bound meant for translation.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from data_tools.cli import main as cli_main
from data_tools.config import ConfigError
from tests.conftest import SHARED_DATA, read_jsonl

CORPUS = {"mt": "bo_zh_news.jsonl", "headline": "bo_title_generation.jsonl"}

# (task, command-line flags, the same settings as recipe keys under data.raw_corpus)
CASES = [
    ("mt", [], {}),
    ("mt", ["--seed", "3"], {"splits": {"seed": 3}}),
    ("mt", ["--direction", "bo-zh", "--t2s"], {"direction": "bo-zh", "normalize": {"traditional_to_simplified": True}}),
    ("mt", ["--max-length-ratio", "1.5", "--cold-start", "0.2"],
     {"filters": {"max_length_ratio": 1.5}, "splits": {"cold_start": 0.2}}),
    ("headline", [], {}),
    ("headline", ["--seed", "5", "--max-source-units", "600"],
     {"splits": {"seed": 5}, "filters": {"max_source_units": 600}}),
    ("headline", ["--max-length-ratio", "80", "--instruction-language", "bo"],
     {"filters": {"max_length_ratio": 80}, "prompts": {"instruction_language": "bo"}}),
]


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def raw_corpus_rows(path, task, settings, split, tokenizer, tmp_path):
    from data_tools.verl_dataset import RawCorpusDataset

    cfg = OmegaConf.create({
        "max_prompt_length": 100000, "filter_overlong_prompts": False, "cache_dir": str(tmp_path / "cache"),
        "raw_corpus": {"task": task, "split": split, **settings},
    })
    ds = RawCorpusDataset(str(path), tokenizer, cfg)
    return ds.dataframe.to_list(), ds.build_stats


@pytest.mark.parametrize(("task", "flags", "settings"), CASES,
                         ids=[f"{t}{''.join(f)}" for t, f, _ in CASES])
def test_command_line_and_raw_corpus_give_identical_rows(task, flags, settings, tokenizer, tiny_tokenizer_dir,
                                                         tmp_path):
    rows = read_jsonl(CORPUS[task])
    path = SHARED_DATA / CORPUS[task]
    out = tmp_path / "cli"
    # the command line names the policy's tokenizer; data.raw_corpus counts in the one verl hands it (the same)
    named = ["--tokenizer", tiny_tokenizer_dir] if task == "headline" else []
    assert cli_main([task, "--input", str(path), "--out", str(out), "--quiet", *flags, *named]) == 0
    for split in ("rl", "test"):
        written = pq.read_table(out / "rl" / f"{split}.parquet").to_pylist()
        served, stats = raw_corpus_rows(path, task, settings, split, tokenizer, tmp_path)
        assert served == written, f"{task} {flags} split {split}"
    assert stats["rows_read"] == len(rows) == stats["kept"] + stats["filtered_total"]
    assert len(written) > 0 and all(r["extra_info"]["task"] == task for r in written)


def test_headline_defaults_keep_the_rows_on_both_routes(tokenizer, tmp_path):
    """The regression: a translation length-ratio bound used to drop every headline row in data.raw_corpus."""
    rows = read_jsonl(CORPUS["headline"])
    _, stats = raw_corpus_rows(SHARED_DATA / CORPUS["headline"], "headline", {}, "rl", tokenizer, tmp_path)
    assert stats["filtered"]["length_ratio"] == 0
    assert stats["settings"]["filters"]["max_length_ratio"] is None and stats["direction"] == "bo-bo"
    assert stats["kept"] == len(rows) - stats["filtered_total"] > len(rows) * 0.9
    # passages are cut to the budget in verl's own tokenizer, never dropped for their length
    assert stats["filtered"]["too_long_source"] == 0 and stats["truncation"]["truncated"] > 0
    assert stats["truncation"]["tokenizer"] == tokenizer.name_or_path
    with pytest.raises(ConfigError, match="empty after filtering"):  # what the old default did to the corpus
        raw_corpus_rows(SHARED_DATA / CORPUS["headline"], "headline", {"filters": {"max_length_ratio": 4.0}}, "rl",
                        tokenizer, tmp_path)
