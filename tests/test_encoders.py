"""Encoder backends: the real MiniLM and the caching/deduplicating wrapper."""

import numpy as np
import pytest

from semantic_reward.config import EncoderConfig
from semantic_reward.encoders import CachedEncoder, EncoderError, SentenceTransformerEncoder, clean_text
from tests.helpers import HashEncoder


def test_cache_and_dedup_counts():
    backend = HashEncoder()
    enc = CachedEncoder(backend, cache_size=10)
    out = enc.encode(["ref", "a", "a", "ref"], cacheable=[True, False, False, True])
    assert backend.calls == 1 and backend.texts_seen == 2  # "ref" and "a" once each
    np.testing.assert_allclose(out[0], backend.vector("ref"))
    np.testing.assert_allclose(out[1], out[2])
    enc.encode(["ref", "b"], cacheable=[True, False])
    assert backend.texts_seen == 3  # "ref" came from the cache
    assert enc.stats.cache_hits == 1 and enc.stats.duplicate_hits == 2
    enc.encode(["a"])
    assert backend.texts_seen == 4  # non-cacheable outputs are not kept


def test_cache_is_bounded_lru():
    backend = HashEncoder()
    enc = CachedEncoder(backend, cache_size=2)
    for text in ["r1", "r2", "r3"]:
        enc.encode([text], cacheable=[True])
    enc.encode(["r1"], cacheable=[True])
    assert backend.texts_seen == 4  # r1 was evicted by r3


def test_backend_failure_becomes_encoder_error():
    enc = CachedEncoder(HashEncoder(fail_on="boom"))
    with pytest.raises(EncoderError, match="encoder failed on a batch of 1 texts"):
        enc.encode(["boom"])


def test_clean_text_removes_lone_surrogates_and_bounds_size():
    assert clean_text("a\ud800b", 10) == "a?b"
    assert len(clean_text("x" * 100, 10)) == 10
    assert clean_text(None, 10) == ""


def test_minilm_encoder_normalised_and_matches_sentence_transformers(minilm_path):
    from sentence_transformers import SentenceTransformer

    enc = SentenceTransformerEncoder(EncoderConfig(model=minilm_path, device="cpu", max_length=128))
    texts = ["the cat sits on the mat", "a dog runs", "བཀྲ་ཤིས་བདེ་ལེགས།", "\ud800 lone surrogate"]
    out = enc.encode(texts)
    assert out.shape == (4, enc.dimension) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    direct = SentenceTransformer(minilm_path, device="cpu")
    direct.max_seq_length = 128
    ref = direct.encode(texts[:3], normalize_embeddings=True)
    np.testing.assert_allclose(out[:3], ref, atol=1e-5)


def test_unloadable_encoder_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EncoderError, match="cannot load encoder"):
        SentenceTransformerEncoder(EncoderConfig(model=str(tmp_path), device="cpu"))
