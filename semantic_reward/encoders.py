"""Encoder backends: anything that maps texts to L2-normalised vectors.

``SentenceTransformerEncoder`` is the real one; ``CachedEncoder`` wraps any
backend with what a GRPO workload needs: a reference repeats n times per group
and again every epoch (cache it), identical outputs in one batch are common
(encode them once), and texts are length-sorted so padding stays small.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .config import EncoderConfig, device_problem, resolve_model_path

__all__ = [
    "EncoderBackend",
    "EncoderError",
    "SentenceTransformerEncoder",
    "CachedEncoder",
    "EncoderStats",
    "clean_text",
    "check_device",
    "check_model",
    "short_error",
]

logger = logging.getLogger(__name__)


class EncoderError(RuntimeError):
    """The encoder could not be loaded or failed to encode: the run must stop."""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def short_error(exc: BaseException, limit: int = 300) -> str:
    """One line for an exception: its own cause (not Ray's wrapper), no colour codes, bounded length.

    Ray wraps a remote failure in a multi-kilobyte traceback with terminal colours;
    a user needs the last cause, not the wrapping.
    """
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError keeps the original exception here
    if isinstance(cause, BaseException) and cause is not exc:
        exc = cause
    text = _ANSI.sub("", str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(text) > limit and lines:  # a traceback ends with its exception; a message starts with its point
        text = lines[-1] if "Traceback" in text else lines[0]
    else:
        text = " ".join(lines)
    if not text:
        text = type(exc).__name__
    elif not isinstance(exc, EncoderError):  # our own errors already say what failed
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_device(device: str, hardware: bool = True) -> str:
    """The torch device for ``encoder.device``, or an ``EncoderError`` naming the setting.

    ``hardware=False`` checks the spelling only (a driver node may have no GPU while
    the reward runs on one); ``True`` also checks that this process can use it.
    """
    device = str(device).strip()
    problem = device_problem(device)
    if problem:
        raise EncoderError(f"semantic reward setting 'encoder.device': {problem}")
    if not hardware:
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            hint = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
            raise EncoderError(
                f"semantic reward setting 'encoder.device': {device!r} but this process sees no CUDA GPU{hint}; "
                "use 'auto' or 'cpu'"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise EncoderError(
                f"semantic reward setting 'encoder.device': {device!r} but only {torch.cuda.device_count()} "
                "CUDA GPU(s) are visible"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise EncoderError("semantic reward setting 'encoder.device': 'mps' is not available on this machine")
    return device


def _hub_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_model(model: str) -> str:
    """The path or hub id to load for ``encoder.model``; an existing relative folder becomes absolute.

    A relative folder must not depend on the working directory of whichever Ray
    worker loads it, and a folder that does not exist while the hub is offline can
    only fail later with a long hub error: both are settled here.
    """
    path = resolve_model_path(model)
    if os.path.exists(path):
        return os.path.abspath(path)
    if os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1 or _hub_offline():
        where = "" if os.path.isabs(path) else f" (relative to the working directory {os.getcwd()})"
        why = "" if os.path.isabs(path) or path.startswith((".", "~")) else \
            " and the Hugging Face hub is offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)"
        raise EncoderError(f"semantic reward setting 'encoder.model': no folder {path!r}{where}{why}")
    return path


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
        device = check_device(config.device)  # settings first: they fail in seconds, before the heavy imports
        path = check_model(config.model)
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - hard dependency
            raise EncoderError(f"sentence-transformers is not importable: {exc}") from exc
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        try:
            self.model = SentenceTransformer(
                path, device=device, model_kwargs={"dtype": getattr(torch, config.dtype)}
            )
        except Exception as exc:
            raise EncoderError(
                f"semantic reward setting 'encoder.model': cannot load encoder {config.model!r} "
                f"(resolved to {path!r}): {short_error(exc)}"
            ) from exc
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
