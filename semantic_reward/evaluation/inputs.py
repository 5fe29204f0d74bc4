"""Reading the evaluation's inputs: the test split, generation files and CMRC questions.

Every bad row is an error naming the file, the line (1-based) and the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..languages import canonical_language

__all__ = ["InputError", "read_test_rows", "add_prompts", "read_generations", "read_cmrc", "general_texts"]


logger = logging.getLogger(__name__)


class InputError(ValueError):
    """An input file is missing or malformed; the message names file, line and field."""


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.exists():
        raise InputError(f"{path}: file does not exist")
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}, line {line_no}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise InputError(f"{path}, line {line_no}: expected a JSON object, got {type(row).__name__}")
            yield line_no, row


def _text(path: Path, where: str, row: dict[str, Any], field: str, allow_empty: bool = False) -> str:
    value = row.get(field)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise InputError(f"{path}, {where}: field {field!r} must be a non-empty string, got {value!r}")
    return value


def read_test_rows(path: str | Path, target_language: str, max_examples: int | None = None) -> list[dict[str, Any]]:
    """Rows {id, source, reference, prompt} from data_tools' RL parquet or a JSONL with source/reference.

    A parquet row whose ``extra_info.target_language`` names another language than
    ``target_language`` is an error (the scores would use the wrong tokenisation).
    JSONL rows may carry their own ``prompt`` (chat messages) and ``id``.
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if not path.exists():
            raise InputError(f"{path}: file does not exist")
        for i, raw in enumerate(pq.read_table(path).to_pylist()):
            where = f"row {i}"
            extra = raw.get("extra_info") or {}
            reference = _text(path, where, raw.get("reward_model") or {}, "ground_truth")
            lang = extra.get("target_language")
            if lang and canonical_language(lang) != canonical_language(target_language):
                raise InputError(f"{path}, {where}: extra_info.target_language is {lang!r} but the evaluation's "
                                 f"target_language is {target_language!r}")
            if not isinstance(raw.get("prompt"), list) or not raw["prompt"]:
                raise InputError(f"{path}, {where}: field 'prompt' must be a list of chat messages")
            rows.append({"id": extra.get("id") or str(i), "source": extra.get("source"), "reference": reference,
                         "prompt": raw["prompt"]})
            if max_examples is not None and len(rows) >= max_examples:
                break
    else:
        for line_no, raw in _jsonl(path):
            where = f"line {line_no}"
            prompt = raw.get("prompt")
            if prompt is not None and not (isinstance(prompt, list) and prompt):
                raise InputError(f"{path}, {where}: field 'prompt' must be a list of chat messages when present")
            rows.append({"id": str(raw.get("id", line_no)), "source": _text(path, where, raw, "source"),
                         "reference": _text(path, where, raw, "reference"), "prompt": prompt})
            if max_examples is not None and len(rows) >= max_examples:
                break
    if not rows:
        raise InputError(f"{path}: no test rows")
    return rows


def add_prompts(rows: list[dict[str, Any]], source_language: str, target_language: str, test_file: str) -> None:
    """Give rows without a prompt data_tools' translation prompt for SRC-TGT (what training used)."""
    missing = [r for r in rows if not r.get("prompt")]
    if not missing:
        return
    from data_tools import BuildConfig
    from data_tools.prompts import PromptBuilder

    builder = PromptBuilder(BuildConfig.from_mapping({"direction": f"{source_language}-{target_language}",
                                                      "input": {"paths": [str(test_file)]}}))
    for row in missing:
        row["prompt"] = builder.messages(row["source"])


def read_generations(path: str | Path, rows: Sequence[dict[str, Any]], field: str = "hypothesis") -> list[str]:
    """The ``field`` of each line of a JSONL, aligned to ``rows``.

    By ``id`` when every line has one; otherwise by order (the first len(rows) lines),
    and then a line's ``reference``, when present, must equal its row's.
    """
    path = Path(path)
    lines = list(_jsonl(path))
    if lines and all("id" in r for _, r in lines) and all(row.get("id") is not None for row in rows):
        by_id: dict[str, tuple[int, dict[str, Any]]] = {}
        for line_no, r in lines:
            by_id.setdefault(str(r["id"]), (line_no, r))
        absent = [str(row["id"]) for row in rows if str(row["id"]) not in by_id]
        if absent:
            raise InputError(f"{path}: no line for {len(absent)} of {len(rows)} test ids (first: {absent[0]!r})")
        picked = [by_id[str(row["id"])] for row in rows]
    else:
        if len(lines) < len(rows):
            raise InputError(f"{path}: {len(lines)} lines for {len(rows)} test rows (aligned by order: lines "
                             "have no 'id')")
        picked = lines[: len(rows)]
        for (line_no, r), row in zip(picked, rows, strict=True):
            if "reference" in r and row.get("reference") is not None and r["reference"] != row["reference"]:
                raise InputError(f"{path}, line {line_no}: field 'reference' differs from test row {row['id']!r}; "
                                 "the file is not aligned with the test split")
    return [_text(path, f"line {line_no}", r, field, allow_empty=True) for line_no, r in picked]


def read_cmrc(path: str | Path, max_examples: int | None = None) -> list[dict[str, Any]]:
    """CMRC 2018 questions {id, context, question, answers: [str]}.

    An answer alternative that is not a string (the public dev file has a spreadsheet number among one row's
    answers) is left out and counted in a warning; a row with no string answer is an error.
    """
    path = Path(path)
    rows = []
    dropped: list[str] = []
    for line_no, raw in _jsonl(path):
        where = f"line {line_no}"
        answers = raw.get("answers")
        if isinstance(answers, dict):
            answers = answers.get("text")
        if not isinstance(answers, list) or not answers:
            raise InputError(f"{path}, {where}: field 'answers' must be a non-empty list (or {{'text': [...]}})")
        given = [a["text"] if isinstance(a, dict) else a for a in answers]
        texts = [t for t in given if isinstance(t, str)]
        if not texts:
            raise InputError(f"{path}, {where}: field 'answers' holds no string answer")
        if len(texts) < len(given):
            dropped.append(where)
        rows.append({"id": str(raw.get("id", line_no)), "context": _text(path, where, raw, "context"),
                     "question": _text(path, where, raw, "question"), "answers": texts})
        if max_examples is not None and len(rows) >= max_examples:
            break
    if not rows:
        raise InputError(f"{path}: no CMRC questions")
    if dropped:
        logger.warning("%s: non-string answer alternatives left out at %s", path, ", ".join(dropped))
    return rows


def general_texts(path: str | Path, max_examples: int | None, drift_max_texts: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The evaluation's general-competence inputs: (the first ``max_examples`` CMRC questions, drift passages).

    Drift reads the first ``drift_max_texts`` distinct passages of the whole file (not only those of the
    questions asked), so a tiny run measures drift on enough text; whatever prepares a base model keeps these
    passages out of its training text (the experiment's test-row check compares them too).
    """
    questions = read_cmrc(path, max_examples)
    passages = list(dict.fromkeys(r["context"] for r in read_cmrc(path)))[:drift_max_texts]
    return questions, passages
