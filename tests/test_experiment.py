"""The experiment runner: workflow rules with fake stages, the LoRA hand-off, the SFT dev-size
pre-flight, verl log parsing, and (slow) the whole MT experiment at its smallest through verl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semantic_reward.experiment import ExperimentError, RunError, StageFailed, load_experiment, run_experiment
from semantic_reward.experiment.metrics import parse_step_line, reward_steps
from semantic_reward.recipe_check import RecipeError, check_recipe
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENT = """
name: fake
stages:
  prepare:
    kind: data
    input: corpus.jsonl
    args: ["--dev", "${profile.data.dev}"]
  train:
    kind: encoder_train
    model_in: ${stage:prepare.out}
    epochs: ${profile.encoder.epochs}
  report:
    kind: evaluation
    systems: {trained: "${stage:train.model_out}"}
"""


class FakeStages:
    """Stage functions that record their calls and write a marker file; ``fail`` names stages that raise."""

    def __init__(self):
        self.calls: list[str] = []
        self.fail: set[str] = set()

    def __call__(self, ctx):
        self.calls.append(ctx.name)
        assert not any(ctx.stage_dir.iterdir())  # every stage starts from a clean folder
        (ctx.stage_dir / "marker").write_text(ctx.name)
        ctx.commands.append(f"fake {ctx.name}")
        if ctx.name in self.fail:
            raise StageFailed(f"{ctx.name} broke on purpose")
        return {"config": ctx.save_config(ctx.spec), "model_in": ctx.spec.get("model_in"),
                "model_out": ctx.outputs["model_out"]}

    @property
    def runners(self):
        return {"data": self, "encoder_train": self, "evaluation": self}


@pytest.fixture
def experiment_file(tmp_path):
    path = tmp_path / "fake.yaml"
    path.write_text(EXPERIMENT)
    return path


def _stages(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "stages.json").read_text())


def test_rerun_skips_finished_stages_and_records_the_contract(tmp_path, experiment_file):
    fake = FakeStages()
    exp = load_experiment(experiment_file, "cpu-tiny", tmp_path / "run")
    run_experiment(exp, runners=fake.runners)
    assert fake.calls == ["prepare", "train", "report"]
    records = _stages(tmp_path / "run")
    assert [r["name"] for r in records] == ["prepare", "train", "report"]
    assert all(r["status"] == "finished" and isinstance(r["seconds"], float) for r in records)
    assert records[1]["model_in"] == str(tmp_path / "run" / "prepare" / "out")  # the hand-off from the record
    assert records[1]["model_out"] == str(tmp_path / "run" / "train" / "out" / "final")
    assert records[1]["command"] == "fake train"
    assert Path(records[1]["config"]).read_text().count("epochs: 20") == 1  # the profile's value, resolved

    run_experiment(load_experiment(experiment_file, "cpu-tiny", tmp_path / "run"), runners=fake.runners)
    assert fake.calls == ["prepare", "train", "report"]  # nothing ran twice


def test_failed_stage_is_recorded_and_the_next_run_starts_there(tmp_path, experiment_file):
    fake = FakeStages()
    fake.fail = {"train"}
    with pytest.raises(StageFailed, match="train broke on purpose"):
        run_experiment(load_experiment(experiment_file, "cpu-tiny", tmp_path / "run"), runners=fake.runners)
    records = {r["name"]: r for r in _stages(tmp_path / "run")}
    assert records["prepare"]["status"] == "finished"
    assert records["train"]["status"] == "failed" and "broke on purpose" in records["train"]["cause"]
    assert records["report"]["status"] == "pending"

    fake.fail = set()
    run_experiment(load_experiment(experiment_file, "cpu-tiny", tmp_path / "run"), runners=fake.runners)
    assert fake.calls == ["prepare", "train", "train", "report"]
    assert [r["status"] for r in _stages(tmp_path / "run")] == ["finished"] * 3


def test_force_redoes_the_stage_and_everything_after(tmp_path, experiment_file):
    fake = FakeStages()
    run_experiment(load_experiment(experiment_file, "cpu-tiny", tmp_path / "run"), runners=fake.runners)
    run_experiment(load_experiment(experiment_file, "cpu-tiny", tmp_path / "run"), force="train",
                   runners=fake.runners)
    assert fake.calls == ["prepare", "train", "report", "train", "report"]
    with pytest.raises(RunError, match="no such stage"):
        run_experiment(load_experiment(experiment_file, "cpu-tiny", tmp_path / "run"), force="nope",
                       runners=fake.runners)


def test_changed_setting_under_the_same_run_name_is_refused_never_resumed(tmp_path, experiment_file):
    fake = FakeStages()
    run_experiment(load_experiment(experiment_file, "cpu-tiny", tmp_path / "run"), runners=fake.runners)
    changed = load_experiment(experiment_file, "cpu-tiny", tmp_path / "run", ["profile.encoder.epochs=99"])
    with pytest.raises(RunError, match=r"stage 'train' finished with other settings \(epochs: 20 -> 99\).*--run-name"):
        run_experiment(changed, runners=fake.runners)
    assert fake.calls == ["prepare", "train", "report"]  # refused before anything ran
    # a new run name is a new folder; --force from the changed stage redoes it and what follows
    run_experiment(load_experiment(experiment_file, "cpu-tiny", tmp_path / "run2", ["profile.encoder.epochs=99"]),
                   runners=fake.runners)
    run_experiment(changed, force="train", runners=fake.runners)
    assert fake.calls[3:] == ["prepare", "train", "report", "train", "report"]
    # a different profile changes the first stage's resolved settings too
    with pytest.raises(RunError, match="stage 'prepare' finished with other settings"):
        run_experiment(load_experiment(experiment_file, "paper", tmp_path / "run"), runners=fake.runners)


def test_unknown_override_and_stage_reference_fail_early(tmp_path, experiment_file):
    with pytest.raises(ExperimentError, match="no key 'profile.encoder.epoch'"):
        load_experiment(experiment_file, "cpu-tiny", tmp_path / "run", ["profile.encoder.epoch=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXPERIMENT.replace("${stage:train.model_out}", "${stage:trian.model_out}"))
    with pytest.raises(Exception, match="no stage 'trian'"):
        load_experiment(bad, "cpu-tiny", tmp_path / "run")
    with pytest.raises(ExperimentError, match="no profile 'gpu-huge'"):
        load_experiment(experiment_file, "gpu-huge", tmp_path / "run")


def test_grpo_tau_comes_from_the_audit_only_when_the_profile_asks(tmp_path):
    """cpu-tiny takes the audit's unrelated-sentence tau (labelled, read from audit.json); paper keeps the recipe's."""
    from semantic_reward.experiment.stages import audit_tau

    experiment = ROOT / "recipes" / "experiments" / "mt_zh_bo.yaml"
    tiny = load_experiment(experiment, "cpu-tiny", tmp_path / "tiny").stages["grpo"]
    paper = load_experiment(experiment, "paper", tmp_path / "paper").stages["grpo"]
    assert tiny["tau_from_audit"] is True and paper["tau_from_audit"] is False
    assert tiny["audit"] == str(tmp_path / "tiny" / "encoder_audit" / "out")
    recipe = check_recipe("grpo_semantic_zh_bo", None, ["profile=paper"])
    assert recipe.reward.reward_kwargs.tau == 0.5  # what a paper run uses

    audit_dir = tmp_path / "audit"
    with pytest.raises(StageFailed, match="wrote no"):
        audit_tau(audit_dir)
    audit_dir.mkdir()
    (audit_dir / "audit.json").write_text(json.dumps({"reward": {"verdict": "usable"}}))
    with pytest.raises(StageFailed, match="no tau_unrelated"):
        audit_tau(audit_dir)
    (audit_dir / "audit.json").write_text(json.dumps(
        {"reward": {"tau_unrelated": {"percentile": 50.0, "tau": 0.125, "pairs": 34}}}))
    tau = audit_tau(audit_dir)
    assert tau["value"] == 0.125 and tau["from"] == str(audit_dir / "audit.json")
    assert "50th percentile of 34" in tau["label"] and "not the paper's tau" in tau["label"]


def _token_stats(prompt_max: int, reference_p99: float, reference_max: int) -> dict:
    def lengths(p99: float, top: int) -> dict:
        return {"count": 50, "p50": top / 2, "p90": p99 - 1, "p99": p99, "max": top}

    return {"data_source": "toy/zh-bo", "lengths_in_tokens": {
        "tokenizer": "tiny", "enable_thinking": False, "prompt": lengths(prompt_max - 1, prompt_max),
        "reference": lengths(reference_p99, reference_max), "sft": lengths(prompt_max + reference_p99, 200)}}


def test_a_length_the_data_does_not_fit_stops_the_stage_before_verl_unless_the_profile_warns(tmp_path):
    """GRPO's max_response_length below the references' P99 (+1 end-of-turn): paper profile -> the stage fails
    naming the key, the measured P99 and the fix; length_check warn -> it runs and the record keeps the finding."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from semantic_reward.experiment.stages import StageContext, check_stage_lengths

    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps(_token_stats(prompt_max=90, reference_p99=137.0, reference_max=145)))
    cfg = OmegaConf.create({"data": {"max_prompt_length": 128, "max_response_length": 32}})

    def context(mode: str, stats_file: Path = stats) -> StageContext:
        experiment = SimpleNamespace(profile="p", profile_values={"length_check": mode})
        return StageContext("grpo", {"kind": "grpo", "stats": str(stats_file)}, tmp_path, experiment, run=None)

    with pytest.raises(StageFailed, match=r"data.max_response_length 32 is below the P99 138 of the reference tokens"
                                          r".*set it to 192 .*length_check: warn"):
        check_stage_lengths(context("error"), cfg, "grpo")
    record = check_stage_lengths(context("warn"), cfg, "grpo")
    assert record["mode"] == "warn" and record["stats"] == str(stats) and record["warnings"] == []
    [error] = record["errors"]
    assert error.startswith("data.max_response_length 32 is below the P99 138")
    # the longest reference (145 + 1) still does not fit 140: a warning, not an error
    fits_p99 = OmegaConf.create({"data": {"max_prompt_length": 128, "max_response_length": 140}})
    record = check_stage_lengths(context("error"), fits_p99, "grpo")
    assert record["errors"] == [] and len(record["warnings"]) == 1 and "longest 146" in record["warnings"][0]
    fits = OmegaConf.create({"data": {"max_prompt_length": 128, "max_response_length": 192}})
    assert check_stage_lengths(context("error"), fits, "grpo")["warnings"] == []
    # SFT: the whole row (prompt + reference) against data.max_length
    sft = OmegaConf.create({"data": {"max_length": 200}})
    with pytest.raises(StageFailed, match=r"data.max_length 200 is below the P99 227 of the sft tokens"):
        check_stage_lengths(context("error"), sft, "sft")
    unmeasured = tmp_path / "unmeasured.json"
    unmeasured.write_text(json.dumps({"data_source": "toy/zh-bo"}))
    with pytest.raises(StageFailed, match="no token lengths.*build the data with --tokenizer"):
        check_stage_lengths(context("error", unmeasured), fits, "grpo")


