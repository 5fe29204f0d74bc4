"""Merging many small embedding requests into few large encode calls.

verl's reward loop scores one trajectory per call, from many coroutines and
workers at once. Encoding each request alone wastes the encoder on tiny batches;
the batcher queues requests and flushes them together when ``max_batch_size``
texts are waiting or ``max_wait_s`` has passed since the first one arrived.
While one batch encodes, the next one fills, so under load batches grow by
themselves. It runs in its own thread and returns ``concurrent.futures.Future``,
so it serves any event loop (a Ray actor's, a test's) and plain threads alike.
If that thread ever dies, every waiting and later request fails at once with the
cause: a dead batcher is an error, never a hang.
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

from .encoders import EncoderError

__all__ = ["MicroBatcher", "BatcherStats", "BatcherDead", "MAX_WAIT_S"]

MAX_WAIT_S = 10.0
"""Longest allowed merge window: longer only delays rewards, and huge values overflow the queue's timeout."""

logger = logging.getLogger(__name__)

EncodeFn = Callable[[Sequence[str], Sequence[bool]], np.ndarray]


class BatcherDead(EncoderError):
    """The batcher thread stopped on an unexpected error; no request can be served."""


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
        if not isinstance(max_batch_size, int) or max_batch_size <= 0:
            raise ValueError(f"max_batch_size must be an integer > 0, got {max_batch_size!r}")
        if not isinstance(max_wait_s, int | float) or not 0 <= max_wait_s <= MAX_WAIT_S:
            raise ValueError(f"max_wait_s must be in [0, {MAX_WAIT_S}] seconds, got {max_wait_s!r}")
        self._encode = encode
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._dead: BaseException | None = None
        self.stats = BatcherStats()

    @property
    def dead(self) -> BaseException | None:
        """Why the batcher thread died, or None while it is healthy."""
        return self._dead

    def submit(self, texts: Sequence[str], cacheable: Sequence[bool] | None = None) -> concurrent.futures.Future:
        """Queue texts; the future resolves to their (len(texts), dim) embeddings."""
        if self._closed:
            raise RuntimeError("MicroBatcher is closed")
        if self._dead is not None:
            raise self._death_error()
        texts = list(texts)
        flags = list(cacheable) if cacheable is not None else [False] * len(texts)
        if len(flags) != len(texts):
            raise ValueError(f"cacheable has {len(flags)} flags for {len(texts)} texts")
        request = _Request(texts, flags)
        self._ensure_thread()
        self._queue.put(request)
        if self._dead is not None:  # it died between the check above and the put
            self._fail_queued()
        return request.future

    def _death_error(self) -> BatcherDead:
        return BatcherDead(f"embedding batcher thread died: {self._dead!r}")

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

    def _collect(self, batch: list[_Request]) -> bool:
        """Grow ``batch`` (in place, so a crash still knows every request taken); True means stop."""
        size = sum(len(r.texts) for r in batch)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch_size:
            try:
                timeout = deadline - time.monotonic()
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return True
            batch.append(item)
            size += len(item.texts)
        return False

    def _run(self) -> None:
        batch: list[_Request] = []
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = self._collect(batch)
                self._flush(batch)
                batch = []
                if stop:
                    return
        except BaseException as exc:  # a bug or a bad setting: fail every waiter instead of leaving it hanging
            self._dead = exc
            logger.error("embedding batcher thread died: %r", exc)
            error = self._death_error()
            for request in batch:
                _settle(request.future, error=error)
            self._fail_queued()

    def _fail_queued(self) -> None:
        error = self._death_error()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _settle(item.future, error=error)

    def _flush(self, batch: list[_Request]) -> None:
        texts = [t for r in batch for t in r.texts]
        flags = [c for r in batch for c in r.cacheable]
        self.stats.requests += len(batch)
        self.stats.flushes += 1
        self.stats.largest_flush = max(self.stats.largest_flush, len(texts))
        try:
            vectors = self._encode(texts, flags)
        except Exception as exc:  # every waiter must hear about the failure
            logger.error("embedding batch of %d texts failed: %r", len(texts), exc)
            for request in batch:
                _settle(request.future, error=exc)
            return
        start = 0
        for request in batch:
            end = start + len(request.texts)
            _settle(request.future, result=vectors[start:end])
            start = end


def _settle(future: concurrent.futures.Future, result: object = None, error: BaseException | None = None) -> None:
    """Resolve a future unless its waiter gave up (timed out or cancelled) in the meantime."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
