"""The hf rollout's weight updates, fed exactly what verl's FSDP engine sends (no Ray, no trainer).

With LoRA verl sends a one-time base sync (target modules named ``...base_layer.weight``) and then
the adapter alone each step; the rollout must end up computing what the actor computes, and an
update that does not land completely must stop the run.
"""

from __future__ import annotations

import asyncio

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")
peft = pytest.importorskip("peft")

from semantic_reward.config import ConfigError, build_dataclass  # noqa: E402
from semantic_reward.verl_cpu.hf_rollout import (  # noqa: E402
    HFEngineSettings,
    HFRolloutServer,
    WeightUpdateError,
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from tiny_models import build_tiny_policy

    texts = ["ཀ་ཁ་ག་ང་ཅ་ཆ་ཇ་ཉ།", "你好世界，今天天气很好。", "translate into Tibetan"] * 20
    out = tmp_path_factory.mktemp("tiny_policy")
    return str(build_tiny_policy(texts, out, vocab_size=300, hidden_size=32, num_layers=2, num_heads=2))


def _actor(path: str, seed: int = 1):
    """The trainer's model: LoRA rank 8 on all linear layers, base and adapter moved away from the saved ones."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # as if the base differed from the rollout's initial weights
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    _train_adapter(model, seed)
    return model.eval()


def _train_adapter(model, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


def _base_sync(model) -> dict[str, torch.Tensor]:
    from verl.utils.fsdp_utils import collect_lora_params, replace_lora_wrapper

    config = model.peft_config["default"]
    params = collect_lora_params(module=model, layered_summon=False, base_sync_done=False)
    return {replace_lora_wrapper(k, config): v for k, v in params.items()}


def _adapter(model) -> tuple[dict[str, torch.Tensor], dict]:
    from verl.utils.fsdp_utils import collect_lora_params

    params = collect_lora_params(module=model, layered_summon=False, base_sync_done=True)
    return {k: v.detach().clone() for k, v in params.items()}, model.peft_config["default"].to_dict()


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_lora_updates_make_the_rollout_compute_what_the_actor_computes(tiny_model):
    actor = _actor(tiny_model)
    server = HFRolloutServer(tiny_model, prompt_length=32, response_length=8)
    ids = torch.tensor([[5, 17, 42, 99, 7, 3, 120]])
    assert (_logits(server.model, ids) - _logits(actor, ids)).abs().max() > 1e-2  # they differ before the sync

    base = _base_sync(actor)
    assert any(".base_layer." in k for k in base)  # the names verl really sends for the base sync
    adapter, config = _adapter(actor)
    assert adapter and all("lora_" in k for k in adapter)
    asyncio.run(server.update_weights(base, config, False))
    asyncio.run(server.update_weights(adapter, config, True))
    torch.testing.assert_close(_logits(server.model, ids), _logits(actor, ids), atol=1e-5, rtol=1e-5)

    _train_adapter(actor, seed=7)  # the next step: only the adapter moves, only the adapter is sent
    adapter, config = _adapter(actor)
    asyncio.run(server.update_weights(adapter, config, True))
    torch.testing.assert_close(_logits(server.model, ids), _logits(actor, ids), atol=1e-5, rtol=1e-5)
    assert [u["kind"] for u in server.updates] == ["lora_base", "lora_adapter", "lora_adapter"]


def test_full_update_loads_every_weight(tiny_model):
    from transformers import AutoModelForCausalLM

    server = HFRolloutServer(tiny_model, prompt_length=32, response_length=8)
    trained = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        for p in trained.parameters():
            p.mul_(1.5)
    record = asyncio.run(server.update_weights(trained.state_dict()))
    assert record["kind"] == "full" and record["tensors"] >= len(list(trained.parameters()))
    ids = torch.tensor([[5, 17, 42]])
    torch.testing.assert_close(_logits(server.model, ids), _logits(trained, ids))


def test_updates_that_do_not_land_completely_raise(tiny_model):
    actor = _actor(tiny_model)
    server = HFRolloutServer(tiny_model, prompt_length=32, response_length=8)
    adapter, config = _adapter(actor)
    full = dict(server.model.state_dict())

    with pytest.raises(WeightUpdateError, match="unknown to it"):  # the old silent case: adapter as full weights
        asyncio.run(server.update_weights(adapter))
    with pytest.raises(WeightUpdateError, match="not sent"):  # part of the model only
        asyncio.run(server.update_weights(dict(list(full.items())[: len(full) // 2])))
    with pytest.raises(WeightUpdateError):  # nothing at all
        asyncio.run(server.update_weights({}))
    renamed = {k.replace("lora_A", "lora_Q"): v for k, v in adapter.items()}
    with pytest.raises(WeightUpdateError, match="LoRA update"):
        asyncio.run(server.update_weights(renamed, config, True))
    assert server.updates == []


def test_engine_settings_come_from_the_rollout_config():
    assert build_dataclass(HFEngineSettings, {"num_threads": 3}).num_threads == 3
    with pytest.raises(ConfigError, match="num_threads"):
        build_dataclass(HFEngineSettings, {"num_threads": 0})
    with pytest.raises(ConfigError, match="did you mean 'engine_kwargs.hf.num_threads'"):
        build_dataclass(HFEngineSettings, {"num_thread": 2}, prefix="engine_kwargs.hf.", what="rollout setting")


def test_concurrent_requests_are_batched_and_match_one_at_a_time(tiny_model):
    """Concurrent requests go through one left-padded generate; each row equals its own single generation."""
    server = HFRolloutServer(tiny_model, prompt_length=32, response_length=8)
    batches: list[int] = []
    single = server._generate_batch

    def counting(prompts, params, seeds=None):
        batches.append(len(prompts))
        return single(prompts, params, seeds)

    server._generate_batch = counting
    prompts = [[5, 17, 42, 99, 7], [3, 120, 8], [11, 12, 13, 14, 15, 16, 17], [9]]
    greedy = {"temperature": 0, "max_tokens": 6}

    async def together():
        return await asyncio.gather(*[server.generate(p, dict(greedy)) for p in prompts])

    batched = asyncio.run(together())
    assert batches == [4]  # one generate call for all four
    for prompt, out in zip(prompts, batched):
        alone = single([prompt], dict(greedy))[0]
        assert out.token_ids == alone.token_ids and 1 <= len(out.token_ids) <= 6
        torch.testing.assert_close(torch.tensor(out.log_probs), torch.tensor(alone.log_probs), atol=1e-4, rtol=1e-4)
        # the log-probs are the model's own for the tokens it produced
        with torch.no_grad():
            logits = server.model(input_ids=torch.tensor([prompt + out.token_ids])).logits[0].float()
        expected = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
        expected = expected[torch.arange(len(out.token_ids)), torch.tensor(out.token_ids)]
        torch.testing.assert_close(torch.tensor(out.log_probs), expected, atol=1e-4, rtol=1e-4)

    limited = asyncio.run(server.generate(prompts[0], {"temperature": 1.0, "max_tokens": 2}))
    assert 1 <= len(limited.token_ids) <= 2 and len(limited.log_probs) == len(limited.token_ids)


def _sample(server: HFRolloutServer, prompts: list[list[int]], temperature: float = 1.0) -> list:
    return server._generate_batch(prompts, {"temperature": temperature, "top_p": 1.0, "max_tokens": 8})


def _tokens(outputs) -> list[list[int]]:
    return [o.token_ids for o in outputs]


def test_sampling_is_seeded_by_rollout_seed_step_and_request(tiny_model):
    """Same seed and step: the same rollouts; another seed or step: others; copies of a prompt differ."""
    prompts = [[5, 17, 42, 99], [7, 3, 120, 8]] * 4

    def server(seed: int) -> HFRolloutServer:
        return HFRolloutServer(tiny_model, prompt_length=32, response_length=8, seed=seed)

    first = _tokens(_sample(server(3), prompts))
    assert _tokens(_sample(server(3), prompts)) == first
    assert len({tuple(t) for t in first}) > 2  # really sampled: the copies of a prompt differ
    assert _tokens(_sample(server(4), prompts)) != first
    later = server(3)
    asyncio.run(later.set_global_steps(1))
    assert _tokens(_sample(later, prompts)) != first


def test_sampled_log_probs_are_the_processed_distributions(tiny_model):
    """What the rollout returns per token is log-softmax(logits / temperature) at the drawn token (top-p 1)."""
    server = HFRolloutServer(tiny_model, prompt_length=32, response_length=8, seed=5)
    prompt = [5, 17, 42, 99]
    for out in _sample(server, [prompt] * 3, temperature=0.7):
        with torch.no_grad():
            logits = server.model(input_ids=torch.tensor([prompt + out.token_ids])).logits[0].float()
        expected = torch.log_softmax(logits[len(prompt) - 1:-1] / 0.7, dim=-1)
        expected = expected[torch.arange(len(out.token_ids)), torch.tensor(out.token_ids)]
        torch.testing.assert_close(torch.tensor(out.log_probs), expected, atol=1e-4, rtol=1e-4)


def test_batching_and_arrival_order_do_not_change_the_rollouts(tiny_model):
    """verl's agent loop sends a step's requests concurrently, in an order and in rounds that vary."""
    prompts = [[5, 17, 42, 99], [7, 3, 120, 8], [9, 9, 4]] * 3
    params = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 8}

    def serve(order: list[int], max_batch: int) -> dict[tuple, list[tuple]]:
        server = HFRolloutServer(tiny_model, prompt_length=32, response_length=8, seed=3, max_batch=max_batch)

        async def all_requests():
            return await asyncio.gather(*(server.generate(prompts[i], params) for i in order))

        by_prompt: dict[tuple, list[tuple]] = {}
        for i, out in zip(order, asyncio.run(all_requests())):
            by_prompt.setdefault(tuple(prompts[i]), []).append(tuple(out.token_ids))
        return {k: sorted(v) for k, v in by_prompt.items()}

    forward = serve(list(range(len(prompts))), max_batch=64)
    assert serve(list(reversed(range(len(prompts)))), max_batch=64) == forward
    assert serve([4, 0, 8, 2, 6, 1, 7, 3, 5], max_batch=2) == forward