def test_the_experiments_measure_lengths_with_the_policy_tokenizer_and_check_every_training_stage(tmp_path):
    from omegaconf import OmegaConf

    for name in ("mt_zh_bo", "headline_bo"):
        exp = load_experiment(ROOT / "recipes" / "experiments" / f"{name}.yaml", "cpu-tiny", tmp_path / name,
                              sets=["profile.model=/models/policy"])
        args = exp.stages["data"]["args"]
        assert args[args.index("--tokenizer") + 1] == "/models/policy"
        for stage, spec in exp.stages.items():
            if spec["kind"] in ("sft", "grpo"):
                assert spec["stats"] == str(tmp_path / name / "data" / "out" / "stats.json"), (name, stage)
    # a mode the stages cannot act on stops the experiment when it loads, before any stage runs
    with pytest.raises(ExperimentError, match="profile cpu-tiny: length_check must be one of error, warn, "
                                              "not 'ignore'"):
        load_experiment(ROOT / "recipes" / "experiments" / "mt_zh_bo.yaml", "cpu-tiny", tmp_path / "ignore",
                        sets=["profile.length_check=ignore"])
    assert OmegaConf.load(ROOT / "recipes" / "profile" / "paper.yaml").length_check == "error"
    assert OmegaConf.load(ROOT / "recipes" / "profile" / "cpu-tiny.yaml").length_check == "warn"


