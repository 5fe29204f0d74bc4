"""What each trained component saw, in its stage record, and the check before evaluation that no test row was.

Every stage record gets a ``data`` entry (written by the runner when the stage finishes): the data stage's
split manifest (each split's row ids), and for each trained component its parts (train, selection,
validation, audit) with file, row ids and a digest of the texts; the rows' text hashes lie in
``<stage>/data.json`` (``data_tools.manifest``). Trained components are the run's encoder_train,
encoder_audit (its tau may set the reward), sft and grpo stages, and every model from outside the run
folder that a stage starts from or evaluates with (the base policy, the encoder's initial weights): such a
model lists its own data in ``<model>/training_data.json``, or it is recorded as unknown (a hub model), which
is reported and does not stop the run.

Before the evaluation stage runs, :func:`check_no_test_leak` compares the hashes of every text of its
``test_file`` (sources and references) with every text a component saw, and stops the run naming the
component, its file and the row ids of both sides if one matches.
The evaluation's CMRC passages (those of the questions asked and the drift passages) are held out the
same way: drift measures lost general ability only on text no component trained on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from data_tools.manifest import (MODEL_MANIFEST, SPLIT_MANIFEST, ManifestError, digest, file_rows, manifest_part,
                                 pair_rows, read_manifest, split_settings, write_manifest)

from .spec import Experiment, planned_outputs
from .splits import encoder_stage_config

__all__ = ["STAGE_MANIFEST", "TRAINED_KINDS", "TestRowLeak", "check_no_test_leak", "external_models", "stage_data"]

log = logging.getLogger("semantic_reward.experiment")

TRAINED_KINDS = ("encoder_train", "encoder_audit", "sft", "grpo")
STAGE_MANIFEST = "data.json"
_MODEL_KEYS = {"encoder_train": ("model_in",), "sft": ("model_in",), "grpo": ("model_in", "encoder"),
               "evaluation": ("base_model", "encoder")}


class TestRowLeak(RuntimeError):
    """A test row was seen by a trained component; ``result`` is the check's record."""

    __test__ = False  # not a pytest test class

    def __init__(self, message: str, result: dict[str, Any]):
        super().__init__(message)
        self.result = result


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _summary(part: Mapping[str, Any]) -> dict[str, Any]:
    rows = part["rows"]
    out = {"role": part["role"], "file": part["file"], "splits": part.get("splits"), "rows": len(rows),
           "ids": [r["id"] for r in rows], "text_digest": digest(rows)}
    if part.get("split_settings"):
        out["split_settings"] = part["split_settings"]
    if part.get("note"):
        out["note"] = part["note"]
    return out


