"""The embedding service: one encoder shared by every reward worker.

Two interchangeable implementations of one small API (``embed`` / ``embed_sync``
/ ``stats``):

* ``LocalEmbeddingService``: the encoder and a ``MicroBatcher`` in this process.
* ``RayEmbeddingService``: a client of one *named* Ray actor that holds the
  encoder (on a GPU if ``service.num_gpus`` > 0). Every reward-loop worker gets a
  client; the first creates the actor (``get_if_exists``), the others find it,
  and all their requests meet in the actor's batcher. The actor's name carries a
  hash of the encoder settings, so two configurations never share one encoder.

Failing at start: ``create_embedding_service`` (what the scorer uses) returns a
service whose encoder is loaded, or raises a one-line ``EncoderError`` naming the
setting; a Ray actor that cannot load its encoder is not retried. Later, a dead
actor is recreated (one warning per death), a slow answer is an error after
``service.request_timeout_s``, and nothing waits forever.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import threading
from typing import Any

import numpy as np

from .batcher import MicroBatcher
from .config import EncoderConfig, SemanticRewardConfig, ServiceConfig
from .encoders import CachedEncoder, EncoderBackend, EncoderError, SentenceTransformerEncoder, check_model, short_error

__all__ = [
    "LocalEmbeddingService",
    "RayEmbeddingService",
    "EmbeddingActor",
    "actor_identity",
    "create_embedding_service",
    "shared_embedding_service",
]

logger = logging.getLogger(__name__)


class LocalEmbeddingService:
    """Encoder + cache + batcher inside the calling process (the encoder loads in the constructor)."""

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

    def start(self) -> None:
        """Nothing to wait for: the constructor loaded the encoder."""

    def _timeout(self) -> EncoderError:
        return EncoderError(
            f"embedding service gave no answer within service.request_timeout_s={self.request_timeout_s}s"
        )

    async def embed(self, texts: list[str], cacheable: list[bool] | None = None) -> np.ndarray:
        future = self.batcher.submit(texts, cacheable)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout=self.request_timeout_s)
        except TimeoutError:
            raise self._timeout() from None

    def embed_sync(self, texts: list[str], cacheable: list[bool] | None = None) -> np.ndarray:
        future = self.batcher.submit(texts, cacheable)
        try:
            return future.result(timeout=self.request_timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise self._timeout() from None

    def stats(self) -> dict[str, Any]:
        return {**self.encoder.stats.as_dict(), **self.batcher.stats.as_dict()}

    def close(self) -> None:
        self.batcher.close()


_ACTOR_SERVICE_FIELDS = ("num_cpus", "num_gpus", "max_batch_size", "max_wait_ms")


def actor_identity(encoder: EncoderConfig, service: ServiceConfig) -> str:
    """A short hash of everything the actor computes with: same hash, same vectors and resources."""
    payload = {
        "encoder": dataclasses.asdict(encoder),
        "service": {name: getattr(service, name) for name in _ACTOR_SERVICE_FIELDS},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


class EmbeddingActor:
    """The body of the shared Ray actor: a ``LocalEmbeddingService`` behind async methods.

    A loading failure does not kill the actor (Ray would report it as a death with
    a long coloured traceback, and the client would retry): the actor stays up,
    ``ready`` returns the one-line cause and every ``embed`` raises it.
    """

    def __init__(self, encoder: dict, service: dict):
        encoder_cfg, service_cfg = EncoderConfig(**encoder), ServiceConfig(**service)
        self._identity = actor_identity(encoder_cfg, service_cfg)
        self._error: str | None = None
        self._service: LocalEmbeddingService | None = None
        try:
            self._service = LocalEmbeddingService(encoder_cfg, service_cfg)
        except Exception as exc:
            self._error = short_error(exc, limit=500)
            logger.error("embedding actor cannot load its encoder: %s", self._error)

    async def ready(self) -> dict[str, Any]:
        return {"identity": self._identity, "error": self._error, "pid": os.getpid()}

    async def embed(self, texts: list[str], cacheable: list[bool] | None = None) -> np.ndarray:
        if self._service is None:
            raise EncoderError(self._error)
        return await self._service.embed(texts, cacheable)

    async def stats(self) -> dict[str, Any]:
        return self._service.stats() if self._service is not None else {"error": self._error}

    async def ping(self) -> str:
        return "ok"


class RayEmbeddingService:
    """Client of the named embedding actor; safe to create in every reward worker."""

    def __init__(self, encoder: EncoderConfig | None = None, service: ServiceConfig | None = None):
        encoder = encoder or EncoderConfig()
        # an existing relative folder becomes absolute here, where it was meant, not in the actor's cwd
        self.encoder_config = dataclasses.replace(encoder, model=check_model(encoder.model))
        self.service_config = service or ServiceConfig()
        self.identity = actor_identity(self.encoder_config, self.service_config)
        self.actor_name = f"{self.service_config.actor_name}_{self.identity}"
        self._handle = None
        self._lock = threading.Lock()
        self.restarts = 0

    def _actor_options(self) -> dict[str, Any]:
        cfg = self.service_config
        options: dict[str, Any] = {
            "name": self.actor_name,
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

    def _load_hint(self, message: str) -> str:
        device = str(self.encoder_config.device)
        if "encoder.device" in message and device.startswith("cuda") and not self.service_config.num_gpus:
            return f"{message} (service.num_gpus is 0, so Ray gives the embedding actor no GPU)"
        return message

    def start(self) -> None:
        """Create or find the actor and wait until its encoder is loaded.

        Raises a one-line ``EncoderError`` (never retried: a bad setting does not get
        better) if the encoder cannot load, the actor dies while loading, it is not
        ready within ``service.request_timeout_s``, or the actor under this name was
        built from other settings.
        """
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        timeout = self.service_config.request_timeout_s
        handle = self.handle()
        try:
            info = ray.get(handle.ready.remote(), timeout=timeout)
        except GetTimeoutError:
            raise EncoderError(
                f"embedding actor '{self.actor_name}' was not ready within service.request_timeout_s={timeout}s "
                f"(are service.num_cpus={self.service_config.num_cpus} and service.num_gpus="
                f"{self.service_config.num_gpus} free in the Ray cluster?)"
            ) from None
        except RayActorError as exc:
            self._forget(handle)
            raise EncoderError(
                f"embedding actor '{self.actor_name}' died while loading encoder {self.encoder_config.model!r}: "
                f"{short_error(exc)}"
            ) from None
        if info["identity"] != self.identity:
            raise EncoderError(
                f"Ray actor '{self.actor_name}' serves other encoder settings (identity {info['identity']}, "
                f"expected {self.identity}); choose another service.actor_name"
            )
        if info["error"]:
            raise EncoderError(self._load_hint(info["error"]))

    def _forget(self, handle) -> bool:
        """Drop a dead handle; True only for the first caller to report this death."""
        with self._lock:
            if self._handle is handle:
                self._handle = None
                return True
            return False

    def _on_failure(self, handle, exc: BaseException) -> BaseException:
        """A dead actor is forgotten (and the call retried); anything else raises a one-line EncoderError."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError

        if isinstance(exc, RayTaskError):  # the actor raised: retrying cannot help
            raise EncoderError(self._load_hint(f"embedding service: {short_error(exc)}")) from None
        if isinstance(exc, TimeoutError | GetTimeoutError):
            raise EncoderError(
                f"embedding service gave no answer within service.request_timeout_s="
                f"{self.service_config.request_timeout_s}s"
            ) from None
        if not isinstance(exc, ActorDiedError | ActorUnavailableError | RayActorError):
            raise exc
        if self._forget(handle):  # one warning and one restart per death, however many requests were in flight
            self.restarts += 1
            logger.warning("embedding service actor '%s' died (%s); recreating it", self.actor_name,
                           short_error(exc, limit=200))
        return exc

    def _give_up(self, exc: BaseException | None) -> EncoderError:
        return EncoderError(
            f"embedding service actor '{self.actor_name}' failed "
            f"{self.service_config.max_restarts + 1} time(s); last error: {short_error(exc) if exc else None}"
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
    """A ready service: ``auto`` means Ray when this process runs under Ray.

    The encoder is loaded (in this process or in the actor) before this returns, so
    a bad ``encoder.*`` setting fails here, when the reward is built.
    """
    backend = config.service.backend
    if backend == "auto":
        try:
            import ray

            backend = "ray" if ray.is_initialized() else "local"
        except ImportError:  # pragma: no cover - ray comes with verl
            backend = "local"
    if backend == "ray":
        service = RayEmbeddingService(config.encoder, config.service)
        service.start()
        return service
    return LocalEmbeddingService(config.encoder, config.service)


_SHARED: dict[str, LocalEmbeddingService | RayEmbeddingService] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedding_service(config: SemanticRewardConfig) -> LocalEmbeddingService | RayEmbeddingService:
    """One service per (encoder, service) settings in this process.

    Several reward managers or compute_score calls in one process then share one
    loaded encoder and one batcher instead of loading the model again each.
    """
    key = json.dumps([_asdict(config.encoder), _asdict(config.service)], sort_keys=True)
    with _SHARED_LOCK:
        service = _SHARED.get(key)
        if service is None:
            service = create_embedding_service(config)
            _SHARED[key] = service
        return service
