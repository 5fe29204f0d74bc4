"""The import contract in pyproject.toml holds, and would catch an upward import.

``make test`` runs ``lint-imports`` on the tree; these tests show that the
contract is live (it fails on a deliberately wrong import in a copy of the tree).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e '.[test]')")


def _copy_tree(dest: Path) -> Path:
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    for package in ("semantic_reward", "data_tools"):
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--config", str(tree / "pyproject.toml"), "--no-cache"],
                          cwd=tree, env=env, capture_output=True, text=True)


def test_contract_holds_on_the_tree(tmp_path: Path) -> None:
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "bad_import", "expected"),
    [
        # the reward core must not reach up into evaluation
        ("semantic_reward/reward_math.py", "import semantic_reward.evaluation.metrics",
         "semantic_reward.reward_math is not allowed to import semantic_reward.evaluation"),
        # data tools sit below the verl glue
        ("data_tools/records.py", "import semantic_reward.verl_adapter.compute_score",
         "data_tools is not allowed to import semantic_reward.verl_adapter"),
        # the embedding service runs without verl
        ("semantic_reward/service.py", "import verl",
         "semantic_reward.service is not allowed to import verl"),
    ],
)
def test_contract_fails_on_a_wrong_import(tmp_path: Path, module: str, bad_import: str, expected: str) -> None:
    tree = _copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{bad_import}  # deliberately wrong\n", encoding="utf-8")
    result = _lint(tree)
    assert result.returncode != 0
    assert expected in " ".join(result.stdout.split())
