"""No leak by construction (issue 20, item 2): one split for every stage that splits a corpus, each stage's
data in its record, and the check before evaluation that no trained component saw a test row.

The experiment runs with stub stages where a stage would train: the data stage is data_tools' real command
line (in-process), the encoder stages are the encoder tools' real ``main`` with the model work replaced, so
the rows they record are the rows the real tools would use."""

from __future__ import annotations

import json
import random
import shlex
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_tools.config import BuildConfig
from data_tools.manifest import (MODEL_MANIFEST, SPLIT_MANIFEST, file_rows, manifest_part, pair_rows, read_manifest,
                                 text_hash, write_manifest)
from data_tools.pipeline import build
from semantic_reward.experiment import ExperimentError, StageFailed, load_experiment, run_experiment
from semantic_reward.experiment.splits import (check_split_agreement, data_args, data_stage_config,
                                               encoder_corpus_args, encoder_stage_config, rows_outside_test)
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
CONSONANTS = [chr(c) for c in range(0x0F40, 0x0F6A) if c != 0x0F48]
VOWELS = ["", "\u0f72", "\u0f74", "\u0f7a", "\u0f7c"]


def write_corpus(path: Path, rows: int = 160, seed: int = 0) -> Path:
    """Distinct zh-bo pairs of random Han characters and Tibetan syllables (every filter keeps them)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            bo = "་".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(rng.randint(4, 8))) + "།"
            zh = "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(5, 10))) + "。"
            fh.write(json.dumps({"id": f"r{i}", "zh": zh, "bo": bo}, ensure_ascii=False) + "\n")
    return path


EXPERIMENT = """
name: leak_check
inputs:
  corpus: CORPUS
stages:
  data:
    kind: data
    input: ${inputs.corpus}
    direction: zh-bo
    splits: ${profile.data}
  encoder:
    kind: encoder_train
    model_in: ENCODER_INIT
    input: ${inputs.corpus}
    direction: zh-bo
    splits: ${profile.data}
  encoder_audit:
    kind: encoder_audit
    model_in: ${stage:encoder.model_out}
    input: ${inputs.corpus}
    direction: zh-bo
    splits: ${profile.data}
    audit_splits: [dev]
  cold_start:
    kind: sft
    recipe: sft_cold_start
    model_in: ${profile.model}
    train_files: ${stage:data.out}/sft/cold_start.parquet
    val_files: ${stage:data.out}/sft/dev.parquet
  evaluation:
    kind: evaluation
    test_file: ${stage:data.out}/rl/test.parquet
    base_model: ${profile.model}
    encoder: ${stage:encoder_audit.model_out}
    systems: {base: "${profile.model}", cold_start: "${stage:cold_start.model_out}"}
