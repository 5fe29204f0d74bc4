"""The embedding service: one encoder shared by every reward worker.

Two interchangeable implementations of one small API (``embed`` / ``embed_sync``
/ ``stats``):

* ``LocalEmbeddingService``: the encoder and a ``MicroBatcher`` in this process.
* ``RayEmbeddingService``: a client of one *named* Ray actor that holds the
  encoder (on a GPU if ``service.num_gpus`` > 0). Every reward-loop worker gets a
  client; the first to call creates the actor (``get_if_exists``), the others
  find it, and all their requests meet in the actor's batcher. If the actor dies,
  the next call recreates it; if it cannot be created or keeps dying, the call
  raises ``EncoderError`` so the training run stops loudly instead of training on
  a reward of zero.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Protocol

import numpy as np

from .batcher import MicroBatcher
from .config import EncoderConfig, SemanticRewardConfig, ServiceConfig
from .encoders import CachedEncoder, EncoderBackend, EncoderError, SentenceTransformerEncoder

__all__ = [
    "EmbeddingService",
    "LocalEmbeddingService",
    "RayEmbeddingService",
    "EmbeddingActor",
    "create_embedding_service",
    "shared_embedding_service",
]

logger = logging.getLogger(__name__)


class EmbeddingService(Protocol):
    async def embed(self, texts: list[str], cacheable: list[bool] | None = None) -> np.ndarray: ...

    def embed_sync(self, texts: list[str], cacheable: list[bool] | None = None) -> np.ndarray: ...

    def stats(self) -> dict[str, Any]: ...


class LocalEmbeddingService:
    """Encoder + cache + batcher inside the calling process."""

    def __init__(
        self,
        encoder: EncoderConfig | None = None,
        service: ServiceConfig | None = None,
        backend: EncoderBackend | None = None,
    ):
        encoder = encoder or EncoderConfig()
        service = service or ServiceConfig()
        self.backend = backend if backend is not None else SentenceTransformerEncoder(encoder)
        self.encoder = CachedEncoder(self.backend, encoder.cache_size)
        self.batcher = MicroBatcher(self.encoder.encode, service.max_batch_size, service.max_wait_ms / 1000.0)
        self.request_timeout_s = service.request_timeout_s

    async def embed(self, texts: list[str], cacheable: list[bool] | None = None) -> np.ndarray:
        return await asyncio.wrap_future(self.batcher.submit(texts, cacheable))

    def embed_sync(self, texts: list[str], cacheable: list[bool] | None = None) -> np.ndarray:
        return self.batcher.submit(texts, cacheable).result(timeout=self.request_timeout_s)

    def stats(self) -> dict[str, Any]:
        return {**self.encoder.stats.as_dict(), **self.batcher.stats.as_dict()}

    def close(self) -> None:
        self.batcher.close()


class EmbeddingActor:
    """The body of the shared Ray actor: a ``LocalEmbeddingService`` behind async methods.

    Loading happens in the constructor, so a bad encoder fails actor creation and
    the client reports the loader's own error.
    """

    def __init__(self, encoder: dict, service: dict):
        self._service = LocalEmbeddingService(EncoderConfig(**encoder), ServiceConfig(**service))

    async def embed(self, texts: list[str], cacheable: list[bool] | None = None) -> np.ndarray:
        return await self._service.embed(texts, cacheable)

    async def stats(self) -> dict[str, Any]:
        return self._service.stats()

    async def ping(self) -> str:
        return "ok"


class RayEmbeddingService:
    """Client of the named embedding actor; safe to create in every reward worker."""

    def __init__(self, encoder: EncoderConfig | None = None, service: ServiceConfig | None = None):
        self.encoder_config = encoder or EncoderConfig()
        self.service_config = service or ServiceConfig()
        self._handle = None
        self._lock = threading.Lock()
        self.restarts = 0

    def _actor_options(self) -> dict[str, Any]:
        cfg = self.service_config
        options: dict[str, Any] = {
            "name": cfg.actor_name,
            "get_if_exists": True,
            "num_cpus": cfg.num_cpus,
            "num_gpus": cfg.num_gpus,
            "max_concurrency": 4096,
            "max_restarts": 0,
        }
        if cfg.namespace:
            options["namespace"] = cfg.namespace
        return options

    def handle(self):
        """The actor handle, creating the actor on first use."""
        import ray

        with self._lock:
            if self._handle is None:
                if not ray.is_initialized():
                    ray.init(ignore_reinit_error=True)
                actor_cls = ray.remote(EmbeddingActor)
                self._handle = actor_cls.options(**self._actor_options()).remote(
                    _asdict(self.encoder_config), _asdict(self.service_config)
                )
            return self._handle

    def _forget(self, handle) -> None:
        with self._lock:
            if self._handle is handle:
                self._handle = None

    def _on_failure(self, handle, exc: BaseException) -> BaseException:
        """Decide what a failed call means: a dead actor is forgotten (and retried), the rest raise."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError

        if isinstance(exc, RayTaskError):  # the encoder itself raised: retrying cannot help
            raise EncoderError(f"embedding service failed to encode: {exc}") from exc
        if isinstance(exc, asyncio.TimeoutError | GetTimeoutError):
            raise EncoderError(
                f"embedding service gave no answer within service.request_timeout_s="
                f"{self.service_config.request_timeout_s}s"
            ) from exc
        if not isinstance(exc, ActorDiedError | ActorUnavailableError | RayActorError):
            raise exc
        self.restarts += 1
        logger.warning("embedding service actor died (%s); recreating it", exc)
        self._forget(handle)
        return exc

    def _give_up(self, exc: BaseException | None) -> EncoderError:
        return EncoderError(
            f"embedding service actor '{self.service_config.actor_name}' failed "
            f"{self.service_config.max_restarts + 1} time(s); last error: {exc}"
        )

    async def embed(self, texts: list[str], cacheable: list[bool] | None = None) -> np.ndarray:
        last: BaseException | None = None
        for _attempt in range(self.service_config.max_restarts + 1):
            handle = self.handle()
            try:
                ref = handle.embed.remote(texts, cacheable)
                return await asyncio.wait_for(ref, timeout=self.service_config.request_timeout_s)
            except Exception as exc:
                last = self._on_failure(handle, exc)
        raise self._give_up(last)

    def embed_sync(self, texts: list[str], cacheable: list[bool] | None = None) -> np.ndarray:
        import ray

        last: BaseException | None = None
        for _attempt in range(self.service_config.max_restarts + 1):
            handle = self.handle()
            try:
                return ray.get(handle.embed.remote(texts, cacheable), timeout=self.service_config.request_timeout_s)
            except Exception as exc:
                last = self._on_failure(handle, exc)
        raise self._give_up(last)

    def stats(self) -> dict[str, Any]:
        import ray

        return {**ray.get(self.handle().stats.remote()), "client_restarts": self.restarts}


def _asdict(cfg: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(cfg)


def create_embedding_service(config: SemanticRewardConfig) -> LocalEmbeddingService | RayEmbeddingService:
    """Pick the implementation: ``auto`` means Ray when this process runs under Ray."""
    backend = config.service.backend
    if backend == "auto":
        try:
            import ray

            backend = "ray" if ray.is_initialized() else "local"
        except ImportError:  # pragma: no cover - ray comes with verl
            backend = "local"
    if backend == "ray":
        return RayEmbeddingService(config.encoder, config.service)
    return LocalEmbeddingService(config.encoder, config.service)


_SHARED: dict[str, LocalEmbeddingService | RayEmbeddingService] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedding_service(config: SemanticRewardConfig) -> LocalEmbeddingService | RayEmbeddingService:
    """One service per (encoder, service) settings in this process.

    Several reward managers or compute_score calls in one process then share one
    loaded encoder and one batcher instead of loading the model again each.
    """
    import json

    key = json.dumps([_asdict(config.encoder), _asdict(config.service)], sort_keys=True)
    with _SHARED_LOCK:
        service = _SHARED.get(key)
        if service is None:
            service = create_embedding_service(config)
            _SHARED[key] = service
        return service