def test_validation_dumps_are_summarised_in_step_order(tmp_path):
    from semantic_reward.experiment.stages import validation_summary

    for step, scores in ((16, [1.0, 2.0]), (8, [0.5, 0.5, 1.1])):
        (tmp_path / f"{step}.jsonl").write_text("".join(json.dumps({"input": "q", "output": "a", "score": v}) + "\n"
                                                        for v in scores))
    summary = validation_summary(tmp_path)
    assert [s["step"] for s in summary] == [8, 16] and [s["rows"] for s in summary] == [3, 2]
    assert summary[0]["score_mean"] == pytest.approx(0.7) and summary[1]["score_mean"] == pytest.approx(1.5)
    assert validation_summary(tmp_path / "absent") == []


def test_verl_console_lines_become_the_reward_curve():
    line = ("step:2 - critic/score/mean:np.float64(0.75) - critic/score/max:1.5 - reward/semantic_reward/mean:0.25"
            " - reward/language_reward/mean:np.float64(0.5) - timing_s/step:5.25 - actor/kl_loss:1.2e-05")
    step, metrics = parse_step_line(line)
    assert step == 2 and metrics["critic/score/mean"] == 0.75 and metrics["actor/kl_loss"] == 1.2e-05
    assert parse_step_line("Epoch 1: step 3 done") is None
    curve = reward_steps({3: {"critic/score/mean": 1.0}, 2: metrics})
    assert [r["step"] for r in curve] == [2, 3]
    assert curve[0] == {"step": 2, "reward_mean": 0.75, "reward/semantic_reward/mean": 0.25,
                        "reward/language_reward/mean": 0.5}
    assert curve[1]["reward_mean"] == 1.0


