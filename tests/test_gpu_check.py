"""scripts/gpu_check.py off the GPU: its share arithmetic, and its JSON written part by part."""

from __future__ import annotations

import json

import pytest

import gpu_check
from tests.conftest import SHARED_DATA


def test_share_is_reward_over_step_plus_reward():
    lines = gpu_check.share_table([{"placement": "cpu", "reward_s": 20.0}, {"placement": "gpu", "reward_s": 1.0}],
                                  [60.0, 20.0])
    assert lines[0].split()[:3] == ["placement", "reward", "s/step"]
    cpu, gpu = lines[1].split(), lines[2].split()
    assert cpu[1:] == ["20.00", "25.0%", "50.0%"]
    assert gpu[1:] == ["1.00", "1.6%", "4.8%"]


def test_smoke_run_writes_its_json(tmp_path):
    shared_data_dir = SHARED_DATA
    if not (shared_data_dir / "bo_zh_classical.jsonl").exists():
        pytest.skip(f"{shared_data_dir}/bo_zh_classical.jsonl is absent (../shared/data beside the project)")
    rc = gpu_check.main(["--smoke", "--data-dir", str(shared_data_dir), "--out", str(tmp_path / "out"),
                         "--work", str(tmp_path / "work"), "--skip", "dtypes", "lora", "placement",
                         "engines"])
    assert rc == 0
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["device"] == "cpu (smoke)"
    assert result["responses"] == 8 * 8
    assert not (tmp_path / "out" / "gpu_check.json.tmp").exists()
