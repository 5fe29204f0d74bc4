"""Rows as they move through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RawRow:
    """One input record: its fields and where it came from (for error messages)."""

    fields: dict[str, Any]
    path: str
    line: int


@dataclass
class Pair:
    """A source text and its target (None for monolingual source-only data)."""

    id: str
    source: str
    target: str | None
    path: str
    line: int
    extra: dict[str, Any] = field(default_factory=dict)