def _encoder_parts(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An encoder stage's rows recomputed from its settings with data_tools (where the tool wrote no manifest)."""
    from data_tools.pipeline import build

    config, audited = encoder_stage_config(spec)
    result = build(config, progress=False)
    groups = {"train": ("cold_start", "rl"), "selection": ("dev",)} if audited is None else {"audit": audited}
    note = "recomputed from the stage's settings: the tool wrote no manifest"
    return [manifest_part(role, pair_rows([p for s in splits for p in result.splits[s]]),
                          file=", ".join(config.input.paths), splits=splits, split_settings=split_settings(config),
                          note=note) for role, splits in groups.items()]


def _stage_parts(exp: Experiment, name: str, spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """(parts, where they came from) of a trained stage."""
    from ..encoder_tools.__main__ import AUDIT_MANIFEST

    kind = spec["kind"]
    outputs = planned_outputs(kind, exp.run_dir / name, spec)
    if kind in ("encoder_train", "encoder_audit"):
        own = (Path(outputs["model_out"]) / MODEL_MANIFEST if kind == "encoder_train"
               else Path(outputs["out"]) / AUDIT_MANIFEST)
        manifest = read_manifest(own)
        if manifest is not None:
            return manifest["parts"], str(own)
        if spec.get("input") is None:
            return [], "unknown: the stage wrote no manifest and names no input"
        return _encoder_parts(spec), "recomputed from the stage's settings"
    parts = []
    for role, key in (("train", "train_files"), ("validation", "val_files")):
        for path in _as_list(spec.get(key)):
            if not Path(path).is_file():
                parts.append(manifest_part(role, [], file=path, note="unknown: no such file when recorded"))
                continue
            rows, how = file_rows(path)
            parts.append(manifest_part(role, rows, file=path, note=f"rows from {how}"))
    return parts, f"the stage's {', '.join(k for k in ('train_files', 'val_files') if spec.get(k))}"


def stage_data(exp: Experiment, name: str, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``data`` entry of a finished stage's record (None for a stage that trains nothing and splits nothing)."""
    kind = spec["kind"]
    if kind == "data":
        path = Path(planned_outputs(kind, exp.run_dir / name, spec)["out"]) / SPLIT_MANIFEST
        if not path.is_file():
            return {"manifest": None, "note": f"no {path}: the build wrote no split manifest"}
        import json

        body = json.loads(path.read_text(encoding="utf-8"))
        return {"manifest": str(path), "split_settings": body.get("split_settings"),
                "splits": {k: {"rows": len(v), "ids": [r["id"] for r in v], "text_digest": digest(v)}
                           for k, v in body["row_sets"].items()}}
    if kind not in TRAINED_KINDS:
        return None
    parts, source = _stage_parts(exp, name, spec)
    path = write_manifest(exp.run_dir / name / STAGE_MANIFEST, parts,
                          what=f"rows stage '{name}' ({kind}) trained, selected or audited on")
    return {"manifest": str(path), "from": source, "parts": [_summary(p) for p in parts]}


def _stage_output(path: str, exp: Experiment) -> bool:
    """Whether ``path`` lies in a stage's folder of this run (a model the run made, described by that stage)."""
    here = Path(os.path.abspath(path))
    return any(here.is_relative_to(os.path.abspath(exp.run_dir / name)) for name in exp.stages)


def external_models(exp: Experiment, before: str | None = None) -> dict[str, list[str]]:
    """Models no stage of the run made (the base policy, the encoder's initial weights, a hub model; the
    quickstart's prep/ folder inside the run folder included) -> the stages up to ``before`` that use them."""
    out: dict[str, list[str]] = {}
    for name, spec in exp.stages.items():
        values = [spec.get(k) for k in _MODEL_KEYS.get(spec["kind"], ())]
        if spec["kind"] == "evaluation":
            values += list((spec.get("systems") or {}).values())
        for value in values:
            if value is not None and not _stage_output(str(value), exp):
                users = out.setdefault(str(value), [])
                if name not in users:
                    users.append(name)
        if name == before:
            break
    return out


def _model_parts(path: str) -> tuple[list[dict[str, Any]] | None, str]:
    folder = Path(path)
    if not folder.is_dir():
        return None, "not a local folder (a hub model?): its training data is unknown"
    manifest = read_manifest(folder / MODEL_MANIFEST)
    if manifest is None:
        return None, f"no {MODEL_MANIFEST} in the model folder: its training data is unknown"
    return manifest["parts"], str(folder / MODEL_MANIFEST)


def _recorded_parts(exp: Experiment, record: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
    data = record.get("data") or {}
    if data.get("manifest"):
        try:
            manifest = read_manifest(data["manifest"])
        except ManifestError:
            manifest = None
        if manifest is not None:
            return manifest["parts"], data["manifest"]
    return _stage_parts(exp, record["name"], exp.stages[record["name"]])  # a record from before manifests


def check_no_test_leak(exp: Experiment, records: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any]:
    """Before evaluation stage ``name``: no text of its test_file in anything a trained component saw.

    Returns the check's record; raises :class:`TestRowLeak` (its message names the component, file and row
    ids) when a test row was seen.
    """
    spec = exp.stages[name]
    test_file = spec.get("test_file")
    if not test_file:
        return {"checked": False, "reason": f"stage '{name}' names no test_file"}
    try:
        test_rows, how = file_rows(test_file)
    except ManifestError as exc:
        raise TestRowLeak(f"cannot read the test rows to check them: {exc}",
                          {"checked": False, "passed": False, "test_file": str(test_file), "reason": str(exc)}) from exc
    index: dict[str, list[str]] = {}
    for row in test_rows:
        for h in row["texts"]:
            index.setdefault(h, []).append(row["id"])
    general = _general_rows(exp, spec)
    for row in general:
        for h in row["texts"]:
            index.setdefault(h, []).append(row["id"])

    components: list[tuple[str, str, list[dict[str, Any]], str]] = []
    for record in records:
        if record["name"] == name:
            break
        if record["kind"] in TRAINED_KINDS and record["name"] in exp.stages:
            parts, source = _recorded_parts(exp, record)
            components.append(("stage", record["name"], parts, source))
    unknown = []
    for model, users in external_models(exp, before=name).items():
        parts, source = _model_parts(model)
        if parts is None:
            unknown.append({"model": model, "used_by": users, "why": source})
            log.warning("      %s: provenance of %s (used by %s) is unknown: %s", name, model, ", ".join(users), source)
        else:
            components.append(("model", model, parts, source))

    leaks, seen = [], []
    for kind, who, parts, source in components:
        entry = {"kind": kind, "name": who, "from": source, "parts": []}
        for part in parts:
            hits = [(row["id"], index[h]) for row in part["rows"] for h in row["texts"] if h in index]
            entry["parts"].append({"role": part["role"], "file": part.get("file"), "rows": len(part["rows"])})
            if part.get("note", "") and str(part["note"]).startswith("unknown"):
                unknown.append({"stage" if kind == "stage" else "model": who, "role": part["role"],
                                "file": part.get("file"), "why": part["note"]})
            if hits:
                leaks.append({"kind": kind, "name": who, "role": part["role"], "file": part.get("file"),
                              "row_ids": sorted({r for r, _ in hits}),
                              "test_row_ids": sorted({t for _, ids in hits for t in ids})})
        if not parts:
            unknown.append({"stage" if kind == "stage" else "model": who, "why": source})
        seen.append(entry)
    result = {"checked": True, "passed": not leaks, "test_file": str(test_file), "test_rows": len(test_rows),
              "test_rows_from": how, "general_texts": len(general), "components": seen, "unknown": unknown, "leaks": leaks}
    if leaks:
        lines = [f"{leak['kind']} '{leak['name']}' ({leak['role']}, {leak['file']}): rows "
                 f"{_ids(leak['row_ids'])} hold the text of test row(s) {_ids(leak['test_row_ids'])}" for leak in leaks]
        raise TestRowLeak(f"test rows of {test_file} were seen by a trained component, so the evaluation would not "
                          f"measure held-out data: {'; '.join(lines)}. Give every stage the data stage's splits "
                          f"and prepare base models on the rows outside test (and outside the evaluation's CMRC "
                          f"passages)", result)
    return result


def _general_rows(exp: Experiment, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The evaluation's general-competence texts (CMRC passages of the questions asked and of drift) as rows.

    They are held out like test rows: drift measures lost general ability only on text no component trained on.
    """
    if not spec.get("cmrc_file"):
        return []
    from data_tools.manifest import text_rows

    from ..evaluation.inputs import general_texts

    ev = exp.profile_values.get("eval", {})
    questions, passages = general_texts(spec["cmrc_file"], ev.get("cmrc_max_examples"), ev.get("drift_max_texts", 32))
    texts = list(dict.fromkeys([*(q["context"] for q in questions), *passages]))
    return text_rows(texts, prefix=f"{Path(str(spec['cmrc_file'])).name} passage")


def _ids(ids: Sequence[str], limit: int = 12) -> str:
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more