"""


class Stubs:
    """The data stage's real command, the encoder tools' real main (no model work), and a recorded evaluation.

    ``encoder_flags`` replaces the split flags the encoder tools get (None: the stage's own, as the runner
    passes them; [] : the tools' defaults, as before issue 20).
    """

    def __init__(self, monkeypatch, encoder_flags: list[str] | None = None):
        import semantic_reward.encoder_tools.audit as audit
        import semantic_reward.encoder_tools.train as train

        self.calls: list[str] = []
        self.encoder_flags = encoder_flags

        def fake_train(cfg, src, tgt, dev_src, dev_tgt):
            final = Path(cfg.output_dir) / "final"
            final.mkdir(parents=True)
            return str(final)

        def fake_reports(results, out_dir, title="Encoder audit"):
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            (Path(out_dir) / "audit.json").write_text(json.dumps(results))
            return {"json": str(Path(out_dir) / "audit.json")}

        monkeypatch.setattr(train, "train_encoder", fake_train)
        monkeypatch.setattr(train, "load_as_sentence_transformer", lambda path, *a, **k: path)
        monkeypatch.setattr(audit, "audit_encoder",
                            lambda model, src, tgt, *a, **k: {"verdict": "usable", "verdict_reasons": []})
        monkeypatch.setattr(audit, "write_reports", fake_reports)

    def _corpus_args(self, spec) -> list[str]:
        args = encoder_corpus_args(spec)
        if self.encoder_flags is None:
            return args
        cut = args.index("--split-seed")
        end = args.index("--splits") if "--splits" in args else len(args)
        return [*args[:cut], *self.encoder_flags, *args[end:]]

    def data(self, ctx):
        from data_tools.cli import main

        self.calls.append(ctx.name)
        assert main([*data_args(ctx.spec), "--out", ctx.outputs["out"], "--quiet"]) == 0
        return {"model_in": None, "model_out": None}

    def encoder(self, ctx):
        from semantic_reward.encoder_tools.__main__ import main

        self.calls.append(ctx.name)
        if ctx.kind == "encoder_train":
            cmd = ["train", "--model", str(ctx.spec["model_in"]), *self._corpus_args(ctx.spec), "--out",
                   ctx.outputs["out"]]
        else:
            cmd = ["audit", *self._corpus_args(ctx.spec), "--encoder", f"reward={ctx.spec['model_in']}",
                   "--out", ctx.outputs["out"]]
        assert main(cmd) == 0
        return {"model_in": str(ctx.spec["model_in"]), "model_out": ctx.outputs["model_out"]}

    def trainer(self, ctx):
        self.calls.append(ctx.name)
        Path(ctx.outputs["model_out"]).mkdir(parents=True)
        return {"model_in": str(ctx.spec["model_in"]), "model_out": ctx.outputs["model_out"]}

    def evaluation(self, ctx):
        self.calls.append(ctx.name)
        return {"model_in": None, "model_out": None}

    @property
    def runners(self):
        return {"data": self.data, "encoder_train": self.encoder, "encoder_audit": self.encoder, "sft": self.trainer,
                "grpo": self.trainer, "evaluation": self.evaluation}


@pytest.fixture
def setup(tmp_path):
    """(experiment file, corpus, base policy folder, encoder init folder): the base models carry manifests of the
    rows outside test, as scripts/quickstart.py prepares them."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    encoder_init, policy = tmp_path / "encoder_init", tmp_path / "policy"
    path = tmp_path / "leak.yaml"
    path.write_text(EXPERIMENT.replace("CORPUS", str(corpus)).replace("ENCODER_INIT", str(encoder_init)))
    rows, where = rows_outside_test(path, "cpu-tiny")
    for folder in (encoder_init, policy):
        write_manifest(folder / MODEL_MANIFEST, [manifest_part("train", pair_rows(rows), **where)], what="test base")
    return path, corpus, policy, encoder_init


def _load(path: Path, run: Path, policy: Path):
    return load_experiment(path, "cpu-tiny", run, [f"profile.model={policy}"])


def _records(run: Path) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads((run / "stages.json").read_text())}


def _split_ids(build_dir: Path, name: str) -> list[str]:
    """Row ids of a split read from its RL parquet file (not from any manifest)."""
    return [r["extra_info"]["id"] for r in pq.read_table(build_dir / "rl" / f"{name}.parquet").to_pylist()]


def test_a_clean_run_records_every_stage_data_and_passes_the_check(tmp_path, setup, monkeypatch):
    path, corpus, policy, encoder_init = setup
    stubs = Stubs(monkeypatch)
    run = tmp_path / "run"
    run_experiment(_load(path, run, policy), runners=stubs.runners)
    assert stubs.calls == ["data", "encoder", "encoder_audit", "cold_start", "evaluation"]
    rec = _records(run)
    out = run / "data" / "out"
    ids = {name: _split_ids(out, name) for name in ("cold_start", "rl", "dev", "test")}
    assert all(ids.values())
    # the data stage's record: each split's row ids, as its parquet files hold them
    assert {k: v["ids"] for k, v in rec["data"]["data"]["splits"].items() if k in ids} == ids
    # encoder: trained on cold_start + rl, selected on dev; audited on dev: the data stage's own split
    train, selection = rec["encoder"]["data"]["parts"]
    assert (train["role"], selection["role"]) == ("train", "selection")
    assert train["ids"] == ids["cold_start"] + ids["rl"] and selection["ids"] == ids["dev"]
    [audited] = rec["encoder_audit"]["data"]["parts"]
    assert audited["role"] == "audit" and audited["ids"] == ids["dev"]
    # the SFT stage: its train/val files' rows, with source and reference hashes from the build's manifest
    sft_train, sft_val = rec["cold_start"]["data"]["parts"]
    assert sft_train["ids"] == ids["cold_start"] and sft_val["ids"] == ids["dev"]
    manifest = read_manifest(rec["cold_start"]["data"]["manifest"])
    first = pq.read_table(out / "rl" / "cold_start.parquet").to_pylist()[0]
    assert manifest["parts"][0]["rows"][0]["texts"] == [text_hash(first["extra_info"]["source"]),
                                                        text_hash(first["reward_model"]["ground_truth"])]
    # the check ran before the evaluation and passed; it looked at every trained component and both base models
    check = rec["evaluation"]["provenance"]
    assert check["checked"] and check["passed"] and check["leaks"] == [] and check["test_rows"] == len(ids["test"])
    assert [c["name"] for c in check["components"]] == ["encoder", "encoder_audit", "cold_start", str(encoder_init),
                                                         str(policy)]
    assert check["unknown"] == []


