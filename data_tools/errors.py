"""The one error type for bad input: it always names the file, the line and the field."""


class InputError(ValueError):
    """A malformed input row, an unknown field, undecodable bytes, or misaligned files."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, field: str | None = None):
        where = ":".join(str(p) for p in (path, line) if p is not None)
        detail = f" (field {field!r})" if field else ""
        super().__init__(f"{where}: {message}{detail}" if where else f"{message}{detail}")
        self.path, self.line, self.field = path, line, field
