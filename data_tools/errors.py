"""Errors of a dataset build: each is one line that names the path (and line and field) and the cause.

``DataToolsError`` is the base the command line catches; ``InputError`` is bad
input, ``OutputError`` an output folder that cannot be written, and
``EmptyBuildError`` a build whose needed splits came out empty.
"""

from __future__ import annotations

__all__ = ["DataToolsError", "InputError", "OutputError", "EmptyBuildError", "os_cause"]


class DataToolsError(ValueError):
    """Any data_tools failure that the command line reports as one line (exit status 2)."""


class InputError(DataToolsError):
    """A malformed input row, an unknown field, undecodable bytes, or misaligned files."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, field: str | None = None,
                 kind: str | None = None):
        where = ":".join(str(p) for p in (path, line) if p is not None)
        detail = f" (field {field!r})" if field else ""
        super().__init__(f"{where}: {message}{detail}" if where else f"{message}{detail}")
        self.path, self.line, self.field = path, line, field
        # the reason without the place: the key under which --skip-invalid counts it
        self.kind = kind or (f"field {field!r}: {message}" if field else message)


class OutputError(DataToolsError):
    """The output folder cannot be created, written or replaced."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class EmptyBuildError(DataToolsError):
    """A split that the recipes need (training, dev, test) has no rows."""


def os_cause(exc: OSError) -> str:
    """The short cause of an ``OSError`` ("permission denied"), without errno numbers or tracebacks."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    return cause[:1].lower() + cause[1:]