def test_the_runner_refuses_an_experiment_whose_encoder_saw_a_test_row(tmp_path, setup, monkeypatch):
    """The encoder tools' old defaults (test 0.05, dev 0.05 against the data stage's 0.1/0.1): the encoder selects
    its checkpoint on rows the data stage holds out as test. The runner stops before the evaluation, naming them."""
    path, corpus, policy, _ = setup
    stubs = Stubs(monkeypatch, encoder_flags=[])
    run = tmp_path / "run"
    with pytest.raises(StageFailed, match=r"stage 'evaluation' failed: test rows of .*test\.parquet were seen .*"
                                          r"stage 'encoder' \(selection, .*corpus\.jsonl\): rows r\d+"):
        run_experiment(_load(path, run, policy), runners=stubs.runners)
    assert "evaluation" not in stubs.calls
    rec = _records(run)
    assert rec["evaluation"]["status"] == "failed" and "seen by a trained component" in rec["evaluation"]["cause"]
    test_ids = set(_split_ids(run / "data" / "out", "test"))
    old = build(BuildConfig.from_mapping({"direction": "zh-bo", "input": {"paths": [str(corpus)]}}))
    leaks = {(leak["name"], leak["role"]): leak for leak in rec["evaluation"]["provenance"]["leaks"]}
    expected = {("encoder", "train"): {p.id for s in ("cold_start", "rl") for p in old.splits[s]} & test_ids,
                ("encoder", "selection"): {p.id for p in old.splits["dev"]} & test_ids,
                ("encoder_audit", "audit"): {p.id for p in old.splits["dev"]} & test_ids}
    assert expected[("encoder", "selection")]  # the corpus shows the leak
    assert {k: set(v["row_ids"]) for k, v in leaks.items()} == {k: v for k, v in expected.items() if v}
    # each leaked row is named with the test row it repeats (same ids: one corpus)
    assert all(set(v["row_ids"]) == set(v["test_row_ids"]) for v in leaks.values())
    assert not rec["evaluation"]["provenance"]["passed"]


def test_a_base_model_trained_on_test_rows_stops_the_run_and_one_without_manifest_is_unknown(tmp_path, setup,
                                                                                             monkeypatch):
    path, corpus, policy, _ = setup
    everything = build(BuildConfig.from_mapping({"direction": "zh-bo", "input": {"paths": [str(corpus)]}}))
    every_row = [p for rows in everything.splits.values() for p in rows]  # what the old quickstart trained on
    write_manifest(policy / MODEL_MANIFEST, [manifest_part("train", pair_rows(every_row), file=str(corpus))], "old")
    with pytest.raises(StageFailed, match=rf"model '{policy}' \(train, .*corpus\.jsonl\): rows"):
        run_experiment(_load(path, tmp_path / "run", policy), runners=Stubs(monkeypatch).runners)

    hub = tmp_path / "no_manifest"
    hub.mkdir()
    stubs = Stubs(monkeypatch)
    run_experiment(_load(path, tmp_path / "run2", hub), runners=stubs.runners)
    check = _records(tmp_path / "run2")["evaluation"]["provenance"]
    assert check["passed"] and stubs.calls[-1] == "evaluation"
    [unknown] = check["unknown"]
    assert unknown["model"] == str(hub) and unknown["used_by"] == ["cold_start", "evaluation"]
    assert "no training_data.json" in unknown["why"]


def test_an_sft_stage_trained_on_test_rows_is_named_with_its_file(tmp_path, setup, monkeypatch):
    path, corpus, policy, _ = setup
    text = path.read_text().replace("sft/cold_start.parquet", "sft/train_all.parquet").replace(
        "val_files: ${stage:data.out}/sft/dev.parquet", "val_files: ${stage:data.out}/sft/test.parquet")
    path.write_text(text)
    with pytest.raises(StageFailed, match=r"stage 'cold_start' \(validation, .*sft/test\.parquet\)"):
        run_experiment(_load(path, tmp_path / "run", policy), runners=Stubs(monkeypatch).runners)


