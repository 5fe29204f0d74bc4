"""What a build, a model or a stage saw: row ids and text hashes in one small JSON format.

A leak check must not depend on row ids alone (two corpora may share ids, a copied row gets a new
one), so every row is listed with a hash of each of its texts. Two files use this module:

``splits.json`` (:data:`SPLIT_MANIFEST`), written by ``write_build`` beside ``stats.json``::

    {"format": "data_tools/split-manifest-v1", "text_hash": TEXT_HASH, "inputs": [...],
     "split_settings": {"seed": 0, "test": 0.1, "dev": 0.1, "cold_start": 0.5, "cold_start_gate": 0.5},
     "row_sets": {"cold_start": [ROW, ...], "rl": [...], "dev": [...], "test": [...], "few_shot_K": [...]},
     "files": {"rl/test.parquet": ["test"], "sft/train_all.parquet": ["cold_start", "rl"], ...}}

``files`` lists, for each parquet file of the build, the row sets whose rows it holds in order.

A data manifest (:data:`DATA_FORMAT`), e.g. ``<model>/training_data.json`` (:data:`MODEL_MANIFEST`): the
texts a model was trained or selected on, or the rows a stage audited::

    {"format": "semantic_reward/data-manifest-v1", "text_hash": TEXT_HASH, "what": "free text",
     "parts": [{"role": "train" | "selection" | "audit" | "validation" | ..., "file": PATH or null,
                "splits": [SPLIT, ...] or null, "split_settings": {...} or null, "note": str or null,
                "rows": [ROW, ...]}]}

A ``ROW`` is ``{"id": "<row id>", "texts": ["<hash of the source>", "<hash of the target>"]}`` (one hash for
a monolingual row). A model folder without ``training_data.json`` (a hub model) is of unknown provenance.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .config import BuildConfig
from .errors import DataToolsError
from .pipeline import BuildResult, build
from .records import Pair
from .splits import SPLITS

__all__ = ["DATA_FORMAT", "MODEL_MANIFEST", "SPLIT_FORMAT", "SPLIT_MANIFEST", "TEXT_HASH", "ManifestError",
           "build_files", "digest", "file_rows", "manifest_part", "pair_rows", "read_manifest", "rows_outside",
           "same_rows", "split_manifest", "split_settings", "text_hash", "text_rows", "write_manifest"]

SPLIT_MANIFEST = "splits.json"
MODEL_MANIFEST = "training_data.json"
SPLIT_FORMAT = "data_tools/split-manifest-v1"
DATA_FORMAT = "semantic_reward/data-manifest-v1"
TEXT_HASH = "sha256 of the NFC text with whitespace runs collapsed to one space and the ends trimmed, first 32 hex"
_SPACE = re.compile(r"\s+")


class ManifestError(DataToolsError):
    """A manifest or data file that cannot be read as one; the message starts with its path."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def text_hash(text: str) -> str:
    """The hash a text is compared by: the same text after NFC and whitespace clean-up gives the same hash."""
    canonical = _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _row(row_id: Any, texts: Iterable[str | None]) -> dict[str, Any]:
    return {"id": str(row_id), "texts": [text_hash(t) for t in texts if isinstance(t, str)]}


def pair_rows(pairs: Iterable[Pair]) -> list[dict[str, Any]]:
    """Manifest rows of data_tools pairs: their ids and the hashes of source and target."""
    return [_row(p.id, (p.source, p.target)) for p in pairs]


def text_rows(texts: Sequence[str], ids: Sequence[str] | None = None, prefix: str = "text") -> list[dict[str, Any]]:
    """Manifest rows of monolingual texts (e.g. a language-model pass): one hash each, ids ``prefix:N`` by default."""
    if ids is not None and len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
    return [_row(ids[i] if ids is not None else f"{prefix}:{i}", (t,)) for i, t in enumerate(texts)]


def digest(rows: Iterable[Mapping[str, Any]]) -> str:
    """One hash of the texts of ``rows`` (order-free): equal for the same texts whatever their ids."""
    h = hashlib.sha256()
    for item in sorted(t for r in rows for t in r["texts"]):
        h.update(item.encode("ascii"))
    return h.hexdigest()[:32]


def split_settings(config: BuildConfig) -> dict[str, Any]:
    """The settings a row's split depends on (few-shot sizes pick subsets, they move no row)."""
    s = config.splits
    return {"seed": s.seed, "test": s.test, "dev": s.dev, "cold_start": s.cold_start,
            "cold_start_gate": s.cold_start_gate}


def build_files(result: BuildResult) -> dict[str, list[str]]:
    """Each parquet file ``write_build`` writes -> the row sets it holds, in order."""
    has_targets = any(p.target is not None for rows in result.splits.values() for p in rows)
    files: dict[str, list[str]] = {}
    for split in SPLITS:
        files[f"rl/{split}.parquet"] = [split]
        if has_targets:
            files[f"sft/{split}.parquet"] = [split]
    if has_targets:
        files["sft/train_all.parquet"] = ["cold_start", "rl"]
    for k in result.few_shot:
        files[f"rl/few_shot_{k}.parquet"] = [f"few_shot_{k}"]
        if has_targets:
            files[f"sft/few_shot_{k}.parquet"] = [f"few_shot_{k}"]
    return files


