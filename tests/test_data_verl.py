"""Data tools output inside verl: its datasets, its dataset factory, and our reward manager."""

import asyncio

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from data_tools.cli import main as cli_main
from data_tools.splits import SPLITS
from semantic_reward.reward_math import REWARD_KEYS
from tests.conftest import SHARED_DATA

NEWS = str(SHARED_DATA / "bo_zh_news.jsonl")


@pytest.fixture(scope="module")
def news_build(tmp_path_factory, news_pairs):
    out = tmp_path_factory.mktemp("news_build")
    assert cli_main(["mt", "--input", NEWS, "--direction", "zh-bo", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def rl_dataset(path, tokenizer, tmp_path):
    from verl.utils.dataset.rl_dataset import RLHFDataset

    cfg = OmegaConf.create({"max_prompt_length": 4096, "filter_overlong_prompts_workers": 1,
                            "cache_dir": str(tmp_path / "cache")})
    return RLHFDataset(str(path), tokenizer, cfg)


def test_rl_parquet_loads_in_rlhfdataset_and_renders(news_build, tokenizer, tmp_path):
    import pyarrow.parquet as pq

    ds = rl_dataset(news_build / "rl" / "rl.parquet", tokenizer, tmp_path)
    rows = pq.read_table(news_build / "rl" / "rl.parquet").to_pylist()
    assert len(ds) == len(rows) > 0
    item = ds[0]
    source = rows[0]["extra_info"]["source"]
    rendered = tokenizer.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=False)
    expected = f"<|im_start|>user\n请将下面的中文翻译成藏文，只输出译文。\n\n{source}<|im_end|>\n<|im_start|>assistant\n"
    assert rendered == expected
    assert item["reward_model"]["ground_truth"] == rows[0]["reward_model"]["ground_truth"]
    assert item["extra_info"]["target_language"] == "bo"


def test_sft_parquet_loads_in_multiturn_sft_dataset(news_build, tokenizer):
    import pyarrow.parquet as pq
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    path = news_build / "sft" / "cold_start.parquet"
    # as the SFT recipes set it: the Qwen3-like template adds an empty think block to the final turn only
    cfg = OmegaConf.create({"messages_key": "messages", "max_length": 1024, "truncation": "right",
                            "ignore_input_ids_mismatch": True})
    ds = MultiTurnSFTDataset(str(path), tokenizer, cfg)
    target = pq.read_table(path).to_pylist()[0]["messages"][-1]["content"]
    item = ds[0]
    trained = tokenizer.decode(item["input_ids"][item["loss_mask"].bool()])
    assert trained == target + "<|im_end|>\n"  # loss on the assistant turn only


def test_custom_cls_through_verls_factory_matches_parquet(news_build, tokenizer, tmp_path):
    from hydra import compose, initialize_config_module
    from verl.trainer.ppo.utils import create_rl_dataset

    with initialize_config_module("verl.trainer.config", version_base=None):
        cfg = compose("ppo_trainer", overrides=[
            f"data.train_files={NEWS}",
            "data.custom_cls.path=pkg://data_tools.verl_dataset",
            "data.custom_cls.name=RawCorpusDataset",
            "data.max_prompt_length=4096",
            f"+data.cache_dir={tmp_path / 'cache'}",
            "+data.raw_corpus.task=mt",
            "+data.raw_corpus.direction=zh-bo",
            "+data.raw_corpus.split=rl",
        ])
    raw = create_rl_dataset(cfg.data.train_files, cfg.data, tokenizer, None)
    assert type(raw).__name__ == "RawCorpusDataset"
    parquet = rl_dataset(news_build / "rl" / "rl.parquet", tokenizer, tmp_path)
    assert len(raw) == len(parquet)
    assert [raw[i]["raw_prompt"] for i in range(len(raw))] == [parquet[i]["raw_prompt"] for i in range(len(parquet))]
    assert raw[3]["extra_info"] == parquet[3]["extra_info"]


def _rollout_batch(items, tokenizer, responses):
    """What verl hands the reward manager: the dataset's columns plus generated tokens."""
    from verl import DataProto
    from verl.utils.dataset.rl_dataset import collate_fn

    batch = collate_fn(items)
    pad = tokenizer.pad_token_id
    r_ids = [tokenizer.encode(r, add_special_tokens=False) + [tokenizer.eos_token_id] for r in responses]
    rlen = max(map(len, r_ids))
    prompts = torch.full((len(items), 4), pad, dtype=torch.long)
    resp = torch.full((len(items), rlen), pad, dtype=torch.long)
    mask = torch.zeros((len(items), 4 + rlen), dtype=torch.long)
    mask[:, :4] = 1
    for i, ids in enumerate(r_ids):
        resp[i, : len(ids)] = torch.tensor(ids)
        mask[i, 4 : 4 + len(ids)] = 1
    non_tensors = {k: v for k, v in batch.items() if isinstance(v, np.ndarray)}
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": resp, "attention_mask": mask}, non_tensors=non_tensors
    )


@pytest.mark.parametrize("mode", ["reference", "source"])
def test_written_rows_are_scored_without_glue(news_build, tokenizer, tmp_path, minilm_path, mode):
    from semantic_reward.verl_adapter.manager import SemanticRewardManager

    ds = rl_dataset(news_build / "rl" / "test.parquet", tokenizer, tmp_path)
    items = [ds[i] for i in range(3)]
    reference = items[0]["reward_model"]["ground_truth"]
    source = items[1]["extra_info"]["source"]
    data = _rollout_batch(items, tokenizer, [reference, source, ""])
    cfg = OmegaConf.create({"reward": {"reward_kwargs": {
        "mode": mode, "encoder": {"model": minilm_path, "device": "cpu"}, "service": {"backend": "local"}}}})
    manager = SemanticRewardManager(cfg, tokenizer)
    results = manager.loop.run_until_complete(
        asyncio.gather(*(manager.run_single(data[i : i + 1]) for i in range(3)))
    )
    info = [r["reward_extra_info"] for r in results]
    # every component, then the decoy diagnostics (the written rows carry another row's reference)
    assert all(tuple(i) == (*REWARD_KEYS, "decoy_similarity", "decoy_semantic_reward") for i in info)
    assert [i["language_reward"] for i in info] == [1.0, 0.0, 0.0]  # Tibetan passes, Chinese source fails
    if mode == "reference":
        assert info[0]["similarity_reference"] == pytest.approx(1.0, abs=1e-5)
        assert results[0]["reward_score"] == pytest.approx(2.5, abs=1e-4)
    else:
        assert info[1]["similarity_source"] == pytest.approx(1.0, abs=1e-5)  # copying the source scores s = 1
        assert results[1]["reward_score"] == pytest.approx(1.5, abs=1e-4)  # ... but R_lang = 0
    assert info[2]["is_empty"] == 1.0


def test_few_shot_split_through_custom_cls(tokenizer, tmp_path, news_pairs):
    from data_tools.verl_dataset import RawCorpusDataset

    cfg = OmegaConf.create({"max_prompt_length": 4096, "filter_overlong_prompts_workers": 1,
                            "cache_dir": str(tmp_path / "cache"),
                            "raw_corpus": {"task": "mt", "direction": "bo-zh", "split": "few_shot_25",
                                           "splits": {"few_shot": [25]}}})
    ds = RawCorpusDataset(NEWS, tokenizer, cfg)
    assert len(ds) == 25
    assert ds[0]["extra_info"]["target_language"] == "zh"
    assert ds[0]["extra_info"]["split"] in SPLITS