def test_stages_that_split_one_corpus_differently_are_refused_before_anything_runs(tmp_path, setup, monkeypatch):
    path, corpus, policy, _ = setup
    stubs = Stubs(monkeypatch)
    exp = load_experiment(path, "cpu-tiny", tmp_path / "run",
                          [f"profile.model={policy}", "stages.encoder.splits.seed=7"])
    with pytest.raises(ExperimentError, match=r"stages 'data' and 'encoder' split .*corpus\.jsonl with other settings "
                                              r"\(seed 0 vs 7"):
        run_experiment(exp, runners=stubs.runners)
    assert stubs.calls == []
    path.write_text(path.read_text().replace("    splits: ${profile.data}\n    audit_splits", "    audit_splits"))
    with pytest.raises(ExperimentError, match="stage 'encoder_audit' .* names no 'splits'"):
        run_experiment(_load(path, tmp_path / "run2", policy), runners=stubs.runners)
    assert stubs.calls == []


def test_the_experiments_give_every_splitting_stage_the_profile_split(tmp_path):
    for name in ("mt_zh_bo", "headline_bo"):
        for profile in ("cpu-tiny", "paper"):
            exp = load_experiment(ROOT / "recipes" / "experiments" / f"{name}.yaml", profile, tmp_path / name)
            agreement = check_split_agreement(exp)
            stages = sorted(s for v in agreement.values() for s in v["stages"])
            assert stages == ["data", "encoder", "encoder_audit"], (name, profile)
            data = exp.profile_values["data"]
            for value in agreement.values():
                assert {k: value["settings"][k] for k in data} == data
            _, audited = encoder_stage_config(exp.stages["encoder_audit"])
            assert audited == ("dev",)


@pytest.mark.shared_data
def test_encoder_tools_and_the_data_stage_split_the_real_corpus_alike(tmp_path, tiny_tokenizer_dir):
    """mt_zh_bo at cpu-tiny: the data stage's command and the encoder tools give each split the same rows, and
    the rows a base model is prepared on are exactly those outside test. With the tools' old defaults the
    encoder's dev and test (its selection and audit rows) were all inside the task's test split."""
    from data_tools.cli import main

    corpus = SHARED_DATA / "bo_zh_news.jsonl"
    if not corpus.exists():
        pytest.skip(f"{corpus} is absent")
    experiment = ROOT / "recipes" / "experiments" / "mt_zh_bo.yaml"
    sets = [f"inputs.corpus={corpus}", f"inputs.encoder_corpus={corpus}", f"profile.model={tiny_tokenizer_dir}"]
    exp = load_experiment(experiment, "cpu-tiny", tmp_path / "run", sets)
    assert main([*data_args(exp.stages["data"]), "--out", str(tmp_path / "data"), "--quiet"]) == 0
    split = json.loads((tmp_path / "data" / SPLIT_MANIFEST).read_text())["row_sets"]
    assert [r["id"] for r in split["test"]] == _split_ids(tmp_path / "data", "test")
    for stage in ("encoder", "encoder_audit"):
        config, _ = encoder_stage_config(exp.stages[stage])
        result = build(config)
        for name in ("cold_start", "rl", "dev", "test"):
            assert pair_rows(result.splits[name]) == split[name], (stage, name)
    rows, where = rows_outside_test(experiment, "cpu-tiny", sets)
    test_ids = {r["id"] for r in split["test"]}
    all_ids = {r["id"] for rows_ in split.values() for r in rows_}
    assert {p.id for p in rows} == all_ids - test_ids and len(test_ids) > 0
    assert where["splits"] == ["cold_start", "rl", "dev"] and where["split_settings"]["test"] == 0.1
    old = build(BuildConfig.from_mapping({"direction": "zh-bo", "input": {"paths": [str(corpus)]}}))
    old_held_out = {p.id for s in ("dev", "test") for p in old.splits[s]}
    assert old_held_out <= test_ids  # the measured leak: selection 15 + audit 19 = the 34 test rows


