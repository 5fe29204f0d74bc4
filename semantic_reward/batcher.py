"""Merging many small embedding requests into few large encode calls.

verl's reward loop scores one trajectory per call, from many coroutines and
workers at once. Encoding each request alone wastes the encoder on tiny batches;
the batcher queues requests and flushes them together when ``max_batch_size``
texts are waiting or ``max_wait_s`` has passed since the first one arrived.
While one batch encodes, the next one fills, so under load batches grow by
themselves. It runs in its own thread and returns ``concurrent.futures.Future``,
so it serves any event loop (a Ray actor's, a test's) and plain threads alike.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MicroBatcher", "BatcherStats"]

logger = logging.getLogger(__name__)

EncodeFn = Callable[[Sequence[str], Sequence[bool]], np.ndarray]


@dataclass
class _Request:
    texts: list[str]
    cacheable: list[bool]
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


@dataclass
class BatcherStats:
    requests: int = 0
    flushes: int = 0
    largest_flush: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class MicroBatcher:
    """A background thread that turns queued requests into merged encode calls."""

    def __init__(self, encode: EncodeFn, max_batch_size: int = 512, max_wait_s: float = 0.005):
        self._encode = encode
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self.stats = BatcherStats()

    def submit(self, texts: Sequence[str], cacheable: Sequence[bool] | None = None) -> concurrent.futures.Future:
        """Queue texts; the future resolves to their (len(texts), dim) embeddings."""
        if self._closed:
            raise RuntimeError("MicroBatcher is closed")
        texts = list(texts)
        flags = list(cacheable) if cacheable is not None else [False] * len(texts)
        if len(flags) != len(texts):
            raise ValueError(f"cacheable has {len(flags)} flags for {len(texts)} texts")
        request = _Request(texts, flags)
        self._ensure_thread()
        self._queue.put(request)
        return request.future

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="semantic-reward-batcher", daemon=True)
                self._thread.start()

    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        batch, size = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch_size:
            try:
                timeout = deadline - time.monotonic()
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
            size += len(item.texts)
        return batch, False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            self._flush(batch)
            if stop:
                return

    def _flush(self, batch: list[_Request]) -> None:
        texts = [t for r in batch for t in r.texts]
        flags = [c for r in batch for c in r.cacheable]
        self.stats.requests += len(batch)
        self.stats.flushes += 1
        self.stats.largest_flush = max(self.stats.largest_flush, len(texts))
        try:
            vectors = self._encode(texts, flags)
        except BaseException as exc:  # every waiter must hear about the failure
            logger.error("embedding batch of %d texts failed: %r", len(texts), exc)
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        start = 0
        for request in batch:
            end = start + len(request.texts)
            if not request.future.done():
                request.future.set_result(vectors[start:end])
            start = end
