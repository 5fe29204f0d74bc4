"""Normalisation, filters, splits, determinism and the command line."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_tools.cli import main as cli_main
from data_tools.config import BuildConfig, ConfigError, NormalizeConfig
from data_tools.normalize import Normalizer
from data_tools.pipeline import build
from data_tools.splits import SPLITS
from data_tools.writers import write_build
from tests.conftest import SHARED_DATA, read_jsonl as shared_rows

ROOT = Path(__file__).resolve().parents[1]


def test_normalisation_by_hand():
    norm = Normalizer()
    assert norm("ཀ\u0f0cཁ\u0f0cག") == "ཀ\u0f0bཁ\u0f0bག"  # non-breaking tsheg -> tsheg
    assert norm("ཀ\u200bཁ\ufeff\x00 \x07") == "ཀཁ"  # zero-width and control characters removed
    assert norm("  a \t\n  b  ") == "a b"  # whitespace collapsed and trimmed
    assert norm("བཀྲ་ཤིས །  །ཡིན།") == "བཀྲ་ཤིས། །ཡིན།"  # no space before a shad, one between shads
    assert norm("e\u0301") == "\u00e9"  # NFC
    assert Normalizer(NormalizeConfig(tsheg=False))("ཀ\u0f0c") == "ཀ\u0f0c"
    t2s = Normalizer(NormalizeConfig(traditional_to_simplified=True))
    assert t2s("祈禱無垢光尊者", chinese=True) == "祈祷无垢光尊者"
    assert t2s("祈禱", chinese=False) == "祈禱"  # never applied to the Tibetan side


def make_corpus(path: Path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_every_filter_reason_is_counted(tmp_path):
    good = {"zh": "新中国成立了", "bo": "ཀྲུང་གོ་གསར་པ་དབུ་བརྙེས།"}
    rows = [
        good,
        dict(good),  # exact duplicate
        {"zh": " 新中国成立了 ", "bo": "ཀྲུང\u0f0cགོ་གསར་པ་དབུ་བརྙེས།"},  # duplicate once normalised
        {"zh": "", "bo": "ཀ"},  # empty source
        {"zh": "你好", "bo": " "},  # empty target
        {"zh": "hello there", "bo": "ཀ"},  # wrong script on the source side
        {"zh": "你好", "bo": "你好"},  # wrong script on the target side
        {"zh": "你" * 15, "bo": "ཀ"},  # length ratio 15
        {"zh": "长" * 30, "bo": "ཀ་" * 30},  # too long (max 20 below)
    ]
    path = tmp_path / "c.jsonl"
    make_corpus(path, rows)
    cfg = BuildConfig.from_mapping({"input": {"paths": [str(path)]},
                                    "filters": {"max_source_units": 20}})
    result = build(cfg, progress=False)
    f = result.stats["filtered"]
    assert (f["duplicate_exact"], f["duplicate_normalized"], f["empty_source"], f["empty_target"]) == (1, 1, 1, 1)
    assert (f["wrong_script_source"], f["wrong_script_target"], f["length_ratio"], f["too_long_source"]) == (1, 1, 1, 1)
    assert result.stats["kept"] == 1 and result.stats["rows_read"] == len(rows)
    same = tmp_path / "same.jsonl"
    make_corpus(same, [{"text": "ཀ་ཁ", "title": "ཀ་ཁ"}])
    result = build(BuildConfig.from_mapping({"input": {"paths": [str(same)]}, "task": "headline",
                                             "direction": "bo-bo", "tokens": {"source_tokens": None}}),
                   progress=False)
    assert result.stats["filtered"]["target_equals_source"] == 1


def synthetic_rows(n, start=0):
    return [{"id": f"r{i}", "zh": f"第{i}句话的中文内容", "bo": f"ཚིག་གྲུབ་{'ཀཁགང'[i % 4]}་{i}་པ།"} for i in range(start, start + n)]


def assignment(result):
    return {p.id: name for name, pairs in result.splits.items() for p in pairs}


@pytest.mark.parametrize("cold_start", [40, 0.3])
def test_appending_rows_moves_no_existing_row(tmp_path, cold_start):
    path = tmp_path / "c.jsonl"
    make_corpus(path, synthetic_rows(300))
    cfg = {"input": {"paths": [str(path)]}, "splits": {"cold_start": cold_start, "test": 0.1, "dev": 0.1, "seed": 7}}
    before = assignment(build(BuildConfig.from_mapping(cfg), progress=False))
    make_corpus(path, synthetic_rows(300) + synthetic_rows(200, start=300))
    after = assignment(build(BuildConfig.from_mapping(cfg), progress=False))
    assert len(after) == 500
    assert {k: after[k] for k in before} == before
    assert set(after.values()) == set(SPLITS)


def test_cold_start_count_and_disjoint_splits(tmp_path):
    path = tmp_path / "c.jsonl"
    make_corpus(path, synthetic_rows(400))
    result = build(BuildConfig.from_mapping({"input": {"paths": [str(path)]}, "splits": {"cold_start": 50}}),
                   progress=False)
    assert len(result.splits["cold_start"]) == 50
    sources = [p.source for pairs in result.splits.values() for p in pairs]
    assert len(sources) == len(set(sources)) == 400


def digest_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_input_and_seed_give_byte_identical_outputs(tmp_path, news_pairs):
    args = ["mt", "--input", str(SHARED_DATA / "bo_zh_news.jsonl"), "--direction", "zh-bo", "--few-shot", "20",
            "--quiet"]
    assert cli_main([*args, "--out", str(tmp_path / "a")]) == 0
    assert cli_main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = digest_tree(tmp_path / "a"), digest_tree(tmp_path / "b")
    assert a == b and len(a) == 13  # 11 parquet files, stats.json, splits.json
    assert cli_main([*args, "--seed", "1", "--out", str(tmp_path / "c")]) == 0
    assert digest_tree(tmp_path / "c")["rl/test.parquet"] != a["rl/test.parquet"]


@pytest.mark.parametrize(
    ("task", "file", "direction", "src_key", "tgt_key"),
    [
        ("mt", "bo_zh_news.jsonl", "zh-bo", "zh", "bo"),
        ("mt", "bo_zh_news.jsonl", "bo-zh", "bo", "zh"),
        ("headline", "bo_title_generation.jsonl", "bo-bo", "text", "title"),
    ],
)
def test_cli_writes_every_split_and_stats(tmp_path, task, file, direction, src_key, tgt_key, tiny_tokenizer_dir):
    rows = shared_rows(file)
    out = tmp_path / "out"
    # headline passages are cut to a budget of the policy's tokens: the tiny tokenizer stands in for Qwen's
    tokenizer = ["--tokenizer", tiny_tokenizer_dir] if task == "headline" else []
    proc = subprocess.run(
        [sys.executable, "-m", "data_tools", task, "--input", str(SHARED_DATA / file), "--direction", direction,
         "--out", str(out), *tokenizer],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows_read"] == len(rows)
    assert stats["kept"] + stats["filtered_total"] == len(rows)
    assert sum(stats["splits"].values()) == stats["kept"]
    originals = {r["id"]: r for r in rows}
    for split in SPLITS:
        rl = pq.read_table(out / "rl" / f"{split}.parquet").to_pylist()
        sft = pq.read_table(out / "sft" / f"{split}.parquet").to_pylist()
        assert len(rl) == len(sft) == stats["splits"][split]
        for row in rl[:5]:
            original = originals[row["extra_info"]["id"]]
            assert row["extra_info"]["source"] in row["prompt"][-1]["content"]
            assert row["extra_info"]["target_language"] == direction.split("-")[1]
            assert row["extra_info"]["split"] == split
            assert Normalizer()(original[tgt_key]) == row["reward_model"]["ground_truth"]
            source, full = row["extra_info"]["source"], Normalizer()(original[src_key])
            # a headline passage over the token budget is its own beginning (tests/test_data_headline.py)
            assert source == full or (task == "headline" and full.startswith(source) and len(source) < len(full))
    assert "rows/s" in proc.stdout and "cold_start" in proc.stdout
    if task == "headline":
        assert stats["truncation"]["truncated"] > 0 and "truncated" in proc.stdout


def test_cli_reports_bad_input_and_settings(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"zh": "a"}\n', encoding="utf-8")
    assert cli_main(["mt", "--input", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.jsonl:1: no field 'bo'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "stats.json").exists()
    with pytest.raises(ConfigError, match="'splits.test'"):
        BuildConfig.from_mapping({"input": {"paths": ["x"]}, "splits": {"test": 1.5}})
    with pytest.raises(ConfigError, match="'input.formt' is unknown; did you mean 'input.format'"):
        BuildConfig.from_mapping({"input": {"paths": ["x"], "formt": "csv"}})


def test_source_only_text_gives_rl_rows_without_reference(tmp_path):
    path = tmp_path / "mono.txt"
    path.write_text("".join(f"第{i}句话\n" for i in range(50)), encoding="utf-8")
    assert cli_main(["mt", "--input", str(path), "--format", "text", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    rl = pq.read_table(tmp_path / "o" / "rl" / "rl.parquet").to_pylist()
    assert rl and all(r["reward_model"]["ground_truth"] is None for r in rl)
    assert rl[0]["extra_info"]["source"].startswith("第")
    assert not (tmp_path / "o" / "sft").exists()  # nothing to imitate without targets
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["splits"]["cold_start"] == 0


def test_classical_conversion_all_rows(tmp_path):
    shared_rows("bo_zh_classical.jsonl")
    cfg = BuildConfig.from_mapping({"input": {"paths": [str(SHARED_DATA / "bo_zh_classical.jsonl")]},
                                    "normalize": {"traditional_to_simplified": True}})
    result = build(cfg, progress=False)
    write_build(result, tmp_path)
    assert result.stats["rows_read"] == 2573
    assert result.stats["kept"] + result.stats["filtered_total"] == 2573
    assert result.stats["filtered"]["duplicate_exact"] > 1000  # the same verses recur across documents
    zh = [p.source for p in result.splits["rl"]]
    assert not any("禱" in s for s in zh)  # Traditional converted