@pytest.mark.shared_data
def test_a_source_cut_to_a_token_budget_keeps_the_split_of_its_whole_text(tiny_tokenizer_dir):
    """headline: the split does not depend on the tokenizer, so a base model can be prepared on the rows outside
    test before the policy's tokenizer exists (data_stage_config(splits_only=True))."""
    corpus = SHARED_DATA / "bo_title_generation.jsonl"
    if not corpus.exists():
        pytest.skip(f"{corpus} is absent")
    spec = {"kind": "data", "task": "headline", "input": str(corpus), "splits": {"test": 0.1, "dev": 0.1,
                                                                                  "cold_start": 0.5},
            "args": ["--tokenizer", tiny_tokenizer_dir, "--source-tokens", "96"]}
    cut = build(data_stage_config(spec))
    whole = build(data_stage_config(spec, splits_only=True))
    assert cut.stats["truncation"]["truncated"] > 0 and "truncation" not in whole.stats
    cut_split = {p.id: name for name, rows in cut.splits.items() for p in rows}
    whole_split = {p.id: name for name, rows in whole.splits.items() for p in rows}
    # every row the cut build keeps sits in the same split of the whole-text build
    assert {i: whole_split.get(i) for i in cut_split} == cut_split
    # the whole-text build keeps, besides, exactly the rows the cut build's filters dropped for their cut text
    # (a passage cut to a duplicate prefix, a cut whose script share is too low): none of them is a test row there
    assert len(whole_split) - len(cut_split) == cut.stats["filtered_total"] - whole.stats["filtered_total"] > 0


def test_file_rows_reads_sft_sources_through_the_build_manifest(tmp_path):
    """An SFT row holds its source only inside the rendered prompt: the build's splits.json gives its hash."""
    from data_tools.writers import write_build

    corpus = write_corpus(tmp_path / "c.jsonl", rows=60)
    result = build(BuildConfig.from_mapping({"direction": "zh-bo", "input": {"paths": [str(corpus)]},
                                             "splits": {"test": 0.2, "dev": 0.2, "cold_start": 0.5}}))
    write_build(result, tmp_path / "out")
    rows, how = file_rows(tmp_path / "out" / "sft" / "train_all.parquet")
    assert how.startswith("the build's") and rows == pair_rows(result.splits["cold_start"] + result.splits["rl"])
    loose = tmp_path / "loose.parquet"  # the same file outside its build: read row by row, said so
    loose.write_bytes((tmp_path / "out" / "sft" / "train_all.parquet").read_bytes())
    rows, how = file_rows(loose)
    assert "a source inside a rendered prompt is not matched" in how
    assert [r["id"] for r in rows] == [p.id for p in result.splits["cold_start"] + result.splits["rl"]]
    assert text_hash(result.splits["rl"][0].target) in rows[len(result.splits["cold_start"])]["texts"]


