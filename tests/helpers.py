"""Test doubles and small builders shared by the tests."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import numpy as np


class HashEncoder:
    """A deterministic encoder: each distinct text gets a fixed random unit vector.

    Identical texts give similarity 1, different texts about 0, which is all the
    plumbing tests need; it also counts its calls and the texts it was sent.
    """

    def __init__(self, dimension: int = 32, fail_on: str | None = None):
        self.dimension = dimension
        self.fail_on = fail_on
        self.calls = 0
        self.texts_seen = 0
        self._lock = threading.Lock()

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8", "replace")).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dimension)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.calls += 1
            self.texts_seen += len(texts)
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise RuntimeError("encoder exploded")
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)
