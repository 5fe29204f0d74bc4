"""The embedding service: request merging, sharing, and failure handling."""

import asyncio

import numpy as np
import pytest

from semantic_reward.config import EncoderConfig, ServiceConfig
from semantic_reward.encoders import EncoderError
from semantic_reward.service import LocalEmbeddingService
from tests.helpers import HashEncoder


def test_concurrent_requests_are_merged_and_exact():
    backend = HashEncoder()
    service = LocalEmbeddingService(service=ServiceConfig(max_batch_size=256, max_wait_ms=20), backend=backend)
    requests = [[f"output {i}", f"reference {i % 16}"] for i in range(400)]

    async def run():
        return await asyncio.gather(*(service.embed(texts, [False, True]) for texts in requests))

    results = asyncio.run(run())
    for texts, vectors in zip(requests, results, strict=True):
        np.testing.assert_allclose(vectors, np.stack([backend.vector(t) for t in texts]))
    stats = service.stats()
    assert stats["requests"] == 400
    assert backend.calls <= 400 / 20  # far fewer encode calls than requests
    assert backend.texts_seen == 400 + 16  # references encoded once
    service.close()


def test_concurrent_requests_match_direct_minilm_encoding(minilm_path, news_pairs):
    from sentence_transformers import SentenceTransformer

    config = EncoderConfig(model=minilm_path, device="cpu", max_length=128)
    service = LocalEmbeddingService(config, ServiceConfig(max_batch_size=128, max_wait_ms=20))
    pairs = [(row["zh"], row["bo"]) for row in news_pairs[:48]]

    async def run():
        return await asyncio.gather(*(service.embed([z, b], [False, True]) for z, b in pairs))

    results = asyncio.run(run())
    direct = SentenceTransformer(minilm_path, device="cpu")
    direct.max_seq_length = 128
    for (zh, bo), vectors in zip(pairs, results, strict=True):
        expected = direct.encode([zh, bo], normalize_embeddings=True)
        np.testing.assert_allclose(vectors, expected, atol=2e-5)
    stats = service.stats()
    assert stats["requests"] == 48 and stats["encode_calls"] < 48 / 4
    service.close()


def test_encoder_failure_reaches_every_waiter_and_service_recovers():
    service = LocalEmbeddingService(service=ServiceConfig(max_wait_ms=50), backend=HashEncoder(fail_on="boom"))

    async def run():
        return await asyncio.gather(
            service.embed(["fine"]), service.embed(["boom"]), return_exceptions=True
        )

    results = asyncio.run(run())
    assert any(isinstance(r, EncoderError) for r in results)
    assert service.embed_sync(["fine again"]).shape == (1, 32)  # the batcher thread survived
    service.close()


def test_sync_and_async_give_the_same_vectors():
    backend = HashEncoder()
    service = LocalEmbeddingService(backend=backend)
    a = service.embed_sync(["x", "y"])
    b = asyncio.run(service.embed(["x", "y"]))
    np.testing.assert_array_equal(a, b)
    assert service.embed_sync([]).shape[0] == 0
    service.close()
