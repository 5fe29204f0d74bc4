"""Readers: every supported input format to ``RawRow`` records with their origin.

Each reader yields rows lazily and reports bad input with the file, the line and,
where it applies, the field. Undecodable bytes are reported with their line and
byte offset instead of a bare ``UnicodeDecodeError``.

CSV is read as RFC 4180 defines it (quoted fields may hold commas, quotes and
newlines), by the ``csv`` module over the whole stream; TSV as the IANA
``text/tab-separated-values`` type defines it: no quoting, so a field that starts
with ``"`` keeps it. Every reader takes ``on_error``: ``None`` raises the
``InputError``; a callable receives it instead and the reader goes on with the
next row (``--skip-invalid``); a CSV quoting error is never skipped, as it puts
the boundaries of every later row in doubt.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .errors import InputError
from .records import RawRow

__all__ = ["read_rows", "detect_format", "read_jsonl", "read_json_array", "read_delimited",
           "read_aligned", "read_text", "read_hf", "OnError", "skip_counter"]

log = logging.getLogger(__name__)

OnError = Callable[[InputError], None] | None

_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".tsv": "tsv", ".csv": "csv", ".txt": "text"}
# surrogateescape turns each undecodable byte into one of these code points
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]+")
# JSON may spell a lone surrogate ("\ud800"), which no UTF-8 output (parquet) can hold
_SURROGATE = re.compile("[\ud800-\udfff]")
_LOGGED_SKIPS = 10  # the first skipped rows are logged with their location, the rest only counted


def detect_format(path: str) -> str:
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(set(_SUFFIXES.values())))
        raise InputError(f"cannot tell the format from the suffix; pass --format ({known})", path)
    return fmt


def _fail(exc: InputError, on_error: OnError) -> None:
    """Raise ``exc``, or hand it to ``on_error`` (which counts it) so the reader can go on."""
    if on_error is None:
        raise exc
    on_error(exc)


def _open(path: str) -> BinaryIO:
    try:
        if Path(path).is_dir():
            raise InputError("is a folder, not a file", path)
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", path) from exc


def _decoded_lines(path: str) -> Iterator[tuple[int, str | InputError]]:
    """(line number, decoded line without its end) or (line number, the error for bad bytes)."""
    offset = 0
    with _open(path) as fh:
        for line_no, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, InputError(
                    f"undecodable bytes {raw[exc.start:exc.end]!r} at byte offset {offset + exc.start} "
                    f"(column {exc.start + 1}); the file must be UTF-8",
                    path, line_no, kind="undecodable bytes (not UTF-8)",
                )
                offset += len(raw)
                continue
            offset += len(raw)
            if line_no == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield line_no, text.rstrip("\r\n")


def _lines(path: str, on_error: OnError = None) -> Iterator[tuple[int, str]]:
    """(line number, decoded line); a line with bad bytes raises or is skipped."""
    for line_no, text in _decoded_lines(path):
        if isinstance(text, InputError):
            _fail(text, on_error)
            continue
        yield line_no, text


def _lone_surrogate(obj: dict[str, Any], path: str, line: int) -> InputError | None:
    """The error for a top-level string holding a lone surrogate escape, or None."""
    for key, value in obj.items():
        if isinstance(value, str) and (m := _SURROGATE.search(value)):
            return InputError(f"lone surrogate \\u{ord(m.group()):04x} at character {m.start()}: not valid Unicode",
                              path, line, key, kind="invalid Unicode (lone surrogate)")
    return None


def read_jsonl(path: str, on_error: OnError = None) -> Iterator[RawRow]:
    seen_object = False
    for line_no, text in _lines(path, on_error):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            hint = "" if seen_object else "; is this file JSONL (one JSON object per line)? if not, pass --format"
            _fail(InputError(f"malformed JSON: {exc.msg} at column {exc.colno}{hint}", path, line_no,
                             kind="malformed JSON"), on_error)
            continue
        if not isinstance(obj, dict):
            _fail(InputError(f"expected a JSON object per line, got {type(obj).__name__}", path, line_no,
                             kind="not a JSON object"), on_error)
            continue
        seen_object = True
        if (bad := _lone_surrogate(obj, path, line_no)) is not None:
            _fail(bad, on_error)
            continue
        yield RawRow(obj, path, line_no)


def read_json_array(path: str, on_error: OnError = None) -> Iterator[RawRow]:
    """One JSON document; bad bytes or bad JSON fail the whole file (no row of it can be trusted)."""
    parts = []
    for line_no, text in _decoded_lines(path):
        if isinstance(text, InputError):
            raise text
        parts.append(text)
    try:
        data = json.loads("\n".join(parts))
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg} at column {exc.colno}", path, exc.lineno) from exc
    if isinstance(data, dict):  # {"data": [...]} is common; accept the single list value
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise InputError("expected a JSON array of objects (or an object holding exactly one array)", path)
        data = lists[0]
    if not isinstance(data, list):
        raise InputError(f"expected a JSON array, got {type(data).__name__}", path)
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            _fail(InputError(f"array element {i} is {type(obj).__name__}, expected an object", path,
                             kind="not a JSON object"), on_error)
            continue
        if (bad := _lone_surrogate(obj, path, i + 1)) is not None:
            _fail(bad, on_error)
            continue
        yield RawRow(obj, path, i + 1)  # "line" is the 1-based element number for arrays


def _escaped_bytes(value: str) -> bytes | None:
    """The original bytes of the first undecodable run in a surrogateescape-decoded string."""
    match = _ESCAPED_BYTE.search(value)
    return bytes(ord(c) - 0xDC00 for c in match.group()) if match else None


def read_delimited(path: str, delimiter: str, on_error: OnError = None) -> Iterator[RawRow]:
    """TSV/CSV with a header row; a row's ``line`` is the line it starts on."""
    name = "TSV" if delimiter == "\t" else "CSV"
    with _open(path) as raw:
        # newline="" hands line ends to the csv module, which keeps those inside quoted fields
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        if delimiter == "\t":
            reader = csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(text, delimiter=delimiter, strict=True)
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # never skipped: after a stray quote the boundaries of every later row are in doubt
                span = f" (the row starting here runs to line {reader.line_num})" if reader.line_num > start else ""
                raise InputError(f"malformed {name}: {exc}{span}; check its quotes", path, start) from exc
            if not values or (len(values) == 1 and not values[0].strip() and (header is None or len(header) > 1)):
                continue  # a blank line
            bad = next(((col, b) for col, v in zip(header or values, values) if (b := _escaped_bytes(v))), None)
            if header is None:
                if bad:
                    raise InputError(f"undecodable bytes {bad[1]!r} in the header; the file must be UTF-8", path, start)
                if len(set(values)) != len(values):
                    raise InputError(f"duplicate column names in header {values}", path, start)
                other = "," if delimiter == "\t" else "\t"
                if len(values) == 1 and other in values[0]:
                    guess = "csv" if other == "," else "tsv"
                    raise InputError(f"the {name} header has one column {values[0]!r}, split by {other!r} instead: "
                                     f"is this {guess.upper()}? pass --format {guess}", path, start)
                header = values
                continue
            if len(values) != len(header):
                _fail(InputError(f"{len(values)} columns where the header has {len(header)} ({header})", path, start,
                                 kind="wrong column count"), on_error)
                continue
            if bad:
                _fail(InputError(f"undecodable bytes {bad[1]!r}; the file must be UTF-8", path, start, bad[0],
                                 kind="undecodable bytes (not UTF-8)"), on_error)
                continue
            yield RawRow(dict(zip(header, values, strict=True)), path, start)


