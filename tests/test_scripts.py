"""The quickstart job and the benchmark script run end to end on a small step."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(args, tmp_path):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_reward_table_scores_candidates(tmp_path, news_pairs, minilm_path):
    out = run(["scripts/reward_table.py", "--prompts", "8", "--encoder", minilm_path, "--out", str(tmp_path)], tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "reward_table.json").read_text())
    table = report["by_candidate"]
    assert table["correct"]["score"] == pytest.approx(2.5)  # exact reference: R_sim 1, R_lang 1
    assert table["source_copy"]["language_reward"] == 0.0  # untranslated Chinese fails the language check
    assert table["empty"]["score"] == 0.0
    assert (tmp_path / "reward_table.png").stat().st_size > 10_000
    assert "correct" in out.stdout and "encode calls" in out.stdout


def test_reward_table_skips_clearly_without_data(tmp_path):
    out = run(["scripts/reward_table.py", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path)], tmp_path)
    assert out.returncode == 0
    assert "skipped" in out.stderr and "nowhere" in out.stderr
    assert not (tmp_path / "reward_table.json").exists()


def test_bench_reports_three_variants_that_agree(tmp_path, news_pairs, minilm_path):
    path = tmp_path / "bench.json"
    out = run(["scripts/bench_reward.py", "--prompts", "6", "--n", "4", "--dataset", "news", "--encoder", minilm_path,
               "--json", str(path)],
              tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(path.read_text())
    for key in ("naive_rps", "service_rps", "limit_rps"):
        assert result[key] > 0
    assert result["responses"] == 24
    assert result["max_reward_difference"] < 1e-4  # the service gives the naive path's rewards
    assert result["variants"]["naive"]["encode_calls"] == 24
    assert result["variants"]["service"]["encode_calls"] < 24
    assert "x limit" in out.stdout