def test_merged_lora_model_gives_the_adapter_models_logits(tmp_path, tiny_tokenizer_dir):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from semantic_reward.experiment.handoff import merge_lora

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    base = Qwen3ForCausalLM(Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2, head_dim=16))
    base.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                           init_lora_weights=False))  # non-zero B: the adapter changes the output
    lora.save_pretrained(tmp_path / "adapter")

    merged_dir = merge_lora(tmp_path / "base", tmp_path / "adapter", tmp_path / "merged")
    ids = torch.tensor([tok("translate the sentence into Tibetan").input_ids])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(merged_dir)(ids).logits
        adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "base"),
                                            tmp_path / "adapter")(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tmp_path / "base")(ids).logits
    assert torch.allclose(merged, adapter, atol=1e-5)
    assert (merged - plain).abs().max() > 1e-3  # the merge carried the update
    assert not any("lora" in k for k in AutoModelForCausalLM.from_pretrained(merged_dir).state_dict())


def _sft_parquet(path: Path, rows: int) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    messages = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(rows)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"messages": messages}), path)
    return str(path)


def test_sft_preflight_catches_a_dev_split_smaller_than_the_batch(tmp_path):
    train = _sft_parquet(tmp_path / "train.parquet", 40)
    small = _sft_parquet(tmp_path / "dev_small.parquet", 7)
    enough = _sft_parquet(tmp_path / "dev.parquet", 8)
    files = [f"data.train_files={train}"]
    with pytest.raises(RecipeError, match=r"dev_small.parquet has 7 rows.*per-rank batch .* = 8: .*val/loss would be NaN"):
        check_recipe("sft_cold_start", "cpu-tiny", [*files, f"data.val_files={small}"])
    check_recipe("sft_cold_start", "cpu-tiny", [*files, f"data.val_files={enough}"])
    # per rank: 8 ranks share 40 dev rows = 5 each, below the per-rank batch 64 / 8 = 8
    with pytest.raises(RecipeError, match="5 per rank on 8 rank"):
        check_recipe("sft_cold_start", "cpu-tiny", [*files, f"data.val_files={_sft_parquet(tmp_path / 'd40.parquet', 40)}",
                                                    "profile.n_gpus_per_node=8", "profile.sft.train_batch_size=64"])


