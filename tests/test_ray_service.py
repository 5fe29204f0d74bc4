"""The shared named Ray actor: one encoder for all workers, recreated when it dies."""

import asyncio

import numpy as np
import pytest

from semantic_reward.config import EncoderConfig, ServiceConfig
from semantic_reward.encoders import EncoderError
from semantic_reward.service import RayEmbeddingService

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
    assert client.restarts >= 1
    ray_local.kill(client.handle())


def test_unloadable_encoder_stops_with_clear_error(ray_local, tmp_path):
    (tmp_path / "config.json").write_text("{broken")
    client = RayEmbeddingService(
        EncoderConfig(model=str(tmp_path), device="cpu"),
        ServiceConfig(backend="ray", actor_name="test_broken_actor", max_restarts=1),
    )
    with pytest.raises(EncoderError, match="cannot load encoder"):
        asyncio.run(client.embed(["hello"]))
    assert client.restarts == 2
