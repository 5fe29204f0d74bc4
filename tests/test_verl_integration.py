"""The reward inside verl's own machinery: plugin entry point, RewardLoopManager, compute_score."""

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from semantic_reward.config import SemanticRewardConfig
from semantic_reward.reward_math import REWARD_KEYS
from semantic_reward.scorer import SemanticScorer
from semantic_reward.service import LocalEmbeddingService

ROOT = Path(__file__).resolve().parents[1]


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- reward-snippet:start -->\s*```yaml\n(.*?)```", text, re.S)
    assert block, "README lost its reward snippet"
    return block.group(1)


def compose_user_recipe(tmp_path, overrides):
    from hydra import compose, initialize_config_dir

    (tmp_path / "my_recipe.yaml").write_text(readme_snippet(), encoding="utf-8")
    with initialize_config_dir(config_dir=str(tmp_path), version_base=None):
        return compose(config_name="my_recipe", overrides=overrides)


def test_entry_point_registers_semantic_in_a_fresh_interpreter():
    code = (
        "import verl\n"
        "from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls\n"
        "print(get_reward_manager_cls('semantic').__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().endswith("semantic_reward.verl_adapter.manager")


def test_readme_snippet_composes_and_validates(tmp_path):
    cfg = compose_user_recipe(tmp_path, [])
    from semantic_reward.verl_adapter.manager import settings_from_verl_config

    settings = settings_from_verl_config(cfg)
    assert settings.language == "tibetan" and settings.semantic_weight == 1.5
    assert cfg.reward.reward_manager.name == "semantic"


def _batch(tokenizer, prompts, responses, rows):
    """A rollout-shaped DataProto: left-padded prompts, right-padded responses."""
    from verl import DataProto

    pad = tokenizer.pad_token_id
    p_ids = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True) for p in prompts]
    p_ids = [list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids) for ids in p_ids]
    r_ids = [tokenizer.encode(r, add_special_tokens=False) + [tokenizer.eos_token_id] for r in responses]
    plen, rlen = max(map(len, p_ids)), max(map(len, r_ids)) + 3
    prompt_t = torch.full((len(prompts), plen), pad, dtype=torch.long)
    resp_t = torch.full((len(prompts), rlen), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), plen + rlen), dtype=torch.long)
    for i, (p, r) in enumerate(zip(p_ids, r_ids, strict=True)):
        prompt_t[i, plen - len(p) :] = torch.tensor(p)
        resp_t[i, : len(r)] = torch.tensor(r)
        mask[i, plen - len(p) : plen + len(r)] = 1
    non_tensors = {
        "data_source": np.array(["bo_zh_news"] * len(rows), dtype=object),
        "reward_model": np.array([{"style": "model", "ground_truth": r["bo"]} for r in rows], dtype=object),
        "extra_info": np.array([{"source": r["zh"], "target_language": "bo"} for r in rows], dtype=object),
    }
    tensors = {"prompts": prompt_t, "responses": resp_t, "attention_mask": mask,
               "input_ids": torch.cat([prompt_t, resp_t], dim=1)}
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors), [len(r) for r in r_ids]


