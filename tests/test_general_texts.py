"""The general-competence texts (issue 20, item 8): the evaluation's CMRC questions and drift passages are held
out from whatever prepares a base model, and the runner's test-row check compares them too."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from data_tools.manifest import MODEL_MANIFEST, manifest_part, pair_rows, read_manifest, text_rows, write_manifest
from semantic_reward.evaluation.inputs import InputError, general_texts, read_cmrc
from semantic_reward.experiment import StageFailed, load_experiment, run_experiment
from semantic_reward.experiment.splits import rows_outside_test
from tests.test_provenance import EXPERIMENT, Stubs, write_corpus

ROOT = Path(__file__).resolve().parents[1]


def write_cmrc(path: Path, passages: int = 50, questions_each: int = 3, seed: int = 0) -> list[str]:
    """CMRC-shaped rows: ``questions_each`` questions per passage of random Han characters; returns the passages."""
    rng = random.Random(seed)
    texts = ["".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(40)) + f"{i}。" for i in range(passages)]
    with path.open("w", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            for q in range(questions_each):
                fh.write(json.dumps({"id": f"p{i}q{q}", "context": text, "question": f"问题{q}？",
                                     "answers": [text[q:q + 3]]}, ensure_ascii=False) + "\n")
    return texts


def test_general_texts_are_the_first_questions_and_the_first_distinct_passages_of_the_whole_file(tmp_path):
    texts = write_cmrc(tmp_path / "cmrc.jsonl", passages=10, questions_each=3)
    questions, passages = general_texts(tmp_path / "cmrc.jsonl", 4, 6)
    assert [q["id"] for q in questions] == ["p0q0", "p0q1", "p0q2", "p1q0"]
    # drift reads beyond the questions asked: 6 passages although the 4 questions come from 2
    assert passages == texts[:6]


def test_a_non_string_answer_alternative_is_left_out_and_a_row_without_one_is_an_error(tmp_path, caplog):
    path = tmp_path / "cmrc.jsonl"
    rows = [{"id": "a", "context": "甲乙丙。", "question": "何？", "answers": ["甲乙", 39648.0]},
            {"id": "b", "context": "丁戊。", "question": "何？", "answers": [12.0]}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:1]) + "\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        [row] = read_cmrc(path)
    assert row["answers"] == ["甲乙"] and "line 1" in caplog.text
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"cmrc\.jsonl, line 2: field 'answers' holds no string answer"):
        read_cmrc(path)


def test_quickstart_trains_the_base_on_passages_the_evaluation_does_not_use(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import quickstart

    texts = write_cmrc(tmp_path / "cmrc.jsonl", passages=50, questions_each=3)
    exp = load_experiment(quickstart.EXPERIMENT, "cpu-tiny", tmp_path / "run")
    ev = exp.profile_values["eval"]
    passages, held = quickstart.general_passages(tmp_path / "cmrc.jsonl", [])
    questions, drift = general_texts(tmp_path / "cmrc.jsonl", ev["cmrc_max_examples"], ev["drift_max_texts"])
    held_out = set(drift) | {q["context"] for q in questions}
    assert held == len(held_out) == ev["drift_max_texts"]  # the questions' passages lie among the drift ones
    assert passages == [t for t in texts if t not in held_out] and not set(passages) & held_out


def _experiment_with_cmrc(tmp_path: Path, cmrc: Path) -> Path:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    text = EXPERIMENT.replace("CORPUS", str(corpus)).replace("ENCODER_INIT", str(tmp_path / "encoder_init"))
    text = text.replace("    base_model: ${profile.model}\n", f"    base_model: ${{profile.model}}\n    cmrc_file: {cmrc}\n")
    path = tmp_path / "leak.yaml"
    path.write_text(text)
    return path


def test_a_base_model_trained_on_a_drift_passage_stops_the_run(tmp_path, monkeypatch):
    texts = write_cmrc(tmp_path / "cmrc.jsonl", passages=50)
    path = _experiment_with_cmrc(tmp_path, tmp_path / "cmrc.jsonl")
    rows, where = rows_outside_test(path, "cpu-tiny")
    policy, encoder_init = tmp_path / "policy", tmp_path / "encoder_init"
    write_manifest(encoder_init / MODEL_MANIFEST, [manifest_part("train", pair_rows(rows), **where)], what="test")
    # passage 40 lies beyond the drift passages: training on it is fine
    clean = [manifest_part("train", pair_rows(rows), **where), manifest_part("train", text_rows([texts[40]]))]
    write_manifest(policy / MODEL_MANIFEST, clean, what="test base")
    run_experiment(load_experiment(path, "cpu-tiny", tmp_path / "run", [f"profile.model={policy}"]),
                   runners=Stubs(monkeypatch).runners)
    check = {r["name"]: r for r in json.loads((tmp_path / "run" / "stages.json").read_text())}["evaluation"]
    assert check["provenance"]["passed"] and check["provenance"]["general_texts"] == 32
    # passage 5 is a drift passage (and a CMRC question's): the check names it
    leaky = [manifest_part("train", pair_rows(rows), **where),
             manifest_part("train", text_rows([texts[5]], prefix="lm"), note="general Chinese text")]
    write_manifest(policy / MODEL_MANIFEST, leaky, what="test base")
    assert read_manifest(policy / MODEL_MANIFEST)["parts"][1]["rows"][0]["id"] == "lm:0"
    with pytest.raises(StageFailed, match=r"rows lm:0 hold the text of test row\(s\) cmrc\.jsonl passage:5"):
        run_experiment(load_experiment(path, "cpu-tiny", tmp_path / "run2", [f"profile.model={policy}"]),
                       runners=Stubs(monkeypatch).runners)
