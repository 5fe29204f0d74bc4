"""Issue 20 item 3: the report says whether a GRPO reward rise is reference-specific or likely reward hacking."""

from __future__ import annotations

import json

import pytest

from semantic_reward.evaluation import hacking
from semantic_reward.evaluation.__main__ import main
from tests.test_eval_command import _config, eval_inputs  # noqa: F401 - the fixture, reused

P = hacking.PREFIX
REFS = ["བཀྲ་ཤིས་བདེ་ལེགས།", "ཁ་ལག་ཟ་བ།", "སློབ་གྲྭ་ཆེན་མོ།", "ཆུ་ཚོད་གཉིས།", "ནམ་མཁའ་སྔོན་པོ།"]


def _steps(own: tuple[float, float], decoy: tuple[float, float], reward=(1.0, 1.2), n: int = 12) -> list[dict]:
    """n steps, linear from the first to the last value of each series."""
    def at(pair, i):
        return pair[0] + (pair[1] - pair[0]) * i / (n - 1)

    return [{"step": i + 1, "reward_mean": at(reward, i), f"{P}r_sim_own": at(own, i), f"{P}r_sim_decoy": at(decoy, i),
             f"{P}specificity_r_sim": at(own, i) - at(decoy, i), f"{P}tau_floor_share": 0.5,
             f"{P}zero_spread_groups": 0.25, f"{P}distinct_2_group": 0.8} for i in range(n)]


def test_a_rise_that_depends_on_the_reference_is_reference_specific():
    section = hacking.judge(_steps(own=(0.10, 0.30), decoy=(0.10, 0.11)), [])
    assert section["verdict"] == "reference-specific"
    assert "reference-specific" in section["summary"] and "hacking" not in section["summary"]
    assert section["evidence"]["r_sim_own_first_last"][1] > section["evidence"]["r_sim_decoy_first_last"][1] + 0.1


def test_a_rise_matched_against_another_prompts_reference_is_likely_hacking():
    flat_gap = hacking.judge(_steps(own=(0.100, 0.124), decoy=(0.100, 0.119)), [])  # the 0.124 vs 0.119
    assert flat_gap["verdict"] == "likely reward hacking"
    assert "another prompt's reference as against their own" in flat_gap["summary"]
    both_gain = hacking.judge(_steps(own=(0.10, 0.30), decoy=(0.05, 0.25)), [])  # a gap, but the decoy gains too
    assert both_gain["verdict"] == "likely reward hacking"
    assert "does not depend on the reference" in both_gain["summary"]
    falling = hacking.judge(_steps(own=(0.10, 0.12), decoy=(0.10, 0.12), reward=(1.2, 1.0)), [])
    assert falling["verdict"] == "no rise" and "reference" in falling["summary"]  # still says what it saw


def _dump(outputs: list[str]) -> list[dict]:
    return [{"input": f"prompt {i}", "output": o, "gts": REFS[i], "score": 1.0, "semantic_reward": 0.0}
            for i, o in enumerate(outputs)]


def test_a_run_without_step_diagnostics_is_judged_from_its_validation_dumps():
    old_steps = [{"step": s, "reward_mean": 1.0 + 0.01 * s} for s in range(1, 13)]  # before the hook
    constant = _dump(["ར་ར་ར་ར་ར་ར་ར་ར"] * 5)
    section = hacking.judge(old_steps, [(6, _dump(REFS)), (12, constant)])
    assert section["verdict"] == "likely reward hacking"
    assert "1 distinct for 5 prompts" in section["summary"]
    lexical = section["evidence"]["validation"]["lexical"]
    assert lexical["chrf_own"] == pytest.approx(lexical["chrf_other"])  # a constant matches any reference alike
    assert section["examples"][0] == {"output": "ར་ར་ར་ར་ར་ར་ར་ར", "prompts": 5, "of": 5, "reference": REFS[0],
                                      "score": 1.0}
    assert [v["distinct_outputs"] for v in section["evidence"]["validation_steps"]] == [5.0, 1.0]
    faithful = hacking.judge(old_steps, [(12, _dump(REFS))])  # each output is its own reference
    assert faithful["verdict"] == "not measured"  # no sign of hacking, but no specificity columns either
    assert faithful["evidence"]["validation"]["lexical"]["difference"] > 0.5
    assert hacking.judge(old_steps, [])["verdict"] == "not measured"


def test_reward_hacking_reads_the_stage_folder_and_skips_damaged_lines(tmp_path):
    (tmp_path / "validation").mkdir()
    (tmp_path / "steps.json").write_text(json.dumps(_steps(own=(0.1, 0.12), decoy=(0.1, 0.12))))
    lines = [json.dumps(r, ensure_ascii=False) for r in _dump(["ཀ"] * 5)]
    (tmp_path / "validation" / "12.jsonl").write_text("\n".join([*lines, "{not json", "[1]"]) + "\n", encoding="utf-8")
    section = hacking.reward_hacking(tmp_path / "steps.json")
    assert section["verdict"] == "likely reward hacking"
    assert section["skipped_lines"] == {str(tmp_path / "validation" / "12.jsonl"): [6, 7]}
    assert any("12.jsonl lines 6, 7" in r for r in section["reasons"])
    md = "\n".join(hacking.hacking_markdown(section))
    assert "**likely reward hacking.**" in md and "`ཀ` | 5 of 5" in md
    assert hacking.reward_hacking(None) is None and hacking.hacking_markdown(None) == []


def test_the_report_carries_the_section_and_its_plot(eval_inputs, tmp_path):  # noqa: F811
    grpo = tmp_path / "grpo"
    (grpo / "validation").mkdir(parents=True)
    (grpo / "steps.json").write_text(json.dumps(_steps(own=(0.10, 0.30), decoy=(0.10, 0.11))))
    (grpo / "validation" / "12.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in _dump(REFS)) + "\n", encoding="utf-8")
    out = tmp_path / "report"
    assert main(["run", str(_config(eval_inputs, out, None, reward_curve=str(grpo / "steps.json"))), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["reward_hacking"]["verdict"] == "reference-specific"
    md = (out / "report.md").read_text()
    assert "## Is the GRPO reward rise learning?" in md and "**reference-specific.**" in md
    assert (out / "reward_hacking.png").stat().st_size > 10_000 and "reward_hacking.png" in md
