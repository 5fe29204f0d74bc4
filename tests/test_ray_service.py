"""The shared named Ray actor: one encoder for all workers, recreated when it dies (issue 13, items 7, 8, 10)."""

import asyncio
import dataclasses
import logging
import re
import time

import numpy as np
import pytest

from semantic_reward.config import EncoderConfig, SemanticRewardConfig, ServiceConfig
from semantic_reward.encoders import EncoderError
from semantic_reward.service import EmbeddingActor, LocalEmbeddingService, RayEmbeddingService, create_embedding_service

pytestmark = pytest.mark.ray


def _configs(minilm_path, name, **service):
    return EncoderConfig(model=minilm_path, device="cpu"), ServiceConfig(
        backend="ray", actor_name=name, max_wait_ms=20, **service
    )


def test_clients_share_one_actor_and_merge_requests(ray_local, minilm_path):
    enc, svc = _configs(minilm_path, "test_shared_actor")
    clients = [RayEmbeddingService(enc, svc) for _ in range(4)]
    texts = [[f"sentence number {i}", "the shared reference"] for i in range(64)]

    async def run():
        return await asyncio.gather(
            *(clients[i % 4].embed(t, [False, True]) for i, t in enumerate(texts))
        )

    results = asyncio.run(run())
    handles = {c.handle()._actor_id for c in clients}
    assert len(handles) == 1
    direct = RayEmbeddingService(enc, svc).embed_sync(texts[5], [False, True])
    np.testing.assert_allclose(results[5], direct, atol=1e-6)
    stats = clients[0].stats()
    assert stats["requests"] == 65 and stats["encode_calls"] < 65 / 4
    ray_local.kill(clients[0].handle())


def test_dead_actor_is_recreated(ray_local, minilm_path):
    enc, svc = _configs(minilm_path, "test_recreated_actor")
    client = RayEmbeddingService(enc, svc)
    before = client.embed_sync(["hello"])
    ray_local.kill(client.handle(), no_restart=True)
    after = asyncio.run(client.embed(["hello"]))
    np.testing.assert_allclose(before, after, atol=1e-6)
    assert client.restarts == 1
    ray_local.kill(client.handle())


def _assert_one_line(message, *needles, limit=600):
    assert message and "\n" not in message and "\x1b[" not in message and len(message) <= limit, message
    for needle in needles:
        assert needle in message, (needle, message)


# -- item 7: an encoder that cannot load fails when the service is built, once, in one line -------------
def test_unloadable_encoder_fails_at_build_without_retries(ray_local, tmp_path):
    (tmp_path / "config.json").write_text("{broken")
    config = SemanticRewardConfig.from_mapping({
        "encoder": {"model": str(tmp_path), "device": "cpu"},
        "service": {"backend": "ray", "actor_name": "test_broken_actor", "max_restarts": 3},
    })
    began = time.monotonic()
    with pytest.raises(EncoderError) as info:
        create_embedding_service(config)
    assert time.monotonic() - began < 120
    _assert_one_line(str(info.value), "'encoder.model'", "cannot load encoder")
    client = RayEmbeddingService(config.encoder, config.service)
    with pytest.raises(EncoderError) as again:  # a request to the broken actor: same line, no recreation
        asyncio.run(client.embed(["hello"]))
    _assert_one_line(str(again.value), "cannot load encoder")
    assert client.restarts == 0
    ray_local.kill(client.handle())


def test_cuda_without_gpus_names_the_setting_and_the_cause(ray_local, minilm_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this check is about a Ray actor without a GPU")
    config = SemanticRewardConfig.from_mapping({
        "encoder": {"model": minilm_path, "device": "cuda"},
        "service": {"backend": "ray", "actor_name": "test_cuda_actor"},
    })
    with pytest.raises(EncoderError) as info:
        create_embedding_service(config)
    _assert_one_line(str(info.value), "'encoder.device'", "no CUDA GPU", "service.num_gpus is 0")
    ray_local.kill(RayEmbeddingService(config.encoder, config.service).handle())


# -- item 8: the actor's identity is its encoder settings ------------------------------------------------
def test_same_actor_name_other_settings_get_their_own_encoder(ray_local, minilm_path):
    texts = ["a sentence that is certainly longer than four tokens of the tokenizer", "short"]
    clients, local = [], []
    for max_length in (128, 4):
        enc = EncoderConfig(model=minilm_path, device="cpu", max_length=max_length)
        svc = ServiceConfig(backend="ray", actor_name="test_same_name", max_wait_ms=5)
        clients.append(RayEmbeddingService(enc, svc))
        clients[-1].start()
        service = LocalEmbeddingService(enc, svc)
        local.append(service.embed_sync(texts))
        service.close()
    vectors = [c.embed_sync(texts) for c in clients]
    assert clients[0].actor_name != clients[1].actor_name
    np.testing.assert_allclose(vectors[0], local[0], atol=1e-5)
    np.testing.assert_allclose(vectors[1], local[1], atol=1e-5)  # the max_length 4 client: max_length 4 vectors
    assert float(vectors[0][0] @ vectors[1][0]) < 0.99  # truncation changed the long sentence
    same = RayEmbeddingService(dataclasses.replace(clients[1].encoder_config), clients[1].service_config)
    assert same.actor_name == clients[1].actor_name  # equal settings still share one actor
    for client in clients:
        ray_local.kill(client.handle())


def test_an_actor_with_foreign_settings_under_the_name_is_refused(ray_local, minilm_path, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    enc, svc = _configs(minilm_path, "test_foreign")
    client = RayEmbeddingService(enc, svc)
    other = dataclasses.asdict(dataclasses.replace(enc, model=str(tmp_path)))
    impostor = ray_local.remote(EmbeddingActor).options(name=client.actor_name).remote(other, dataclasses.asdict(svc))
    ray_local.get(impostor.ping.remote())
    with pytest.raises(EncoderError, match="serves other encoder settings"):
        client.start()
    ray_local.kill(impostor)


# -- item 10: one death, one warning, one restart -------------------------------------------------------
def test_one_death_one_warning_however_many_requests_in_flight(ray_local, minilm_path, caplog):
    enc, svc = _configs(minilm_path, "test_one_warning")
    client = RayEmbeddingService(enc, svc)
    client.start()
    texts = [[f"request number {i} still in flight when its actor is killed"] for i in range(600)]
    expected = client.embed_sync([t[0] for t in texts])

    async def run(kills):
        tasks = [asyncio.create_task(client.embed(t)) for t in texts]
        for _ in range(kills):
            await asyncio.sleep(0.05)
            ray_local.kill(client.handle(), no_restart=True)
            await asyncio.sleep(0.3)
        return await asyncio.gather(*tasks, return_exceptions=True)

    counts = []
    for kills in (1, 2):
        caplog.clear()
        restarts_before = client.restarts
        with caplog.at_level(logging.WARNING, logger="semantic_reward.service"):
            results = asyncio.run(run(kills))
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors[:3]
        for row, vec in zip(expected, results, strict=True):
            np.testing.assert_allclose(vec[0], row, atol=1e-5)
        warnings = [r for r in caplog.records if "died" in r.getMessage()]
        counts.append((kills, len(warnings), client.restarts - restarts_before))
        assert all(re.search(r"actor '.*' died", r.getMessage()) for r in warnings)
    assert all(w <= k and r == w for k, w, r in counts), counts
    assert counts[0][1] == 1, counts
    ray_local.kill(client.handle())