def read_text(path: str, field: str, on_error: OnError = None) -> Iterator[RawRow]:
    """One text per line (monolingual source-only data)."""
    for line_no, text in _lines(path, on_error):
        if text.strip():
            yield RawRow({field: text}, path, line_no)


def read_aligned(source_path: str, target_path: str, source_field: str, target_field: str,
                 on_error: OnError = None) -> Iterator[RawRow]:
    """One file per language, line i of one aligned to line i of the other.

    A line with bad bytes on either side skips the pair (with ``on_error``), so the
    rest stays aligned.
    """
    src = list(_decoded_lines(source_path))
    tgt = list(_decoded_lines(target_path))
    if len(src) != len(tgt):
        raise InputError(
            f"aligned files differ in line count: {source_path} has {len(src)} lines, {target_path} has {len(tgt)}"
        )
    for (i, s), (_, t) in zip(src, tgt, strict=True):
        bad = s if isinstance(s, InputError) else t if isinstance(t, InputError) else None
        if bad is not None:
            _fail(bad, on_error)
            continue
        yield RawRow({source_field: s, target_field: t}, f"{source_path}|{target_path}", i)


def read_hf(name: str, config: str | None = None, split: str = "train", **kwargs: Any) -> Iterator[RawRow]:
    """A Hugging Face dataset by name (or local path), config and split."""
    import datasets

    try:
        ds = datasets.load_dataset(name, config, split=split, **kwargs)
    except Exception as exc:
        raise InputError(
            f"cannot load Hugging Face dataset {name!r} (config {config!r}, split {split!r}): {exc}") from exc
    origin = f"hf:{name}" + (f":{config}" if config else "") + f":{split}"
    for i, row in enumerate(ds):
        yield RawRow(dict(row), origin, i + 1)


