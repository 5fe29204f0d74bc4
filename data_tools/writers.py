"""Writing a build to disk: parquet for verl, stats as JSON, never half-written, never mixed with an older build.

Layout of an output folder (documented in README):

    rl/{cold_start,rl,dev,test}.parquet     verl RL rows (RLHFDataset)
    sft/{cold_start,rl,dev,test}.parquet    verl SFT rows (``messages``: prompt, reference; data_tools.verl_sft_dataset)
    sft/train_all.parquet                   cold_start + rl: the "strong SFT" baseline's data
    rl/few_shot_{K}.parquet, sft/few_shot_{K}.parquet   few-shot subsets of the training rows
    stats.json                              counts, filter reasons, length percentiles, settings
    splits.json                             each split's row ids and text hashes (data_tools.manifest)
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from semantic_reward.keys import DECOY_REFERENCE_KEY, DECOY_SOURCE_KEY

from .errors import EmptyBuildError, OutputError, os_cause
from .manifest import SPLIT_MANIFEST, split_manifest
from .pipeline import BuildResult
from .splits import SPLITS

__all__ = ["write_build", "write_parquet", "format_stats", "check_not_empty", "needed_splits"]

log = logging.getLogger(__name__)


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_parquet(rows: list[dict[str, Any]], path: Path, schema: pa.Schema | None = None) -> None:
    """Rows -> parquet, written to a temporary name and moved into place."""
    table = pa.Table.from_pylist(rows, schema=schema)
    _atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def _rl_schema() -> pa.Schema:
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([
        ("data_source", pa.string()),
        ("prompt", pa.list_(message)),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", pa.struct([
            ("source", pa.string()), ("target_language", pa.string()), ("source_language", pa.string()),
            ("direction", pa.string()), ("task", pa.string()), ("split", pa.string()),
            ("index", pa.int64()), ("id", pa.string()),
            (DECOY_REFERENCE_KEY, pa.string()), (DECOY_SOURCE_KEY, pa.string()),
        ])),
    ])


def _sft_schema() -> pa.Schema:
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([("messages", pa.list_(message)), ("data_source", pa.string()), ("id", pa.string())])


def needed_splits(result: BuildResult) -> list[str]:
    """The splits the recipes read: RL training, and dev/test/cold-start unless set to 0."""
    cfg = result.config.splits
    has_targets = not result.config.input.source_only and result.config.input.format != "text"
    needed = ["rl"]
    if has_targets and cfg.cold_start:
        needed.insert(0, "cold_start")
    needed += [name for name in ("dev", "test") if getattr(cfg, name) > 0]
    return needed


def check_not_empty(result: BuildResult, allow_empty: bool = False) -> list[str]:
    """The needed splits that are empty; raises ``EmptyBuildError`` unless ``allow_empty`` (then warns)."""
    stats = result.stats
    empty = [name for name in needed_splits(result) if not result.splits[name]]
    if not empty:
        return []
    inputs = ", ".join(str(p) for p in stats.get("inputs", []))
    if stats["kept"] == 0:
        dropped = ", ".join(f"{k} {v}" for k, v in stats["filtered"].items() if v) or "none"
        message = (f"{inputs}: no rows to write: read {stats['rows_read']}, "
                   f"invalid skipped {stats['invalid_skipped']}, filtered {stats['filtered_total']} ({dropped})")
    else:
        sizes = ", ".join(f"{k} {v}" for k, v in stats["splits"].items())
        message = (f"{inputs}: split(s) {', '.join(empty)} would be empty ({sizes}); the recipes need them: "
                   "use more data or larger --test/--dev fractions")
    if not allow_empty:
        raise EmptyBuildError(f"{message}; pass --allow-empty to write it anyway")
    log.warning("%s; writing it anyway (--allow-empty)", message)
    return empty


def write_build(result: BuildResult, out_dir: str | Path, allow_empty: bool = False) -> dict[str, str]:
    """Write every split in both formats plus stats.json; returns {name: path}.

    The build is written to a fresh hidden sibling folder and swapped in whole, so
    ``out_dir`` is always either the previous build or this one: no file of an
    earlier build survives, and a crash leaves the previous build untouched.
    Needed splits that are empty raise ``EmptyBuildError`` before anything is
    written, unless ``allow_empty``.
    """
    empty = check_not_empty(result, allow_empty)
    result.stats["empty_splits"] = empty
    for k, n in result.stats["few_shot"].items():
        if n < int(k):
            log.warning("few_shot_%s holds only %d rows: the build has no more training rows", k, n)
    out = _output_folder(out_dir)
    staging = _make_staging(out)
    try:
        files = _write_files(result, staging)
        _swap_in(staging, out)
    except OSError as exc:
        _remove(staging)
        raise OutputError(f"cannot write the build: {os_cause(exc)}", exc.filename or str(out)) from exc
    except BaseException:
        _remove(staging)
        raise
    return {name: str(out / rel) for name, rel in files.items()}


def _write_files(result: BuildResult, folder: Path) -> dict[str, str]:
    """Every file of the build under ``folder``; stats.json last, so a folder without it is incomplete."""
    written: dict[str, str] = {}
    rl_schema, sft_schema = _rl_schema(), _sft_schema()
    has_targets = any(p.target is not None for rows in result.splits.values() for p in rows)

    def put(name: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
        rel = f"{name}.parquet"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / rel, compression="zstd")
        written[name] = rel

    for split in SPLITS:
        put(f"rl/{split}", result.rl_rows(split), rl_schema)
        if has_targets:
            put(f"sft/{split}", result.sft_rows(split), sft_schema)
    if has_targets:
        train_all = result.splits["cold_start"] + result.splits["rl"]
        put("sft/train_all", result.sft_rows("rl", train_all), sft_schema)
    for k, pairs in result.few_shot.items():
        put(f"rl/few_shot_{k}", result.rl_rows("rl", pairs), rl_schema)
        if has_targets:
            put(f"sft/few_shot_{k}", result.sft_rows("rl", pairs), sft_schema)
    manifest = json.dumps(split_manifest(result), ensure_ascii=False, separators=(",", ":")) + "\n"
    (folder / SPLIT_MANIFEST).write_text(manifest, encoding="utf-8")  # each split's row ids and text hashes
    written["splits"] = SPLIT_MANIFEST
    text = json.dumps(result.stats, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    (folder / "stats.json").write_text(text, encoding="utf-8")
    written["stats"] = "stats.json"
    return written


def _output_folder(out_dir: str | Path) -> Path:
    """The absolute output folder, checked: not a file, not a non-build folder, its parent creatable."""
    out = Path(out_dir)
    if out.is_symlink():
        out = out.resolve()  # replace the folder the link points to, keep the link
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise OutputError("exists and is a file, not a folder", str(out))
    if out.is_dir():
        try:
            entries = [e.name for e in os.scandir(out)]
        except OSError as exc:
            raise OutputError(f"cannot read the folder: {os_cause(exc)}", str(out)) from exc
        if entries and "stats.json" not in entries:
            raise OutputError(
                "is a folder that is not empty and holds no data_tools build (no stats.json); a build replaces "
                "its folder whole, so choose a new or empty folder", str(out))
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputError(f"cannot create the folder: {blocker} is a file", str(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder: {os_cause(exc)}", str(out.parent)) from exc
    return out


def _make_staging(out: Path) -> Path:
    """A fresh hidden sibling of ``out`` (same file system, so the swap is a rename)."""
    _remove_abandoned(out)
    for _ in range(100):
        staging = out.parent / f".{out.name}.building-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            staging.mkdir()  # the usual mode (umask applies), unlike tempfile.mkdtemp's 0o700
            return staging
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot write in the folder: {os_cause(exc)}", str(out.parent)) from exc
    raise OutputError("cannot create a staging folder", str(out.parent))  # pragma: no cover


def _remove_abandoned(out: Path) -> None:
    """Staging folders of builds that were killed (their process is gone): remove them."""
    for entry in out.parent.glob(f".{out.name}.building-*"):
        pid = entry.name[len(f".{out.name}.building-"):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(entry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _swap_in(staging: Path, out: Path) -> None:
    """Put ``staging`` at ``out``; the previous build, if any, goes away whole."""
    if not out.exists():
        os.rename(staging, out)
        return
    if _exchange(staging, out):  # one atomic step: out is the old build, then the new one
        _remove(staging)  # now holds the previous build
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(out, old)  # a crash between these two renames leaves the old build in `old`
    try:
        os.rename(staging, out)
    except OSError:
        os.rename(old, out)  # put the previous build back before reporting
        raise
    _remove(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux renameat2(RENAME_EXCHANGE); False where unsupported.

    Hand-written through ctypes because neither the standard library nor a common
    package exposes RENAME_EXCHANGE; elsewhere the caller falls back to two renames.
    """
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(path: Path) -> None:
    """Remove a staging or swapped-out folder; one that resists is reported, never fatal to a finished build."""
    if not path.exists():
        return

    def report(_func, where, exc_info) -> None:
        log.warning("cannot remove %s: %s", where, os_cause(exc_info[1]) if isinstance(exc_info[1], OSError)
                    else exc_info[1])

    shutil.rmtree(path, onerror=report)


