"""One split definition for every stage that splits a corpus: the data stage and the encoder stages.

Each such stage names its split settings as ``splits`` (the experiments pass the profile's ``data``
mapping); :func:`data_args` and :func:`encoder_corpus_args` turn them into the tools' flags with
``data_tools.splits.split_flags``, and :func:`check_split_agreement` refuses, before any stage runs, an
experiment in which two stages split the same corpus with other settings (the encoder would select its
checkpoint or be audited on rows the data stage holds out as test). The settings a stage really runs with
are read back by parsing its command line with the tool's own parser (:func:`data_stage_config`,
:func:`encoder_stage_config`), so a setting hidden in ``args`` counts too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from data_tools.config import BuildConfig
from data_tools.manifest import split_settings
from data_tools.splits import SPLITS, split_flags
from semantic_reward.settings import flag_values, to_plain

from .spec import Experiment, ExperimentError, load_experiment

__all__ = ["SPLITTING_KINDS", "check_split_agreement", "data_args", "data_stage_config", "encoder_corpus_args",
           "encoder_stage_config", "rows_outside_test"]

SPLITTING_KINDS = ("data", "encoder_train", "encoder_audit")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def data_args(spec: Mapping[str, Any]) -> list[str]:
    """``python -m data_tools`` arguments of a data stage, without ``--out``: task, input, direction, splits, args."""
    splits = split_flags(spec["splits"]) if spec.get("splits") is not None else []
    return [str(spec.get("task", "mt")), "--input", *_as_list(spec["input"]),
            *(["--direction", str(spec["direction"])] if spec.get("direction") else []), *splits,
            *_as_list(spec.get("args"))]


def encoder_corpus_args(spec: Mapping[str, Any]) -> list[str]:
    """The corpus and split flags of an encoder stage (``python -m semantic_reward.encoder_tools train|audit``),
    and for an audit the splits it scores (``audit_splits``, default dev)."""
    from ..encoder_tools.__main__ import SPLIT_FLAG_NAMES

    splits = split_flags(spec["splits"], rename=SPLIT_FLAG_NAMES) if spec.get("splits") is not None else []
    # the audit scores the rows the encoder selected its checkpoint on (dev), never the task's test rows
    audited = ["--splits", *_as_list(spec.get("audit_splits") or ["dev"])] if spec["kind"] == "encoder_audit" else []
    return ["--input", *_as_list(spec["input"]), "--direction", str(spec["direction"]), *splits, *audited]


def data_stage_config(spec: Mapping[str, Any], splits_only: bool = False) -> BuildConfig:
    """The ``BuildConfig`` a data stage's command builds with, parsed by data_tools' own command line.

    ``splits_only`` drops the policy tokenizer (it may not exist yet: the base model is prepared from the rows
    outside test before the tokenizer is trained). A row's split does not depend on the tokenizer (a cut source
    is placed by its whole text), so every row the data stage keeps lands in the same split here; where the
    stage cuts sources to a token budget, sources are kept whole and unbounded instead, as the cut stage keeps
    them, so this build also keeps the rows that the stage's filters drop for their cut text (a duplicate
    prefix, a cut whose script share is too low): rows that are in no split of the stage's build. (A row sharing
    a text with one of those could follow it into another split; the check before evaluation would name it.)
    """
    from data_tools.cli import config_from_args, parser

    args = parser().parse_args([*data_args(spec), "--out", "unused"])
    config = config_from_args(args)
    if not splits_only:
        return config
    tokens = {"tokenizer": None, "source_tokens": None}
    filters = {"max_source_units": 10**12} if config.tokens.source_tokens is not None else {}
    plain = to_plain(config)
    plain["tokens"].update(tokens)
    plain["filters"].update(filters)
    return BuildConfig.from_mapping(plain)


def encoder_stage_config(spec: Mapping[str, Any]) -> tuple[BuildConfig, tuple[str, ...] | None]:
    """(corpus settings, audited splits or None) of an encoder stage, parsed by the encoder tools' parser."""
    from ..encoder_tools.__main__ import parser

    kind = spec["kind"]
    head = (["train", "--model", "m", "--out", "o"] if kind == "encoder_train"
            else ["audit", "--encoder", "reward=m", "--out", "o"])
    args = parser().parse_args([*head, *encoder_corpus_args(spec), *_as_list(spec.get("args"))])
    config = BuildConfig.from_mapping(flag_values(args, "corpus"))
    return config, (tuple(args.splits) if kind == "encoder_audit" else None)


def _stage_split(name: str, spec: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    try:
        config = data_stage_config(spec, splits_only=True) if spec["kind"] == "data" else encoder_stage_config(spec)[0]
    except SystemExit as exc:  # argparse's way of refusing: its message went to stderr
        raise ExperimentError(f"stage '{name}': its command line is refused by its tool (see above)") from exc
    return tuple(os.path.realpath(p) for p in config.input.paths), split_settings(config)


def check_split_agreement(exp: Experiment) -> dict[str, Any]:
    """Refuse stages that split the same corpus differently, or an encoder stage without ``splits``.

    Returns {corpus: {"settings": ..., "stages": [...]}} for the record. Stages of other corpora (the headline
    experiment's encoder reads news pairs) are held to the same rule among themselves.
    """
    by_corpus: dict[tuple[str, ...], dict[str, Any]] = {}
    for name, spec in exp.stages.items():
        if spec["kind"] not in SPLITTING_KINDS or spec.get("input") is None:
            continue
        if spec["kind"] != "data" and spec.get("splits") is None:
            raise ExperimentError(
                f"stage '{name}' ({spec['kind']}) names no 'splits': the encoder tools would split "
                f"{spec['input']} with their own defaults, not the data stage's; set splits: ${{profile.data}}")
        corpus, settings = _stage_split(name, spec)
        seen = by_corpus.setdefault(corpus, {"settings": settings, "stages": []})
        if seen["settings"] != settings:
            first = seen["stages"][0]
            diffs = ", ".join(f"{k} {seen['settings'][k]!r} vs {settings[k]!r}" for k in settings
                              if seen["settings"][k] != settings[k])
            raise ExperimentError(
                f"stages '{first}' and '{name}' split {', '.join(corpus)} with other settings ({diffs}): the rows "
                f"one holds out as test or dev could train or select the other's model. Give both the same "
                f"splits (the experiments pass ${{profile.data}})")
        seen["stages"].append(name)
    return {", ".join(corpus): value for corpus, value in by_corpus.items()}


def rows_outside_test(experiment: str | os.PathLike, profile: str, sets: Sequence[str] = (), stage: str = "data",
                      run_dir: str | os.PathLike | None = None) -> tuple[list[Any], dict[str, Any]]:
    """(rows, what they are) of an experiment's data stage that are outside its test split.

    For preparing a base model before the run: the rows come from data_tools' own split code with the data
    stage's own settings (its command line, parsed), so a model trained on them has seen no test row. The
    second value is a manifest part's fields (file, splits, split settings) for ``data_tools.manifest``.
    """
    from data_tools.manifest import rows_outside

    exp = load_experiment(experiment, profile, Path(run_dir or os.devnull), sets)
    if stage not in exp.stages or exp.stages[stage]["kind"] != "data":
        raise ExperimentError(f"{experiment}: no data stage '{stage}' (stages: {', '.join(exp.stages)})")
    config = data_stage_config(exp.stages[stage], splits_only=True)
    kept = [name for name in SPLITS if name != "test"]
    return rows_outside(config, exclude=("test",)), {"file": ", ".join(config.input.paths), "splits": kept,
                                                     "split_settings": split_settings(config)}