def _check_text_format(path: str, input_cfg) -> None:
    """A ``.txt`` file holds no targets: say so instead of a later "no field 'bo'"."""
    if input_cfg.format != "auto" or input_cfg.source_only:
        return
    first = next((t for _, t in _decoded_lines(path) if isinstance(t, str) and t.strip()), "")
    looks = " (it looks like JSONL: pass --format jsonl)" if first.lstrip().startswith("{") else ""
    raise InputError(
        "a .txt file is read as plain text, one source text per line, with no targets"
        f"{looks}; pass --source-only for source-only RL rows, or give pairs as JSONL, TSV, CSV or --format aligned",
        path,
    )


def skip_counter(invalid: Counter) -> Callable[[InputError], None]:
    """An ``on_error`` that counts each skipped row under its kind and logs the first few with their place."""

    def count(exc: InputError) -> None:
        invalid[exc.kind] += 1
        total = sum(invalid.values())
        if total <= _LOGGED_SKIPS:
            log.warning("skipped (--skip-invalid): %s", exc)
        elif total == _LOGGED_SKIPS + 1:
            log.warning("more rows skipped; the counts by reason are in stats.json")

    return count


def read_rows(input_cfg, source_field: str, target_field: str, invalid: Counter | None = None) -> Iterator[RawRow]:
    """Dispatch on ``input_cfg.format`` over every input path.

    With ``input_cfg.skip_invalid`` and a counter ``invalid``, malformed lines and
    undecodable bytes are skipped and counted there by reason; otherwise the first
    one raises ``InputError``.
    """
    on_error = skip_counter(invalid) if input_cfg.skip_invalid and invalid is not None else None
    if input_cfg.format == "hf":
        yield from read_hf(input_cfg.hf_name, input_cfg.hf_config, input_cfg.hf_split)
        return
    for i, path in enumerate(input_cfg.paths):
        fmt = detect_format(path) if input_cfg.format == "auto" else input_cfg.format
        if fmt == "jsonl":
            rows = read_jsonl(path, on_error)
        elif fmt == "json":
            rows = read_json_array(path, on_error)
        elif fmt in ("tsv", "csv"):
            rows = read_delimited(path, "\t" if fmt == "tsv" else ",", on_error)
        elif fmt == "text":
            _check_text_format(path, input_cfg)
            rows = read_text(path, source_field, on_error)
        elif fmt == "aligned":
            rows = read_aligned(path, input_cfg.target_paths[i], source_field, target_field, on_error)
        else:  # pragma: no cover - the config validates formats
            raise InputError(f"unsupported format {fmt!r}", path)
        n = 0
        for n, row in enumerate(rows, 1):  # noqa: B007 - n counts the rows of this file
            yield row
        if n == 0:
            log.warning("%s: no rows (an empty file, or a header only)", path)