def test_quickstart_prepares_the_base_models_on_the_rows_outside_test_only(tmp_path, monkeypatch, tiny_tokenizer_dir):
    """scripts/quickstart.py prepare(): the tokenizers and the LM pass never see a text of the test split the data
    stage writes (its real command line on the same corpus); both folders list their rows; a stale folder
    (no manifest: an old prep) is rebuilt, a current one kept."""
    import quickstart
    from data_tools.cli import main

    corpus = write_corpus(tmp_path / "c.jsonl", rows=120, seed=3)
    seen: dict[str, list[str]] = {}

    def tokenizer_and_init(texts, out, **kwargs):
        seen["policy_tokenizer"] = list(texts)
        return str(out)

    def lm_pass(init, texts, out, **kwargs):
        seen["lm"] = list(texts)
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "config.json").write_text("{}")

    def encoder(texts, out):
        seen["encoder_tokenizer"] = list(texts)
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "config.json").write_text("{}")

    monkeypatch.setattr(quickstart, "_tiny_builders", lambda: (tokenizer_and_init, lm_pass, encoder))
    from tests.test_general_texts import write_cmrc

    cmrc = tmp_path / "cmrc.jsonl"
    passages = write_cmrc(cmrc, passages=40)
    general, held = quickstart.general_passages(cmrc, [])
    assert general == passages[held:]  # the constructed questions' passages lie among the held-out drift ones
    policy, encoder_dir = quickstart.prepare(corpus, cmrc, tmp_path / "prep", lm_steps=1)

    exp = load_experiment(quickstart.EXPERIMENT, "cpu-tiny", tmp_path / "run",
                          [f"inputs.corpus={corpus}", f"profile.model={tiny_tokenizer_dir}"])
    assert main([*data_args(exp.stages["data"]), "--out", str(tmp_path / "data"), "--quiet"]) == 0

    def texts(split: str) -> set[str]:
        rows = pq.read_table(tmp_path / "data" / "rl" / f"{split}.parquet").to_pylist()
        return {r["extra_info"]["source"] for r in rows} | {r["reward_model"]["ground_truth"] for r in rows}

    test, outside = texts("test"), texts("cold_start") | texts("rl") | texts("dev")
    assert test and set(seen) == {"policy_tokenizer", "lm", "encoder_tokenizer"}
    for name, used in seen.items():
        # the policy also learns Chinese from the CMRC passages the evaluation does not use
        expected = outside | set(general) if name != "encoder_tokenizer" else outside
        assert set(used) == expected and not set(used) & test and not set(used) & set(passages[:held]), name
    test_ids = set(_split_ids(tmp_path / "data", "test"))
    for folder in (policy, encoder_dir):
        part = read_manifest(folder / MODEL_MANIFEST)["parts"][0]
        assert {r["id"] for r in part["rows"]} & test_ids == set() and len(part["rows"]) == 120 - len(test_ids)
        assert part["split_settings"]["test"] == exp.profile_values["data"]["test"]
    lm_part = read_manifest(policy / MODEL_MANIFEST)["parts"][1]
    assert lm_part["file"] == str(cmrc) and len(lm_part["rows"]) == len(general)
    seen.clear()
    quickstart.prepare(corpus, cmrc, tmp_path / "prep", lm_steps=1)
    assert seen == {}  # built from the same rows: kept
    (policy / MODEL_MANIFEST).unlink()
    quickstart.prepare(corpus, cmrc, tmp_path / "prep", lm_steps=1)
    assert set(seen) == {"policy_tokenizer", "lm"}  # an old prep policy (no manifest) is rebuilt


def test_the_stage_commands_carry_the_profile_split_to_both_tools(tmp_path):
    """The commands run_data / run_encoder_train / run_encoder_audit execute, parsed by each tool's own parser:
    the same split settings (the profile's data), and the audit scores dev."""
    from data_tools.cli import config_from_args, parser as data_parser
    from data_tools.manifest import split_settings
    from semantic_reward.encoder_tools.__main__ import parser as encoder_parser
    from semantic_reward.experiment.stages import RUNNERS, StageContext
    from semantic_reward.settings import flag_values

    exp = load_experiment(ROOT / "recipes" / "experiments" / "mt_zh_bo.yaml", "cpu-tiny", tmp_path / "run")
    commands = {}
    for name in ("data", "encoder", "encoder_audit"):
        spec = exp.stages[name]
        ctx = StageContext(name, spec, tmp_path / name, exp, run=lambda cmd, log, env, on_line: None)
        (tmp_path / name).mkdir()
        try:
            RUNNERS[spec["kind"]](ctx)
        except (StageFailed, OSError):
            pass  # nothing ran: the stage finds no output; its command was recorded
        commands[name] = shlex.split(ctx.commands[0])[3:]  # after "python -m TOOL"
    data = config_from_args(data_parser().parse_args(commands["data"]))
    expected = {**split_settings(data), **exp.profile_values["data"]}
    assert split_settings(data) == expected
    for name in ("encoder", "encoder_audit"):
        args = encoder_parser().parse_args(commands[name])
        assert split_settings(BuildConfig.from_mapping(flag_values(args, "corpus"))) == expected, name
    assert encoder_parser().parse_args(commands["encoder_audit"]).splits == ["dev"]


def test_base_models_in_the_run_folder_but_made_by_no_stage_are_checked(tmp_path):
    """The quickstart prepares its base models in <run>/prep/: they are external to every stage, so the check
    reads their manifests; a stage's own hand-off (<run>/cold_start/model) is described by its stage."""
    from semantic_reward.experiment.provenance import external_models

    run = tmp_path / "quickstart"
    policy, encoder = run / "prep" / "policy", run / "prep" / "encoder_untrained"
    exp = load_experiment(ROOT / "recipes" / "experiments" / "mt_zh_bo.yaml", "cpu-tiny", run,
                          [f"profile.model={policy}", f"profile.encoder.init={encoder}"])
    models = external_models(exp, before="evaluation")
    assert models == {str(encoder): ["encoder"], str(policy): ["cold_start", "evaluation"]}