def _split(profile: str, out: Path) -> Path:
    from data_tools.cli import main as data_tools_main
    from omegaconf import OmegaConf

    p = OmegaConf.load(ROOT / "recipes" / "profile" / f"{profile}.yaml")
    assert data_tools_main(["mt", "--input", str(SHARED_DATA / "bo_zh_news.jsonl"), "--out", str(out), "--quiet",
                            "--cold-start", str(p.data.cold_start), "--dev", str(p.data.dev),
                            "--test", str(p.data.test)]) == 0
    return out / "sft"


def test_sft_validation_batch_is_full_or_refused_at_every_profile(tmp_path, news_pairs):
    """cpu-tiny's own splits of the real corpus fill the SFT trainer's per-rank batch; the paper profile
    (8 ranks x 4) on the same 300-pair corpus is refused before the run with the fix, never a NaN;
    at the paper's corpus size (5% of 10,000 pairs as dev) it passes."""
    for recipe, train in (("sft_cold_start", "cold_start"), ("sft_strong", "train_all")):
        sft = _split("cpu-tiny", tmp_path / "tiny")
        check_recipe(recipe, "cpu-tiny", [f"data.train_files={sft / f'{train}.parquet'}",
                                          f"data.val_files={sft / 'dev.parquet'}"])
    sft = _split("paper", tmp_path / "paper")
    import pyarrow.parquet as pq

    rows = pq.read_metadata(sft / "dev.parquet").num_rows  # 5% of the 300 pairs: too few for 8 ranks x 4
    per_rank = rows // 8
    assert per_rank < 4
    with pytest.raises(RecipeError, match=rf"dev.parquet has {rows} rows = {per_rank} per rank on 8 rank.*"
                                          rf"at most {per_rank * 8}\b"):
        check_recipe("sft_cold_start", "paper", [f"data.train_files={sft / 'cold_start.parquet'}",
                                                 f"data.val_files={sft / 'dev.parquet'}"])
    check_recipe("sft_cold_start", "paper", [f"data.train_files={_sft_parquet(tmp_path / 't.parquet', 5000)}",
                                             f"data.val_files={_sft_parquet(tmp_path / 'd.parquet', 500)}"])