@pytest.mark.ray
@pytest.mark.parametrize("source", ["register", "importlib"])
def test_reward_loop_manager_scores_on_last_valid_token(
    ray_local, tmp_path, tiny_tokenizer_dir, minilm_path, news_pairs, source
):
    from transformers import AutoTokenizer
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    overrides = [
        f"actor_rollout_ref.model.path={tiny_tokenizer_dir}",
        "reward.num_workers=2",
        f"reward.reward_kwargs.encoder.model={minilm_path}",
        "+reward.reward_kwargs.encoder.device=cpu",
        f"+reward.reward_kwargs.service.actor_name=test_loop_{source}",
    ]
    if source == "importlib":
        overrides += [
            "reward.reward_manager.source=importlib",
            "reward.reward_manager.name=SemanticRewardManager",
            "reward.reward_manager.module.path=pkg://semantic_reward.verl_adapter.manager",
        ]
    cfg = compose_user_recipe(tmp_path, overrides)
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    rows = news_pairs[:6]
    responses = [rows[0]["bo"], rows[1]["zh"], rows[3]["bo"], rows[2]["bo"][:20] + rows[2]["zh"], "", rows[5]["bo"]]
    data, resp_lengths = _batch(tokenizer, [r["zh"] for r in rows], responses, rows)

    manager = RewardLoopManager(cfg)
    out = manager.compute_rm_score(data)

    scores = out.batch["rm_scores"]
    assert scores.shape == data.batch["responses"].shape
    settings = SemanticRewardConfig.from_mapping(
        {**dict(cfg.reward.reward_kwargs), "service": {"backend": "local"}}
    )
    local = SemanticScorer(settings, LocalEmbeddingService(settings.encoder, settings.service))
    decoded = [tokenizer.decode(data.batch["responses"][i][:n], skip_special_tokens=True)
               for i, n in enumerate(resp_lengths)]
    expected = local.score_batch(decoded, [r["bo"] for r in rows], [r["zh"] for r in rows], ["bo"] * 6)
    for i, n in enumerate(resp_lengths):
        row = scores[i]
        assert row[n - 1].item() == pytest.approx(expected[i]["score"], abs=1e-4)
        assert torch.count_nonzero(torch.cat([row[: n - 1], row[n:]])) == 0  # nothing anywhere else
    assert set(REWARD_KEYS) <= set(out.meta_info["reward_extra_keys"])
    np.testing.assert_allclose(
        out.non_tensor_batch["language_reward"].astype(float), [e["language_reward"] for e in expected]
    )
    assert list(out.non_tensor_batch["language_reward"][:2]) == [1.0, 0.0]  # Tibetan passes, Chinese fails
    assert out.non_tensor_batch["is_empty"][4] == 1.0
    from ray.util import list_named_actors

    names = [a["name"] for a in list_named_actors(all_namespaces=True) if a["name"].startswith(f"test_loop_{source}_")]
    assert len(names) == 1  # two reward workers, one shared actor (its name carries the settings' hash)
    ray_local.kill(ray_local.get_actor(names[0]))


