"""Readers: every supported input format to ``RawRow`` records with their origin.

Each reader yields rows lazily and reports bad input with the file, the line and,
where it applies, the field. Undecodable bytes are reported with their line and
byte offset instead of a bare ``UnicodeDecodeError``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InputError
from .records import RawRow

__all__ = ["read_rows", "detect_format", "read_jsonl", "read_json_array", "read_delimited",
           "read_aligned", "read_text", "read_hf"]

_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".tsv": "tsv", ".csv": "csv", ".txt": "text"}


def detect_format(path: str) -> str:
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"cannot tell the format from the suffix; pass --format ({', '.join(sorted(set(_SUFFIXES.values())))})", path)
    return fmt


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) with precise errors for bad bytes."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", path) from exc
    offset = 0
    with fh:
        for line_no, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"undecodable bytes {raw[exc.start:exc.end]!r} at byte offset {offset + exc.start} "
                    f"(column {exc.start + 1}); the file must be UTF-8",
                    path, line_no,
                ) from exc
            offset += len(raw)
            if line_no == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield line_no, text.rstrip("\r\n")


def read_jsonl(path: str) -> Iterator[RawRow]:
    for line_no, text in _lines(path):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON: {exc.msg} at column {exc.colno}", path, line_no) from exc
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object per line, got {type(obj).__name__}", path, line_no)
        yield RawRow(obj, path, line_no)


def read_json_array(path: str) -> Iterator[RawRow]:
    text = "\n".join(t for _, t in _lines(path))
    try:
        data = json.loads(text)
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
            raise InputError(f"array element {i} is {type(obj).__name__}, expected an object", path)
        yield RawRow(obj, path, i + 1)  # "line" is the 1-based element number for arrays


def read_delimited(path: str, delimiter: str) -> Iterator[RawRow]:
    """TSV/CSV with a header row."""
    lines = _lines(path)
    try:
        _, header_line = next(lines)
    except StopIteration:
        return
    header = next(csv.reader([header_line], delimiter=delimiter))
    if len(set(header)) != len(header):
        raise InputError(f"duplicate column names in header {header}", path, 1)
    for line_no, text in lines:
        if not text.strip():
            continue
        values = next(csv.reader(io.StringIO(text), delimiter=delimiter, quotechar='"'), [])
        if len(values) != len(header):
            raise InputError(f"{len(values)} columns where the header has {len(header)} ({header})", path, line_no)
        yield RawRow(dict(zip(header, values, strict=True)), path, line_no)


def read_text(path: str, field: str) -> Iterator[RawRow]:
    """One text per line (monolingual source-only data)."""
    for line_no, text in _lines(path):
        if text.strip():
            yield RawRow({field: text}, path, line_no)


def read_aligned(source_path: str, target_path: str, source_field: str, target_field: str) -> Iterator[RawRow]:
    """One file per language, line i of one aligned to line i of the other."""
    src = [t for _, t in _lines(source_path)]
    tgt = [t for _, t in _lines(target_path)]
    if len(src) != len(tgt):
        raise InputError(
            f"aligned files differ in line count: {source_path} has {len(src)} lines, {target_path} has {len(tgt)}"
        )
    for i, (s, t) in enumerate(zip(src, tgt, strict=True), 1):
        yield RawRow({source_field: s, target_field: t}, f"{source_path}|{target_path}", i)


def read_hf(name: str, config: str | None = None, split: str = "train", **kwargs: Any) -> Iterator[RawRow]:
    """A Hugging Face dataset by name (or local path), config and split."""
    import datasets

    try:
        ds = datasets.load_dataset(name, config, split=split, **kwargs)
    except Exception as exc:
        raise InputError(f"cannot load Hugging Face dataset {name!r} (config {config!r}, split {split!r}): {exc}") from exc
    origin = f"hf:{name}" + (f":{config}" if config else "") + f":{split}"
    for i, row in enumerate(ds):
        yield RawRow(dict(row), origin, i + 1)


def read_rows(input_cfg, source_field: str, target_field: str) -> Iterator[RawRow]:
    """Dispatch on ``input_cfg.format`` over every input path."""
    if input_cfg.format == "hf":
        yield from read_hf(input_cfg.hf_name, input_cfg.hf_config, input_cfg.hf_split)
        return
    for i, path in enumerate(input_cfg.paths):
        fmt = detect_format(path) if input_cfg.format == "auto" else input_cfg.format
        if fmt == "jsonl":
            yield from read_jsonl(path)
        elif fmt == "json":
            yield from read_json_array(path)
        elif fmt in ("tsv", "csv"):
            yield from read_delimited(path, "\t" if fmt == "tsv" else ",")
        elif fmt == "text":
            yield from read_text(path, source_field)
        elif fmt == "aligned":
            yield from read_aligned(path, input_cfg.target_paths[i], source_field, target_field)
        else:  # pragma: no cover - the config validates formats
            raise InputError(f"unsupported format {fmt!r}", path)
