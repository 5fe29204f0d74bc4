"""``python -m semantic_reward.evaluation run``: generation files end to end (values checked against direct
metric calls), tiny model paths (generation, CMRC, drift), atomic output, config errors, and eval_demo."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from semantic_reward.text import SEGMENTER
import yaml

from semantic_reward.config import ConfigError
from semantic_reward.evaluation.__main__ import main
from semantic_reward.evaluation.cmrc import cmrc_scores
from semantic_reward.evaluation.evaluate import semantic_similarity
from semantic_reward.evaluation.metrics import (
    language_consistency,
    paired_significance,
    rouge_l_corpus,
    sacrebleu_scores,
)
from semantic_reward.evaluation.run_config import load_config
from tests.conftest import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ("bleu", "chrf", "rouge_l", "reward_encoder_similarity", "language_consistency", "cmrc_em", "cmrc_f1")
DRIFT = ("nll_increase_mean", "nll_increase_p90", "kl_p90")


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def eval_inputs(tmp_path, news_pairs):
    """A 12-row zh->bo test file, 6 CMRC questions, and two systems' generation files (by id, in another order)."""
    rows = news_pairs[:12]
    test = _write_jsonl(tmp_path / "test.jsonl",
                        [{"id": r["id"], "source": r["zh"], "reference": r["bo"]} for r in rows])
    cmrc = read_jsonl("cmrc2018_dev_sample.jsonl")[:6]
    cmrc_file = _write_jsonl(tmp_path / "cmrc.jsonl", cmrc)
    hyps = {"cold_start": [r["bo"][: len(r["bo"]) // 2] for r in rows],
            "grpo": [r["bo"][: len(r["bo"]) * 4 // 5] for r in rows]}
    hyps["grpo"][0] = "<think>\nreasoning\n</think>\n\n" + hyps["grpo"][0]  # stripped before scoring
    answers = {"cold_start": [q["answers"][0] for q in cmrc], "grpo": [q["answers"][0][:2] for q in cmrc]}
    for name in hyps:
        lines = [{"id": r["id"], "hypothesis": h} for r, h in zip(rows, hyps[name], strict=True)]
        _write_jsonl(tmp_path / f"{name}.jsonl", lines[::-1])
        _write_jsonl(tmp_path / f"{name}.cmrc.jsonl",
                     [{"id": q["id"], "answer": a} for q, a in zip(cmrc, answers[name], strict=True)])
    hyps["grpo"][0] = rows[0]["bo"][: len(rows[0]["bo"]) * 4 // 5]
    return {"test": test, "cmrc": cmrc_file, "rows": rows, "cmrc_rows": cmrc, "hyps": hyps, "answers": answers,
            "dir": tmp_path}


def _config(inputs, out, encoder, **extra) -> Path:
    d = inputs["dir"]
    cfg = {"output_dir": str(out), "test_file": str(inputs["test"]), "source_language": "zh", "target_language": "bo",
           "encoder": encoder, "cmrc_file": str(inputs["cmrc"]), "n_bootstrap": 100, "ar_trials": 300,
           "systems": {n: {"generations": str(d / f"{n}.jsonl"), "cmrc_generations": str(d / f"{n}.cmrc.jsonl")}
                       for n in ("cold_start", "grpo")}}
    cfg.update(extra)
    path = d / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def test_command_on_generation_files(eval_inputs, minilm_path, tmp_path):
    out = tmp_path / "report"
    assert main(["run", str(_config(eval_inputs, out, minilm_path)), "--quiet", "max_examples=10"]) == 0
    report = json.loads((out / "report.json").read_text())
    refs = [r["bo"] for r in eval_inputs["rows"]][:10]
    assert report["examples"] == 10 and report["encoder"] == minilm_path
    for name in ("cold_start", "grpo"):
        got, hyps = report["systems"][name], eval_inputs["hyps"][name][:10]
        assert all(isinstance(got[k], float) for k in CONTRACT)
        direct = sacrebleu_scores(hyps, refs, "bo", n_bootstrap=100)
        assert got["bleu"] == pytest.approx(direct["bleu"].score)
        assert got["chrf"] == pytest.approx(direct["chrf"].score)
        assert report["intervals"][name]["bleu"] == pytest.approx(direct["bleu"].interval.to_dict())
        assert got["rouge_l"] == pytest.approx(rouge_l_corpus(hyps, refs, "bo"))
        assert got["language_consistency"] == pytest.approx(language_consistency(hyps, "bo"))
        assert got["reward_encoder_similarity"] == pytest.approx(semantic_similarity(hyps, refs, minilm_path),
                                                                 abs=1e-6)
        assert "semantic_similarity" not in got and "eval_encoder_similarity" not in got  # no eval_encoder set
        cmrc = cmrc_scores(eval_inputs["answers"][name], [q["answers"] for q in eval_inputs["cmrc_rows"]])
        assert (got["cmrc_em"], got["cmrc_f1"]) == (pytest.approx(cmrc["em"]), pytest.approx(cmrc["f1"]))
        assert not any(k in got for k in DRIFT)  # no models, no drift
    assert report["systems"]["cold_start"]["cmrc_em"] == 100.0
    assert report["systems"]["grpo"]["bleu"] > report["systems"]["cold_start"]["bleu"]
    assert report["signatures"]["bleu"] == direct["bleu"].signature and "tok:none" in report["signatures"]["bleu"]
    assert report["signatures"]["segmentation"] == SEGMENTER.signature()
    sig = paired_significance(("cold_start", eval_inputs["hyps"]["cold_start"][:10]),
                              [("grpo", eval_inputs["hyps"]["grpo"][:10])], refs, "bo", 100, 300)
    assert report["significance"] == sig and report["significance"]["reference"] == "cold_start"
    assert "drift: no base_model set" in report["missing"]["grpo"]
    md = (out / "report.md").read_text()
    assert "| grpo |" in md
    # the similarity column is the reward encoder's own score, and says so
    assert "| reward-encoder sim. (not independent) |" in md
    assert f"cosine under the reward encoder `{minilm_path}`, the score GRPO optimised" in md
    assert "(no eval_encoder set)" in md and report["eval_encoder"] is None
    assert report["quality_metric"] == "chrf"  # translation: the quality axis is chrF++
    # the two systems' outputs vary with the prompt: checked, not flagged, both tested
    checks = report["output_checks"]
    assert checks["identical_groups"] == [] and checks["systems"]["grpo"]["distinct_outputs"] == 10
    assert not any(c["prompt_independent"] for c in checks["systems"].values())
    assert report["significance"]["untested"] == {}
    written = [json.loads(x) for x in (out / "generations" / "grpo.jsonl").read_text().splitlines()]
    assert [w["hypothesis"] for w in written] == eval_inputs["hyps"]["grpo"][:10]
    assert (out / "quality_vs_tax.png").stat().st_size > 10_000
    assert not list(tmp_path.glob(".report.*"))  # no staging folder left behind


def test_crash_leaves_no_report(eval_inputs, minilm_path, tmp_path, monkeypatch):
    from semantic_reward.evaluation import report as report_module

    out = tmp_path / "report"
    cfg = _config(eval_inputs, out, None, paired_reference=None)

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while plotting")

    monkeypatch.setattr(report_module, "_metric_bars", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["run", str(cfg), "--quiet"])
    assert not out.exists() and not list(tmp_path.glob(".report.*"))
    # an earlier complete report survives a crashed rerun untouched
    monkeypatch.undo()
    assert main(["run", str(cfg), "--quiet"]) == 0
    before = (out / "report.json").read_text()
    monkeypatch.setattr(report_module, "_metric_bars", crash)
    with pytest.raises(RuntimeError):
        main(["run", str(cfg), "--quiet", "max_examples=3"])
    assert (out / "report.json").read_text() == before
    assert "reward_encoder_similarity" not in json.loads(before)["systems"]["grpo"]  # encoder: null, said so
    assert "reward_encoder_similarity: no encoder set" in json.loads(before)["missing"]["grpo"]


def test_config_errors_name_the_setting(eval_inputs, tmp_path):
    cfg = _config(eval_inputs, tmp_path / "r", None)
    with pytest.raises(ConfigError, match="'paired_referenc' is unknown; did you mean 'paired_reference'"):
        load_config(str(cfg), ["paired_referenc=grpo"])
    with pytest.raises(ConfigError, match="'paired_reference': 'sft' is not a system"):
        load_config(str(cfg), ["paired_reference=sft"])
    with pytest.raises(ConfigError, match="'systems.grpo.generatons' is unknown; did you mean"):
        load_config(str(cfg), ["systems.grpo.generatons=x"])
    with pytest.raises(ConfigError, match="'systems.extra': needs 'model'"):
        load_config(str(cfg), ["systems.extra.cmrc_generations=" + str(eval_inputs["cmrc"])])
    with pytest.raises(ConfigError, match="'generation.backend'"):
        load_config(str(cfg), ["generation.backend=tgi"])
    with pytest.raises(ConfigError, match="'target_language'"):
        load_config(str(cfg), ["target_language=klingon"])
    assert load_config(str(cfg), ["thinking=true"]).thinking is True
    assert main(["run", str(cfg), "max_examples=0"]) == 2


def test_misaligned_generation_file_is_an_error(eval_inputs, tmp_path):
    from semantic_reward.evaluation.inputs import InputError, read_generations, read_test_rows

    rows = read_test_rows(eval_inputs["test"], "bo")
    no_ids = _write_jsonl(tmp_path / "g.jsonl", [{"hypothesis": "x", "reference": r["reference"]} for r in rows])
    assert read_generations(no_ids, rows) == ["x"] * len(rows)
    shifted = _write_jsonl(tmp_path / "s.jsonl", [{"hypothesis": "x", "reference": r["reference"]} for r in rows[1:]]
                           + [{"hypothesis": "x", "reference": "?"}])
    with pytest.raises(InputError, match="s.jsonl, line 1: field 'reference' differs"):
        read_generations(shifted, rows)
    with pytest.raises(InputError, match="line 2: field 'hypothesis'"):
        read_generations(_write_jsonl(tmp_path / "h.jsonl", [{"hypothesis": "a"}, {"text": "b"}] * 6), rows)
    with pytest.raises(InputError, match="no line for 1 of 12 test ids"):
        read_generations(_write_jsonl(tmp_path / "i.jsonl", [{"id": r["id"], "hypothesis": "a"} for r in rows[1:]]),
                         rows)


def test_command_with_tiny_models(eval_inputs, minilm_path, tmp_path):
    """Model paths: generation with the chat template (thinking off), CMRC answers, drift from the base."""
    from tiny_models import build_tiny_policy, perturbed_copy

    texts = [r["bo"] for r in eval_inputs["rows"]] + [r["zh"] for r in eval_inputs["rows"]]
    texts += [q["context"] for q in eval_inputs["cmrc_rows"]]
    base = build_tiny_policy(texts, tmp_path / "base", vocab_size=600, hidden_size=32, num_layers=1, num_heads=2)
    tuned = perturbed_copy(base, tmp_path / "tuned", scale=0.5)
    d = eval_inputs["dir"]
    out = tmp_path / "report"
    cfg = _config(eval_inputs, out, minilm_path, base_model=str(base), max_examples=4, cmrc_max_examples=3,
                  drift_max_texts=2, generation={"max_new_tokens": 6, "cmrc_max_new_tokens": 6, "batch_size": 4, "backend": "hf"},
                  device="cpu", systems={"base": {"model": str(base)}, "cold_start": {"model": str(tuned)},
                                         "grpo": {"generations": str(d / "grpo.jsonl")}})
    assert main(["run", str(cfg), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    systems = report["systems"]
    assert report["base"] == "base"
    for name in ("base", "cold_start"):
        assert all(isinstance(systems[name][k], float) for k in CONTRACT)
        assert systems[name]["cmrc_questions"] == 3
    assert not any(k in systems["base"] for k in DRIFT)  # the base has no drift from itself
    assert systems["cold_start"]["nll_increase_mean"] != 0.0 and systems["cold_start"]["kl_p90"] > 0.0
    assert "cmrc_f1" not in systems["grpo"] and "drift: no model" in report["missing"]["grpo"]
    generated = [json.loads(x)["hypothesis"] for x in (out / "generations" / "base.jsonl").read_text().splitlines()]
    assert len(generated) == 4
    refs = [r["bo"] for r in eval_inputs["rows"][:4]]
    assert systems["base"]["bleu"] == pytest.approx(sacrebleu_scores(generated, refs, "bo", 1)["bleu"].score)
    assert set(report["significance"]["systems"]) == {"base", "grpo"}
    assert (out / "drift_distributions.png").exists()


def test_reward_curve_png(eval_inputs, tmp_path):
    curve = tmp_path / "curve.json"
    curve.write_text(json.dumps([{"step": s, "reward_mean": 0.1 * s, "r_sim": 0.05 * s, "r_lang": 1.0}
                                 for s in (3, 1, 2)]))
    out = tmp_path / "report"
    assert main(["run", str(_config(eval_inputs, out, None, reward_curve=str(curve))), "--quiet"]) == 0
    assert (out / "reward_curve.png").stat().st_size > 10_000
    assert "reward_curve.png" in (out / "report.md").read_text()
    trend = json.loads((out / "report.json").read_text())["reward_trend"]  # steps 1, 2, 3: 0.1 per step
    assert trend["slope_per_step"] == pytest.approx(0.1) and trend["steps"] == 3
    assert trend["first_mean"] == pytest.approx(0.1) and trend["last_mean"] == pytest.approx(0.3)
    assert "GRPO training reward: reward_mean slope +0.1000" in (out / "report.md").read_text()
    curve.write_text(json.dumps([{"step": 1, "reward_mean": "nan"}]))
    assert main(["run", str(_config(eval_inputs, tmp_path / "r2", None, reward_curve=str(curve))), "--quiet"]) == 2


def test_eval_demo_is_a_thin_caller(tmp_path, news_pairs):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "scripts/eval_demo.py", "--out", str(out), "--mt-rows", "6", "--cmrc-questions", "4",
         "--drift-passages", "4", "--base-steps", "20", "--sft-steps", "20", "--bootstrap", "50",
         "--max-new-tokens", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = out / "report"
    report = json.loads((out / "report.json").read_text())
    systems = report["systems"]
    for name in ("base", "sft"):
        assert all(isinstance(systems[name][k], float) for k in CONTRACT)
    assert all(isinstance(systems["sft"][k], float) for k in DRIFT) and systems["sft"]["nll_increase_mean"] != 0.0
    assert report["significance"]["reference"] == "base" and "sft" in report["significance"]["systems"]
    for png in ("quality_vs_tax.png", "metric_bars.png", "drift_distributions.png"):
        assert (out / png).stat().st_size > 10_000
    assert "| sft |" in (out / "report.md").read_text()


def test_reads_data_tools_rl_parquet(tmp_path):
    from data_tools import BuildConfig, build
    from data_tools.writers import write_build
    from semantic_reward.evaluation.inputs import InputError, read_test_rows
    from tests.conftest import SHARED_DATA

    read_jsonl("bo_zh_news.jsonl")  # skips without the real data
    news = str(SHARED_DATA / "bo_zh_news.jsonl")
    result = build(BuildConfig.from_mapping({"direction": "zh-bo", "input": {"paths": [news]}}), progress=False)
    files = write_build(result, tmp_path / "data")
    rows = read_test_rows(files["rl/test"], "tibetan", max_examples=5)
    expected = result.rl_rows("test")[:5]
    assert [r["id"] for r in rows] == [e["extra_info"]["id"] for e in expected]
    assert [r["reference"] for r in rows] == [e["reward_model"]["ground_truth"] for e in expected]
    assert [r["prompt"] for r in rows] == [e["prompt"] for e in expected]  # the prompts training used
    with pytest.raises(InputError, match="row 0: extra_info.target_language is 'bo'"):
        read_test_rows(files["rl/test"], "zh")


def test_eval_encoder_settings(eval_inputs, tmp_path):
    enc = tmp_path / "enc"
    enc.mkdir()
    cfg = _config(eval_inputs, tmp_path / "r", str(enc))
    with pytest.raises(ConfigError, match="'eval_encoder': .* is the reward encoder"):
        load_config(str(cfg), [f"eval_encoder={tmp_path}/./enc"])
    with pytest.raises(ConfigError, match="'eval_encoder': must be a path"):
        load_config(str(cfg), ["eval_encoder=''"])
    with pytest.raises(ConfigError, match="'max_top_output_share'"):
        load_config(str(cfg), ["max_top_output_share=0"])
    assert load_config(str(cfg), ["eval_encoder=other/model"]).eval_encoder == "other/model"
    # the quality axis: chrF++ for translation, ROUGE-L when a task writes in its source language (headlines)
    assert load_config(str(cfg)).task_metric() == "chrf"
    assert load_config(str(cfg), ["source_language=tibetan"]).task_metric() == "rouge_l"
    assert load_config(str(cfg), ["quality_metric=bleu"]).task_metric() == "bleu"
    with pytest.raises(ConfigError, match="'quality_metric'"):
        load_config(str(cfg), ["quality_metric=reward_encoder_similarity"])


def test_collapsed_systems_and_an_independent_encoder(eval_inputs, minilm_path, tmp_path):
    """A system that writes one string for every prompt, and one whose outputs equal the reference's: both flagged
    in report.json and report.md, neither tested; an eval_encoder gives its own, independent column."""
    from tiny_models import build_tiny_encoder

    from semantic_reward.evaluation.evaluate import semantic_similarity

    d, rows = eval_inputs["dir"], eval_inputs["rows"]
    _write_jsonl(d / "constant.jsonl", [{"id": r["id"], "hypothesis": "ས་ས་ས་ས་"} for r in rows])
    _write_jsonl(d / "copy.jsonl", [{"id": r["id"], "hypothesis": h}
                                    for r, h in zip(rows, eval_inputs["hyps"]["cold_start"], strict=True)])
    eval_encoder = build_tiny_encoder([r["bo"] for r in rows] + [r["zh"] for r in rows], tmp_path / "eval_enc",
                                      vocab_size=400, hidden_size=32, num_layers=1, num_heads=2)
    out = tmp_path / "report"
    systems = {n: {"generations": str(d / f"{n}.jsonl")} for n in ("cold_start", "grpo", "constant", "copy")}
    cfg = _config(eval_inputs, out, minilm_path, eval_encoder=str(eval_encoder), systems=systems)
    assert main(["run", str(cfg), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    checks = report["output_checks"]["systems"]
    assert checks["constant"]["constant"] and checks["constant"]["distinct_outputs"] == 1
    assert checks["copy"]["identical_to"] == ["cold_start"] and not checks["copy"]["constant"]
    assert report["output_checks"]["identical_groups"] == [["cold_start", "copy"]]
    sig = report["significance"]
    assert set(sig["untested"]) == {"constant", "copy"}
    for name in ("constant", "copy"):
        assert all(sig["systems"][name][m]["p_value_ar"] is None for m in ("bleu", "chrf"))
    assert isinstance(sig["systems"]["grpo"]["chrf"]["p_value_ar"], float)  # the sound system is still tested
    refs = [r["bo"] for r in rows]
    got = report["systems"]["grpo"]
    assert got["eval_encoder_similarity"] == pytest.approx(
        semantic_similarity(eval_inputs["hyps"]["grpo"], refs, str(eval_encoder)), abs=1e-5)
    assert got["reward_encoder_similarity"] == pytest.approx(
        semantic_similarity(eval_inputs["hyps"]["grpo"], refs, minilm_path), abs=1e-5)
    md = (out / "report.md").read_text()
    assert "| constant | 1 / 12 | 1.00 | constant: one output for every prompt | `ས་ས་ས་ས་` |" in md
    assert "| copy | BLEU-4 | +0.0000 | not tested | not tested |" in md
    assert "- constant: constant writes one output for all 12 prompts" in md
    assert "**1 of 4 systems write the same output for most or all prompts (constant)" in md
    assert "| eval-encoder sim. (independent) |" in md and f"under `{eval_encoder}`, an encoder that is not" in md