def split_manifest(result: BuildResult) -> dict[str, Any]:
    """``splits.json`` of a build: which rows (ids, text hashes) went to each split and each file."""
    row_sets = {name: pair_rows(result.splits[name]) for name in SPLITS}
    row_sets.update({f"few_shot_{k}": pair_rows(pairs) for k, pairs in result.few_shot.items()})
    return {"format": SPLIT_FORMAT, "text_hash": TEXT_HASH, "inputs": result.stats.get("inputs"),
            "data_source": result.stats.get("data_source"), "split_settings": split_settings(result.config),
            "row_sets": row_sets, "files": build_files(result)}


def manifest_part(role: str, rows: list[dict[str, Any]], file: str | os.PathLike | None = None,
                  splits: Sequence[str] | None = None, split_settings: Mapping[str, Any] | None = None,
                  note: str | None = None) -> dict[str, Any]:
    """One part of a data manifest: rows used for one purpose (train, selection, audit, ...)."""
    return {"role": role, "file": None if file is None else str(file),
            "splits": None if splits is None else list(splits),
            "split_settings": None if split_settings is None else dict(split_settings), "note": note, "rows": rows}


def write_manifest(path: str | os.PathLike, parts: list[dict[str, Any]], what: str) -> Path:
    """Write a data manifest (temporary name, then moved into place); returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": DATA_FORMAT, "text_hash": TEXT_HASH, "what": what, "parts": parts}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def same_rows(path: str | os.PathLike, parts: list[dict[str, Any]]) -> bool:
    """Whether the manifest at ``path`` lists these parts (roles and texts): a model built from other rows is stale."""
    try:
        body = read_manifest(path)
    except ManifestError:
        return False
    if body is None:
        return False
    have = [(p["role"], digest(p["rows"])) for p in body["parts"]]
    return have == [(p["role"], digest(p["rows"])) for p in parts]


def read_manifest(path: str | os.PathLike) -> dict[str, Any] | None:
    """A data manifest, or None when there is no file; a file that is not one raises ``ManifestError``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"not readable as JSON: {exc}", str(path)) from exc
    if not isinstance(body, dict) or body.get("format") != DATA_FORMAT or not isinstance(body.get("parts"), list):
        raise ManifestError(f"not a data manifest (format {DATA_FORMAT})", str(path))
    if body.get("text_hash") != TEXT_HASH:
        raise ManifestError(f"texts hashed another way ({body.get('text_hash')!r}); rewrite it", str(path))
    return body


def rows_outside(config: BuildConfig, exclude: Sequence[str] = ("test",)) -> list[Pair]:
    """The rows of a build with these settings that are not in ``exclude`` (default: every row but test).

    The split code is the data stage's own, so with the data stage's settings these are exactly the rows
    its build puts outside ``exclude``.
    """
    unknown = set(exclude) - set(SPLITS)
    if unknown:
        raise ValueError(f"no split(s) {sorted(unknown)}; splits: {', '.join(SPLITS)}")
    result = build(config, progress=False)
    return [p for name in SPLITS if name not in exclude for p in result.splits[name]]


def _parquet_rows(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise ManifestError(f"cannot read as parquet: {exc}", str(path)) from exc
    names = set(table.column_names)
    records = table.to_pylist()
    if {"extra_info", "reward_model"} <= names:  # verl RL rows (data_tools' rl/*.parquet)
        rows = []
        for i, r in enumerate(records):
            extra, reward = r.get("extra_info") or {}, r.get("reward_model") or {}
            rows.append(_row(extra.get("id", i), (extra.get("source"), reward.get("ground_truth"))))
        return rows, None
    if "messages" in names:  # verl SFT rows
        rows = [_row(r.get("id", i), (m.get("content") for m in r["messages"] or [])) for i, r in enumerate(records)]
        return rows, "hashes of every message: a source inside a rendered prompt is not matched by its own hash"
    raise ManifestError(f"neither verl RL rows (extra_info, reward_model) nor SFT rows (messages): "
                        f"columns {sorted(names)}", str(path))


def file_rows(path: str | os.PathLike) -> tuple[list[dict[str, Any]], str]:
    """The manifest rows of a parquet file of RL or SFT rows, and where they came from.

    A file of a data_tools build is read through the build's ``splits.json`` (it knows each row's source and
    target, which an SFT row only holds inside its rendered prompt) after its row ids are checked against the
    file; any other file is read row by row.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError("no such file", str(path))
    rows, note = _parquet_rows(path)
    manifest = path.parent.parent / SPLIT_MANIFEST
    rel = f"{path.parent.name}/{path.name}"
    if manifest.is_file():
        body = json.loads(manifest.read_text(encoding="utf-8"))
        if body.get("format") == SPLIT_FORMAT and body.get("text_hash") == TEXT_HASH and rel in body.get("files", {}):
            listed = [r for name in body["files"][rel] for r in body["row_sets"][name]]
            if [r["id"] for r in listed] == [r["id"] for r in rows]:
                return listed, f"the build's {manifest}"
            note = f"{manifest} lists other rows for {rel} (a file of another build?); read from the file: {note}"
    return rows, f"the file's rows{'; ' + note if note else ''}"