def format_stats(stats: dict[str, Any]) -> str:
    """The stats as a short printed table."""
    lines = [f"{stats['data_source']}: read {stats['rows_read']}, invalid skipped {stats['invalid_skipped']}, "
             f"filtered {stats['filtered_total']}, kept {stats['kept']}"]
    dropped = {k: v for k, v in stats["filtered"].items() if v}
    if dropped:
        lines.append("  filtered: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    if stats["invalid_reasons"]:
        lines.append("  invalid: " + ", ".join(f"{k} x{v}" for k, v in stats["invalid_reasons"].items()))
    lines.append(f"  {'split':<12}{'rows':>7}{'src p50':>9}{'src p90':>9}{'tgt p50':>9}{'tgt p90':>9}")
    for name, n in stats["splits"].items():
        lens = stats["lengths_in_units"][name]
        cells = [lens[side].get(p, float("nan")) for side in ("source", "target") for p in ("p50", "p90")]
        lines.append(f"  {name:<12}{n:>7}" + "".join(f"{c:>9.1f}" for c in cells))
    for k, n in stats["few_shot"].items():
        short = f"   WARNING: only {n} of {k} (no more training rows)" if n < int(k) else ""
        lines.append(f"  few_shot_{k:<3}{n:>7}{short}")
    if "truncation" in stats:
        t = stats["truncation"]
        before = t["source_tokens_before"]
        lines.append(f"  truncated {t['truncated']} of {t['rows']} sources to {t['source_tokens']} tokens "
                     f"(before: p50 {before.get('p50', 0):.0f}, p99 {before.get('p99', 0):.0f}, max {before.get('max', 0)})")
    if "lengths_in_tokens" in stats:
        tl = stats["lengths_in_tokens"]
        cells = ", ".join(f"{name} p99 {tl[name].get('p99', 0):.0f} max {tl[name].get('max', 0)}"
                          for name in ("prompt", "reference", "sft"))
        lines.append(f"  tokens ({tl['tokenizer']}): {cells}")
    if stats.get("empty_splits"):
        lines.append(f"  WARNING: empty split(s) written (--allow-empty): {', '.join(stats['empty_splits'])}")
    return "\n".join(lines)