def test_compute_score_through_verls_naive_manager(tmp_path, tiny_tokenizer_dir, minilm_path, news_pairs):
    from transformers import AutoTokenizer
    from verl.trainer.ppo.reward import load_reward_manager

    cfg = compose_user_recipe(
        tmp_path,
        [
            f"actor_rollout_ref.model.path={tiny_tokenizer_dir}",
            "reward.reward_manager.name=naive",
            "reward.custom_reward_function.path=pkg://semantic_reward.verl_adapter.compute_score",
            f"+reward.custom_reward_function.reward_kwargs.encoder.model={minilm_path}",
            "+reward.custom_reward_function.reward_kwargs.service.backend=local",
        ],
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    manager = load_reward_manager(cfg, tokenizer)
    rows = news_pairs[:3]
    data, _ = _batch(tokenizer, [r["zh"] for r in rows], [r["bo"] for r in rows[:2]] + [rows[2]["zh"]], rows)

    async def run():
        return await asyncio.gather(*(manager.run_single(data[i : i + 1]) for i in range(3)))

    results = manager.loop.run_until_complete(run())  # verl binds the manager to its loop
    assert [set(REWARD_KEYS) <= set(r["reward_extra_info"]) for r in results] == [True] * 3
    assert [r["reward_extra_info"]["language_reward"] for r in results] == [1.0, 1.0, 0.0]
    assert results[0]["reward_score"] == pytest.approx(1.5 * 1.0 + 1.0)  # exact copy of the reference


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("+reward.reward_kwargs.encoder.device=cuda:abc", "'encoder.device'"),
        ("reward.reward_kwargs.encoder.model=outputs/no_such_encoder", "'encoder.model'"),
        ("+reward.reward_kwargs.service.max_wait_ms=1e13", "'service.max_wait_ms'"),
        ("+reward.reward_kwargs.encoder.modle=x", "'encoder.modle' is unknown"),
    ],
)
def test_manager_fails_when_built_in_one_line(tmp_path, tiny_tokenizer_dir, minilm_path, monkeypatch, override,
                                              needle):
    """Issue 13 item 7: the reward manager (what verl's reward worker builds) refuses bad settings at once."""
    import time

    from transformers import AutoTokenizer

    from semantic_reward.config import ConfigError
    from semantic_reward.encoders import EncoderError
    from semantic_reward.verl_adapter.manager import SemanticRewardManager

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    overrides = [f"actor_rollout_ref.model.path={tiny_tokenizer_dir}",
                 f"reward.reward_kwargs.encoder.model={minilm_path}",
                 "reward.reward_kwargs.service.backend=local", override]
    cfg = compose_user_recipe(tmp_path, overrides)
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    began = time.monotonic()
    with pytest.raises((ConfigError, EncoderError)) as info:
        SemanticRewardManager(cfg, tokenizer)
    assert time.monotonic() - began < 10
    message = str(info.value)
    assert needle in message and "\n" not in message and "\x1b[" not in message and len(message) < 400, message
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"encoder": {"device": "cuda:abc"}}, "'encoder.device'"),
        ({"encoder": {"model": "outputs/no_such_encoder"}}, "'encoder.model'"),
        ({"encoder": {"model": "./no_such_encoder"}}, "'encoder.model'"),
        ({"service": {"request_timeout_s": float("inf")}}, "'service.request_timeout_s'"),
        ({"tua": 0.5}, "did you mean 'tau'"),
        ({"similarity": {"chrf": 1}, "mode": "source"}, "'similarity'"),
        ({"similarity": {"embedding": 0}}, "'similarity.embedding'"),
    ],
)
def test_validate_reward_kwargs_names_the_setting(tmp_path, monkeypatch, kwargs, needle):
    from semantic_reward.config import ConfigError
    from semantic_reward.verl_adapter.compute_score import validate_reward_kwargs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as info:
        validate_reward_kwargs(kwargs)
    message = str(info.value)
    assert message.startswith("reward.custom_reward_function.reward_kwargs: ") and needle in message, message


def test_validate_reward_kwargs_accepts_the_documented_settings(tmp_path, minilm_path):
    from omegaconf import OmegaConf

    from semantic_reward.verl_adapter.compute_score import validate_reward_kwargs

    cfg = compose_user_recipe(tmp_path, [
        "reward.reward_manager.name=naive",
        "reward.custom_reward_function.path=pkg://semantic_reward.verl_adapter.compute_score",
        f"+reward.custom_reward_function.reward_kwargs.encoder.model={minilm_path}",
        "+reward.custom_reward_function.reward_kwargs.tau=0.4",
    ])
    settings = validate_reward_kwargs(cfg.reward.custom_reward_function.reward_kwargs)
    assert settings.tau == 0.4 and settings.encoder.model == minilm_path
    lexical = validate_reward_kwargs(OmegaConf.create({"similarity": {"embedding": 0, "chrf": 1}, "encoder": {"model": "org/not_downloaded"},
                                                       "reward_router_address": "ignored"}))
    assert lexical.similarity.active() == {"chrf": 1.0}  # the encoder is unused, so its folder is not required


def test_compute_score_fails_once_then_repeats_the_line_at_once(monkeypatch, tmp_path):
    import semantic_reward.encoders as encoders
    from semantic_reward.encoders import EncoderError
    from semantic_reward.verl_adapter import compute_score as module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checks = []
    original = encoders.check_model
    monkeypatch.setattr(encoders, "check_model", lambda model: checks.append(model) or original(model))
    kwargs = {"encoder": {"model": "outputs/missing_encoder", "device": "cpu"}, "service": {"backend": "local"}}

    async def run():
        return await asyncio.gather(
            *(module.compute_score("news", "output", "reference", {}, **kwargs) for _ in range(20)),
            return_exceptions=True,
        )

    results = asyncio.run(run())
    assert all(isinstance(r, EncoderError) and "'encoder.model'" in str(r) for r in results), results[:2]
    assert len(checks) == 1  # built once; the other 19 calls repeated the error without loading again