@pytest.mark.ray
@pytest.mark.shared_data
def test_the_mt_experiment_at_its_smallest_through_verl(tmp_path, news_pairs):
    """data -> encoder -> audit -> cold-start SFT -> GRPO (LoRA) + strong SFT -> evaluation, a step or two each.

    Heavy: run it alone (flock /tmp/heavy.lock pytest tests/test_experiment.py -m ray).
    """
    out = tmp_path / "qs"
    sets = ["profile.grpo.total_training_steps=2", "profile.grpo.lr_warmup_steps=0", "profile.sft.total_training_steps=2",
            "profile.encoder.epochs=2",
            "profile.eval.max_examples=4", "profile.eval.cmrc_max_examples=4", "profile.eval.max_new_tokens=8",
            "stages.encoder_audit.allow_unusable=true"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "quickstart.py"), "--out", str(out), "--lm-steps", "5",
                           *sum((["--set", s] for s in sets), [])], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    records = {r["name"]: r for r in json.loads((out / "stages.json").read_text())} if (out / "stages.json").exists() else {}
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:] + json.dumps(records, indent=1)[-3000:]
    for name in ("data", "encoder", "encoder_audit", "cold_start", "grpo", "sft_strong", "evaluation"):
        assert records[name]["status"] == "finished"
    assert records["grpo"]["model_in"] == records["cold_start"]["model_out"]  # hand-offs carry the weights
    assert records["sft_strong"]["model_in"] == records["cold_start"]["model_out"]
    assert [s["step"] for s in records["grpo"]["steps"]] == [1, 2]
    audit = json.loads((out / "encoder_audit" / "out" / "audit.json").read_text())["reward"]
    assert records["grpo"]["tau"]["value"] == pytest.approx(audit["tau_unrelated"]["tau"], abs=1e-6)  # cpu-tiny
    grpo_config = (out / "grpo" / "config.yaml").read_text()
    assert f"tau: {records['grpo']['tau']['value']}"[:10] in grpo_config
    # verl validated at the last step and dumped its generations into the stage folder
    [validation] = records["grpo"]["validation"]
    assert validation["step"] == 2 and validation["file"] == str(out / "grpo" / "validation" / "2.jsonl")
    rows = [json.loads(line) for line in Path(validation["file"]).read_text().splitlines()]
    assert {"input", "output", "score"} <= set(rows[0]) and validation["rows"] == len(rows) > 0
    assert validation["score_mean"] == pytest.approx(sum(r["score"] for r in rows) / len(rows))
    assert all(s["reward_mean"] == s["reward_mean"] for s in records["grpo"]["steps"])  # not NaN
    losses = records["cold_start"]["val_loss"]
    assert losses and all(v["val_loss"] == v["val_loss"] for v in losses)  # finite SFT validation loss
    for name in ("cold_start", "grpo", "sft_strong"):
        assert (Path(records[name]["model_out"]) / "config.json").is_file()

    # the merged GRPO model differs from its cold-start input: the LoRA update reached the hand-off
    import torch
    from transformers import AutoModelForCausalLM

    from peft import PeftModel

    for name in ("cold_start", "grpo", "sft_strong"):  # both merges: verl's merger output + its adapter, via PEFT
        verl_out = Path(records[name]["model_out"] + "_verl_merger")
        ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
        with torch.no_grad():
            adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(verl_out, dtype=torch.float32),
                                                verl_out / "lora_adapter")(ids).logits
            merged = AutoModelForCausalLM.from_pretrained(records[name]["model_out"])(ids).logits
        assert torch.allclose(merged, adapter, atol=1e-4), name
    a = AutoModelForCausalLM.from_pretrained(records["cold_start"]["model_out"]).state_dict()
    b = AutoModelForCausalLM.from_pretrained(records["grpo"]["model_out"]).state_dict()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a if k in b) > 0
    report = json.loads((out / "report.json").read_text())
    assert {"base", "cold_start", "grpo", "sft_strong"} <= set(report["systems"])
    assert "bleu" in report["systems"]["grpo"] and torch is not None

    rerun = subprocess.run([sys.executable, str(ROOT / "scripts" / "quickstart.py"), "--out", str(out),
                            "--lm-steps", "5", *sum((["--set", s] for s in sets), [])], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and rerun.stdout.count("finished earlier, skipped") == 7


def test_recorded_command_carries_the_environment_it_ran_with(tmp_path):
    """stages.json's command is pasteable: the env the runner set (VERL_PLATFORM=cpu, ...) comes first."""
    import shlex

    from semantic_reward.experiment.stages import StageContext

    seen = []
    ctx = StageContext(name="grpo", spec={"kind": "grpo"}, stage_dir=tmp_path, experiment=None,
                       run=lambda cmd, log, env, on_line: seen.append((cmd, env)))
    ctx.execute(["python", "-m", "verl.trainer.main_ppo", "a=b c"], env={"VERL_PLATFORM": "cpu", "A": "1"})
    assert seen == [(["python", "-m", "verl.trainer.main_ppo", "a=b c"], {"VERL_PLATFORM": "cpu", "A": "1"})]
    assert shlex.split(ctx.commands[0]) == ["A=1", "VERL_PLATFORM=cpu", "python", "-m", "verl.trainer.main_ppo",
                                            "a=b c"]
