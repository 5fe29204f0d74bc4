"""Issue 13, items 7 and 9 without Ray: a reward that cannot start fails at once, in one line; nothing hangs."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import numpy as np
import pytest

from semantic_reward.batcher import BatcherDead, MicroBatcher
from semantic_reward.config import ConfigError, EncoderConfig, SemanticRewardConfig, ServiceConfig
from semantic_reward.encoders import EncoderError, check_device, check_model, short_error
from semantic_reward.service import LocalEmbeddingService
from tests.helpers import HashEncoder

ANSI = re.compile(r"\x1b\[")


def assert_one_line(message: str, *needles: str, limit: int = 400) -> None:
    assert message and "\n" not in message and not ANSI.search(message), message
    assert len(message) <= limit, len(message)
    for needle in needles:
        assert needle in message, (needle, message)


class SlowEncoder(HashEncoder):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def encode(self, texts):
        time.sleep(self.seconds)
        return super().encode(texts)


# -- item 7: an encoder that cannot load fails when the service is built -------------------------
@pytest.mark.parametrize(
    ("device", "needle"),
    [("cuda", "sees no CUDA GPU"), ("cuda:3", "sees no CUDA GPU"),
     ("mps", "'mps' is not available")],
)
def test_unusable_device_fails_at_build_in_one_line(minilm_path, device, needle):
    import torch

    if torch.cuda.is_available() and device.startswith("cuda"):
        pytest.skip("this check is about a node without a GPU")
    began = time.monotonic()
    with pytest.raises(EncoderError) as info:
        LocalEmbeddingService(EncoderConfig(model=minilm_path, device=device), ServiceConfig(backend="local"))
    assert time.monotonic() - began < 5
    assert_one_line(str(info.value), "'encoder.device'", needle)


def test_device_spelling_fails_when_the_settings_are_read():
    from semantic_reward.config import ConfigError

    for bad in ("cuda:abc", "cuda:-1", "cuda:"):
        with pytest.raises(ConfigError, match=f"'encoder.device': '{bad}' is not auto"):
            EncoderConfig(device=bad)


def test_device_spelling_is_checked_without_hardware():
    assert check_device("cuda:0", hardware=False) == "cuda:0"
    assert check_device("cpu") == "cpu"
    for bad in ("cuda:abc", "cuda:", "cuda:-1", "CUDA", ""):
        with pytest.raises(EncoderError, match="'encoder.device'"):
            check_device(bad, hardware=False)


def test_missing_relative_model_folder_fails_at_build(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for model in ("outputs/encoder", "encoder_dir"):  # both look like hub ids, so the config accepts them
        EncoderConfig(model=model)
        began = time.monotonic()
        with pytest.raises(EncoderError) as info:
            LocalEmbeddingService(EncoderConfig(model=model, device="cpu"))
        assert time.monotonic() - began < 5
        assert_one_line(str(info.value), "'encoder.model'", repr(model), str(tmp_path), "offline")


def test_existing_relative_model_folder_becomes_absolute(tmp_path, monkeypatch, minilm_path):
    import shutil

    shutil.copytree(minilm_path, tmp_path / "enc")
    monkeypatch.chdir(tmp_path)
    assert check_model("enc") == str(tmp_path / "enc")
    assert check_model("./enc") == str(tmp_path / "enc")


def test_broken_model_folder_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EncoderError) as info:
        LocalEmbeddingService(EncoderConfig(model=str(tmp_path), device="cpu"))
    assert_one_line(str(info.value), "'encoder.model'", "cannot load encoder", limit=600)


def test_short_error_strips_colours_and_ray_wrapping():
    class Wrapped(Exception):
        def __init__(self, cause):
            super().__init__("\x1b[36mray::EmbeddingActor.embed()\x1b[39m\nTraceback (most recent call last):\n" * 80)
            self.cause = cause

    message = short_error(Wrapped(ValueError("the real cause")))
    assert message == "ValueError: the real cause"
    long = short_error(RuntimeError("first line says it\n" + "detail " * 200))
    assert_one_line(long, "first line says it")


# -- item 9: timeouts and a dead batcher are errors, never hangs --------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [("request_timeout_s", float("inf")), ("request_timeout_s", float("nan")), ("request_timeout_s", 0),
     ("max_wait_ms", 1e13), ("max_wait_ms", 10_001), ("max_wait_ms", float("inf"))],
)
def test_service_limits_are_validated(field, value):
    with pytest.raises(ConfigError, match=f"service.{field}"):
        SemanticRewardConfig.from_mapping({"service": {field: value}})


def test_async_path_honours_request_timeout():
    service = LocalEmbeddingService(service=ServiceConfig(request_timeout_s=0.2, max_wait_ms=0),
                                    backend=SlowEncoder(1.5))
    began = time.monotonic()
    with pytest.raises(EncoderError) as info:
        asyncio.run(service.embed(["slow"]))
    assert time.monotonic() - began < 1.2
    assert_one_line(str(info.value), "service.request_timeout_s=0.2")
    time.sleep(1.5)  # the late answer lands on a cancelled future: the batcher must survive it
    service.request_timeout_s = 5
    np.testing.assert_allclose(service.embed_sync(["after"])[0], service.backend.vector("after"))
    service.close()


def test_sync_timeout_has_a_message():
    service = LocalEmbeddingService(service=ServiceConfig(request_timeout_s=0.2, max_wait_ms=0),
                                    backend=SlowEncoder(1.0))
    with pytest.raises(EncoderError) as info:
        service.embed_sync(["slow"])
    assert_one_line(str(info.value), "service.request_timeout_s=0.2")
    service.close()


def test_batcher_rejects_unsafe_wait():
    with pytest.raises(ValueError, match="max_wait_s"):
        MicroBatcher(HashEncoder().encode, 8, 1e10)


def _dead_batcher_waits(batcher: MicroBatcher, n: int) -> list[BaseException | None]:
    futures = [batcher.submit([f"text {i}"]) for i in range(n)]
    return [f.exception(timeout=5) for f in futures]


def test_dead_batcher_fails_every_request_fast():
    # the case: a wait of 1e13 s overflows the queue's timeout and kills the thread
    backend = HashEncoder()
    batcher = MicroBatcher(lambda texts, flags: backend.encode(texts), 64, 0.001)
    batcher.max_wait_s = 1e13
    began = time.monotonic()
    errors = _dead_batcher_waits(batcher, 20)
    assert time.monotonic() - began < 5
    assert all(isinstance(e, BatcherDead) for e in errors), errors
    assert "OverflowError" in str(errors[0])
    with pytest.raises(BatcherDead, match="batcher thread died"):
        batcher.submit(["later"])  # fails at once instead of queueing forever


def test_batcher_killed_by_a_base_exception_in_encode():
    calls = []

    def encode(texts, flags):
        calls.append(len(texts))
        raise SystemExit("encoder called exit")

    batcher = MicroBatcher(encode, 8, 0.01)
    errors = _dead_batcher_waits(batcher, 12)
    assert all(isinstance(e, BatcherDead) for e in errors) and len(calls) == 1
    service = LocalEmbeddingService(service=ServiceConfig(max_wait_ms=1), backend=HashEncoder())
    service.batcher = batcher
    with pytest.raises(EncoderError, match="SystemExit"):
        asyncio.run(service.embed(["x"]))


def test_many_waiters_time_out_without_leaking_threads():
    service = LocalEmbeddingService(service=ServiceConfig(request_timeout_s=0.3, max_wait_ms=0),
                                    backend=SlowEncoder(0.8))
    before = threading.active_count()

    async def run():
        return await asyncio.gather(*(service.embed([f"t{i}"]) for i in range(50)), return_exceptions=True)

    results = asyncio.run(run())
    timeouts = [r for r in results if isinstance(r, EncoderError)]
    assert len(timeouts) == 50 and all("request_timeout_s" in str(r) for r in timeouts)
    assert threading.active_count() <= before + 1
    service.close()
