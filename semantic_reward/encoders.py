"""Encoder backends: anything that maps texts to L2-normalised vectors.

``SentenceTransformerEncoder`` is the real one; ``CachedEncoder`` wraps any
backend with what a GRPO workload needs: a reference repeats n times per group
and again every epoch (cache it), identical outputs in one batch are common
(encode them once), and texts are length-sorted so padding stays small.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .config import EncoderConfig, resolve_model_path

__all__ = [
    "EncoderBackend",
    "EncoderError",
    "SentenceTransformerEncoder",
    "CachedEncoder",
    "EncoderStats",
    "clean_text",
]

logger = logging.getLogger(__name__)


class EncoderError(RuntimeError):
    """The encoder could not be loaded or failed to encode: the run must stop."""


@runtime_checkable
class EncoderBackend(Protocol):
    """Maps texts to an (n, dim) float32 array of unit-norm rows."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def clean_text(text: str, max_chars: int) -> str:
    """Make any string safe for a tokenizer: no lone surrogates, bounded size.

    The encoder truncates at ``max_length`` tokens anyway; cutting megabyte
    outputs first keeps a degenerate sample from stalling a whole batch.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[:max_chars]
    return text.encode("utf-8", "replace").decode("utf-8", "replace")


class SentenceTransformerEncoder:
    """Any sentence-transformers model, by hub name or local path."""

    def __init__(self, config: EncoderConfig):
        self.config = config
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - hard dependency
            raise EncoderError(f"sentence-transformers is not importable: {exc}") from exc
        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        path = resolve_model_path(config.model)
        try:
            self.model = SentenceTransformer(
                path, device=device, model_kwargs={"dtype": getattr(torch, config.dtype)}
            )
        except Exception as exc:
            raise EncoderError(f"cannot load encoder {config.model!r} (resolved to {path!r}): {exc}") from exc
        self.model.eval()
        self.model.max_seq_length = min(config.max_length, self.model.max_seq_length or config.max_length)
        self.device = device
        self.dimension = int(self.model.get_embedding_dimension())
        self._max_chars = config.max_length * 32

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        cleaned = [clean_text(t, self._max_chars) for t in texts]
        # sentence-transformers sorts by length inside encode(), so one large call
        # gets tight padding in every internal mini-batch of ``batch_size``.
        emb = self.model.encode(
            cleaned,
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(emb, dtype=np.float32)


@dataclass
class EncoderStats:
    """Counters that show how much work batching and caching saved."""

    requested_texts: int = 0
    encode_calls: int = 0
    encoded_texts: int = 0
    cache_hits: int = 0
    duplicate_hits: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class CachedEncoder:
    """Deduplicates each batch and keeps an LRU cache for reusable texts.

    Only texts marked ``cacheable`` (references, sources) enter the cache: model
    outputs are almost never seen twice across steps and would only evict them.
    Thread-safe, so one instance can serve a batcher thread and direct callers.
    """

    def __init__(self, backend: EncoderBackend, cache_size: int = 65536):
        self.backend = backend
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = EncoderStats()

    def encode(self, texts: Sequence[str], cacheable: Sequence[bool] | None = None) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, int(getattr(self.backend, "dimension", 0))), dtype=np.float32)
        if cacheable is None:
            cacheable = [False] * len(texts)
        if len(cacheable) != len(texts):
            raise ValueError(f"cacheable has {len(cacheable)} flags for {len(texts)} texts")
        with self._lock:
            found: dict[str, np.ndarray] = {}
            hits = 0
            for text in texts:
                vec = found.get(text)
                if vec is None and (vec := self._cache.get(text)) is not None:
                    self._cache.move_to_end(text)
                    found[text] = vec
                hits += vec is not None
            missing = list(dict.fromkeys(t for t in texts if t not in found))
            self.stats.requested_texts += len(texts)
            self.stats.cache_hits += hits
            self.stats.duplicate_hits += len(texts) - hits - len(missing)
        if missing:
            try:
                vectors = self.backend.encode(missing)
            except Exception as exc:
                raise EncoderError(f"encoder failed on a batch of {len(missing)} texts: {exc!r}") from exc
            if vectors.shape[0] != len(missing):
                raise EncoderError(f"encoder returned {vectors.shape[0]} vectors for {len(missing)} texts")
            keep = {t for t, c in zip(texts, cacheable, strict=True) if c}
            with self._lock:
                self.stats.encode_calls += 1
                self.stats.encoded_texts += len(missing)
                for text, vec in zip(missing, vectors, strict=True):
                    found[text] = vec
                    if text in keep and self.cache_size:
                        self._cache[text] = vec
                        self._cache.move_to_end(text)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)
