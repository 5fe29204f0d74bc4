"""Evaluation: hand-computed metric cases, sacrebleu parity (scores, intervals, paired tests, signatures), drift,
the judge over real HTTP, and the evaluation command end to end (generation files, tiny models, atomic output)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

from semantic_reward.evaluation.cmrc import cmrc_em, cmrc_f1, cmrc_scores, segment
from semantic_reward.evaluation.judge import JudgeConfig, combine, judge_pairwise, parse_verdict, wilson_interval
from semantic_reward.evaluation.metrics import (
    bleu,
    chrf,
    language_consistency,
    lcs_length,
    output_checks,
    paired_significance,
    rouge_l,
    sacrebleu_scores,
    untestable_systems,
)
from semantic_reward.evaluation.metrics import _rouge_units, _segmented
from semantic_reward.text import pretokenize


def test_metric_tokenisation_by_hand():
    # both tsheg forms separate syllables; shads and Chinese punctuation are not scored
    assert _segmented(["བཀྲ་ཤིས་བདེ་ལེགས།", "ཀ\u0f0cཁ། །ག"], "bo") == ["བཀྲ ཤིས བདེ ལེགས", "ཀ ཁ ག"]
    assert _rouge_units("ཀ་ཁ། །ག", "bo") == ["ཀ", "ཁ", "ག"]
    assert _rouge_units("你好，世界abc", "zh") == ["你", "好", "世", "界", "abc"]


def test_rouge_l_by_hand():
    assert lcs_length("ABCBDAB", "BDCABA") == 4
    # units a b c d vs a c d: LCS 3 -> P = 3/3, R = 3/4 -> F = 2*1*0.75/1.75 = 0.857142...
    assert rouge_l("ཀ་ཁ་ག་ང", "ཀ་ག་ང", "bo") == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert rouge_l("你好世界", "你好世界", "zh") == 1.0
    assert rouge_l("", "你好", "zh") == 0.0
    # 你们好 vs 你好: LCS 2 -> P 2/3, R 1 -> F 0.8
    assert rouge_l("你们好", "你好", "zh") == pytest.approx(0.8)


def test_bleu_and_chrf_equal_sacrebleu_called_directly(news_pairs):
    refs_zh = [r["zh"] for r in news_pairs[:30]]
    hyps_zh = [r["zh"][: max(1, len(r["zh"]) * 2 // 3)] for r in news_pairs[:30]]
    # every language is cut into the reward's units (Han: one per character), then sacrebleu runs with "none"
    seg = lambda xs: [pretokenize(x) for x in xs]  # noqa: E731
    assert bleu(hyps_zh, refs_zh, "zh") == pytest.approx(
        sacrebleu.corpus_bleu(seg(hyps_zh), [seg(refs_zh)], tokenize="none").score / 100)
    assert chrf(hyps_zh, refs_zh, "zh") == pytest.approx(
        sacrebleu.metrics.CHRF(word_order=2).corpus_score(seg(hyps_zh), [seg(refs_zh)]).score / 100)
    refs_bo = [r["bo"] for r in news_pairs[:30]]
    hyps_bo = [r["bo"][: len(r["bo"]) // 2] for r in news_pairs[:30]]
    direct = sacrebleu.corpus_bleu([pretokenize(h) for h in hyps_bo], [[pretokenize(r) for r in refs_bo]],
                                   tokenize="none").score / 100
    assert bleu(hyps_bo, refs_bo, "bo") == pytest.approx(direct)
    assert 0.0 < bleu(hyps_bo, refs_bo, "bo") < 1.0
    assert bleu(refs_bo, refs_bo, "bo") == pytest.approx(1.0)


def test_cmrc_em_f1_by_hand():
    assert segment("Hello，世界 2018！") == ["hello", "世", "界", "2018"]
    assert cmrc_em("台湾新北市。", ["台湾新北市"]) == 100.0  # punctuation ignored
    assert cmrc_em("新北市", ["台湾新北市"]) == 0.0
    # pred 新北市 (3) vs ref 台湾新北市 (5): common substring 3 -> P 1, R 0.6 -> F1 75
    assert cmrc_f1("新北市", ["台湾新北市"]) == pytest.approx(75.0)
    # best over references
    assert cmrc_f1("新北市", ["台湾", "新北市"]) == pytest.approx(100.0)
    # common substring, not subsequence: 北京大学 vs 北大: substring 1 -> P 1/4, R 1/2 -> F1 33.33
    assert cmrc_f1("北京大学", ["北大"]) == pytest.approx(100 * 2 * 0.25 * 0.5 / 0.75)
    assert cmrc_f1("", ["北大"]) == 0.0
    s = cmrc_scores(["新北市", "台湾新北市"], [["台湾新北市"], ["台湾新北市"]])
    assert s == {"em": 50.0, "f1": pytest.approx(87.5), "avg": pytest.approx(68.75), "questions": 2}


def test_language_consistency_by_hand():
    assert language_consistency(["བཀྲ་ཤིས།", "你好", ""], "bo") == pytest.approx(1 / 3)
    assert language_consistency(["你好", "你好 hello world"], "zh") == pytest.approx(1 / 2)


def _bo_systems(news_pairs, n=40):
    refs = [r["bo"] for r in news_pairs[:n]]
    half = [r[: len(r) // 2] for r in refs]
    most = [r[: len(r) * 4 // 5] for r in refs]
    return refs, half, most


def test_intervals_and_signatures_are_sacrebleus(news_pairs):
    refs, hyps, _ = _bo_systems(news_pairs)
    ours = sacrebleu_scores(hyps, refs, "bo", n_bootstrap=300)
    seg_h, seg_r = [pretokenize(h) for h in hyps], [[pretokenize(r) for r in refs]]
    for name, metric in (("bleu", BLEU(tokenize="none")), ("chrf", CHRF(word_order=2))):
        direct = metric.corpus_score(seg_h, seg_r, n_bootstrap=300)
        assert ours[name].score == pytest.approx(direct.score / 100)
        # sacrebleu's interval: bootstrap mean +- half the 95% percentile width
        assert ours[name].interval.mean == pytest.approx(direct._mean / 100, abs=1e-6)
        assert ours[name].interval.low == pytest.approx((direct._mean - direct._ci) / 100, abs=1e-6)
        assert ours[name].interval.high == pytest.approx((direct._mean + direct._ci) / 100, abs=1e-6)
        assert ours[name].interval.low < ours[name].score < ours[name].interval.high
        assert ours[name].signature == str(metric.get_signature())
    assert "tok:none" in ours["bleu"].signature and "bs:300" in ours["bleu"].signature
    assert "nw:2" in ours["chrf"].signature
    zh = sacrebleu_scores(["你好世界"], ["你好世界"], "zh", n_bootstrap=1)
    assert "tok:none" in zh["bleu"].signature and zh["bleu"].interval is None


def test_paired_tests_are_sacrebleus(news_pairs):
    refs, half, most = _bo_systems(news_pairs)
    ours = paired_significance(("cold_start", half), [("grpo", most), ("same", half)], refs, "bo",
                               n_bootstrap=200, ar_trials=500)
    seg = lambda xs: [pretokenize(x) for x in xs]  # noqa: E731
    for test, key, n in (("bs", "p_value_bootstrap", 200), ("ar", "p_value_ar", 500)):
        metrics = {"bleu": BLEU(tokenize="none"), "chrf": CHRF(word_order=2)}
        # "same" (byte-identical to the reference) is not tested: sacrebleu sees the reference and grpo only
        sigs, direct = PairedTest([("cold_start", seg(half)), ("grpo", seg(most))], metrics,
                                  [seg(refs)], test_type=test, n_samples=n)()
        for metric, score_name in (("bleu", "BLEU"), ("chrf", "chrF2++")):
            base, grpo = direct[score_name]
            assert ours["systems"]["grpo"][metric][key] == pytest.approx(grpo.p_value)
            assert ours["systems"]["grpo"][metric]["difference"] == pytest.approx((grpo.score - base.score) / 100)
            assert ours["signatures"][test][metric] == str(sigs[score_name])
            same = ours["systems"]["same"][metric]
            assert same["difference"] == 0.0 and same[key] is None
            assert same["untested"] == "same's outputs are byte-identical to cold_start's"
    assert ours["untested"] == {"same": "same's outputs are byte-identical to cold_start's"}
    # a clearly better system is significant
    assert ours["systems"]["grpo"]["bleu"]["p_value_ar"] < 0.01
    assert "ar:500" in ours["signatures"]["ar"]["bleu"] and "bs:200" in ours["signatures"]["bs"]["chrf"]
    # different, prompt-dependent outputs that both score 0 everywhere: no difference, p = 1 (sacrebleu: 1/(n+1))
    zero = paired_significance(("a", ["ཀ" * (i + 1) for i in range(5)]), [("b", ["ཁ" * (i + 1) for i in range(5)])],
                               ["ག"] * 5, "bo", 100, 100)
    assert zero["systems"]["b"]["bleu"] == {"difference": 0.0, "p_value_bootstrap": 1.0, "p_value_ar": 1.0}
    with pytest.raises(ValueError, match="grpo"):
        paired_significance(("a", half), [("grpo", most[:-1])], refs, "bo")


def test_collapsed_outputs_are_flagged_and_get_no_p_value(news_pairs):
    """The quickstart's old table: every system wrote one string for all prompts, two of them the same one."""
    refs, half, _ = _bo_systems(news_pairs, n=20)
    constant = ["ཀ་ཀ་ཀ་"] * 20
    mostly = ["ས་ས་"] * 12 + half[:8]  # one output for 60% of the prompts
    checks = output_checks({"cold_start": constant, "sft_strong": list(constant), "grpo": mostly, "ok": half})
    per = checks["systems"]
    assert per["cold_start"] == {"prompts": 20, "distinct_outputs": 1, "distinct_share": 0.05, "top_output_share": 1.0,
                                 "top_output": "ཀ་ཀ་ཀ་", "constant": True, "prompt_independent": True,
                                 "identical_to": ["sft_strong"]}
    assert per["sft_strong"]["identical_to"] == ["cold_start"]
    assert per["grpo"]["distinct_outputs"] == 9 and per["grpo"]["top_output_share"] == pytest.approx(0.6)
    assert per["grpo"]["prompt_independent"] and not per["grpo"]["constant"] and "identical_to" not in per["grpo"]
    assert not per["ok"]["prompt_independent"] and per["ok"]["distinct_outputs"] == 20
    assert checks["identical_groups"] == [["cold_start", "sft_strong"]]
    # spacing and the other tsheg form are the same output (the reward's normalisation); identity is byte for byte
    spaced = output_checks({"a": ["ཀ་ཁ", "ཀ\u0f0cཁ", "ཀ་ཁ "], "b": ["ཀ་ཁ", "ཀ\u0f0cཁ", "ཀ་ཁ"]})["systems"]
    assert spaced["a"]["constant"] and "identical_to" not in spaced["a"]
    assert output_checks({"c": ["ཀ"] * 3}, max_top_share=1.0)["systems"]["c"]["prompt_independent"]

    sig = paired_significance(("cold_start", constant), [("sft_strong", constant), ("grpo", mostly), ("ok", half)],
                              refs, "bo", 50, 50)
    assert sig["signatures"] == {}  # nothing was tested: the reference itself is constant
    assert set(sig["untested"]) == {"sft_strong", "grpo", "ok"}
    assert sig["untested"]["sft_strong"] == ("sft_strong's outputs are byte-identical to cold_start's; sft_strong "
                                             "writes one output for all 20 prompts; cold_start writes one output "
                                             "for all 20 prompts")
    assert sig["untested"]["ok"] == "cold_start writes one output for all 20 prompts"
    direct = chrf(half, refs, "bo") - chrf(constant, refs, "bo")
    assert sig["systems"]["ok"]["chrf"]["difference"] == pytest.approx(direct)
    assert sig["systems"]["ok"]["chrf"]["p_value_ar"] is None
    assert sig["systems"]["ok"]["bleu"]["p_value_bootstrap"] is None
    # a sound reference: only the collapsed system goes untested, the other is tested as before
    sig = paired_significance(("ok", half), [("grpo", mostly), ("cold_start", constant)], refs, "bo", 50, 50)
    assert set(sig["untested"]) == {"grpo", "cold_start"}
    assert sig["untested"]["grpo"] == "grpo's most common output answers 60% of the prompts (9 distinct outputs for 20)"
    assert untestable_systems(output_checks({"ok": half, "x": [h + "་ཀ" for h in half]}), "ok") == {}


def test_drift_identical_is_zero_and_perturbed_is_positive(tmp_path):
    from transformers import AutoTokenizer

    from semantic_reward.evaluation.drift import drift_summary, token_drift
    from tiny_models import build_tiny_policy, perturbed_copy, train_causal_lm

    texts = [f"第{i}句话讲的是天气很好。" for i in range(60)]
    init = build_tiny_policy(texts, tmp_path / "init", vocab_size=400, hidden_size=32, num_layers=1, num_heads=2)
    base = train_causal_lm(init, texts, tmp_path / "base", steps=60, batch_size=8, progress=False)
    noisy = perturbed_copy(base, tmp_path / "noisy", scale=1.0)
    tok = AutoTokenizer.from_pretrained(base)
    # held-out text the base has learnt to predict: noise on its weights can only make it worse there
    # (on text a barely trained tiny model cannot predict, random noise may as well help by chance)
    ood = ["第61句话讲的是天气很好。", "第72句话讲的是天气很好。"]
    same = drift_summary(token_drift(str(base), str(base), tok, ood, progress=False))
    assert same["nll_increase_mean"] == pytest.approx(0.0, abs=1e-6) and same["kl_p90"] == pytest.approx(0.0, abs=1e-6)
    moved = drift_summary(token_drift(str(base), str(noisy), tok, ood, progress=False))
    assert moved["nll_increase_mean"] > 0.01 and moved["kl_p90"] > 0.01 and moved["tokens"] == same["tokens"] > 0


class _JudgeHandler(BaseHTTPRequestHandler):
    """Prefers the answer containing 'good'; says A when both or neither do (a position-biased judge)."""

    calls = []

    def do_POST(self):  # noqa: N802 - http.server's API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _JudgeHandler.calls.append(body)
        user = body["messages"][-1]["content"]
        a = user.split("Answer A:")[1].split("Answer B:")[0]
        b = user.split("Answer B:")[1]
        verdict = "B" if ("good" in b and "good" not in a) else "A"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": verdict}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_judge_against_a_real_local_http_server():
    server = HTTPServer(("127.0.0.1", 0), _JudgeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cfg = JudgeConfig(base_url=f"http://127.0.0.1:{server.server_port}", model="judge", timeout_s=10)
        items = [
            {"source": "s1", "reference": "r", "x": "good answer", "y": "bad answer"},  # x wins both orders
            {"source": "s2", "reference": "r", "x": "bad", "y": "good"},  # y wins both orders
            {"source": "s3", "reference": "r", "x": "meh", "y": "meh too"},  # position bias only -> tie
            {"source": "s4", "reference": "r", "x": "good one", "y": "good two"},  # A in both orders -> tie
        ]
        result = judge_pairwise(cfg, items, "grpo", "sft")
    finally:
        server.shutdown()
    assert result["outcomes"] == ["x", "y", "tie", "tie"]
    assert (result["grpo_wins"], result["sft_wins"], result["ties"]) == (1, 1, 2)
    assert result["grpo_win_rate"] == pytest.approx(0.5)
    assert result["ci95"][0] < 0.5 < result["ci95"][1]
    assert len(_JudgeHandler.calls) == 8  # both orders for every item
    assert "s1" in _JudgeHandler.calls[0]["messages"][-1]["content"]


def test_judge_verdict_parsing_and_combination():
    assert parse_verdict("A") == "A" and parse_verdict("Answer: B.") == "B" and parse_verdict("TIE") == "tie"
    assert parse_verdict("") == "tie"
    assert combine("A", "B") == "x" and combine("B", "A") == "y" and combine("A", "A") == "tie"
    assert combine("tie", "B") == "tie"
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)


def test_general_benchmark_through_lm_eval_on_a_local_task(tmp_path):
    pytest.importorskip("lm_eval", reason="lm-eval is not installed")
    from semantic_reward.evaluation.general import run_lm_eval
    from tiny_models import build_tiny_policy

    rows = [{"question": f"{a}+{b}=", "choices": [str(a + b), str(a + b + 1), str(a * 7)], "label": 0}
            for a in range(1, 6) for b in range(1, 3)]
    (tmp_path / "mc.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "local_mc.yaml").write_text(
        "task: local_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {tmp_path / 'mc.jsonl'}\ntest_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n", encoding="utf-8")
    model = build_tiny_policy([r["question"] + c for r in rows for c in r["choices"]], tmp_path / "m",
                              vocab_size=300, hidden_size=32, num_layers=1, num_heads=2)
    result = run_lm_eval(str(model), ["local_mc"], device="cpu", batch_size=4, include_path=str(tmp_path / "tasks"))
    assert set(result) == {"local_mc"}
    assert 0.0 <= result["local_mc"]["acc"] <= 1.0
    assert "acc_stderr" not in result["local_mc"]


def test_bootstrap_interval_when_some_resamples_have_only_empty_outputs():
    """sacrebleu scores an all-empty resample as a Python 0.0 and others as float32; the interval
    must still come out (a weak system that mostly outputs nothing hit a TypeError here)."""
    hyps = ["a b c d e f"] + [""] * 9
    refs = ["a b c d e f"] + [f"p{i} q{i}" for i in range(9)]
    scores = sacrebleu_scores(hyps, refs, "bo", n_bootstrap=200)
    plain = sacrebleu_scores(hyps, refs, "bo", n_bootstrap=1)
    for name in ("bleu", "chrf"):
        expected = plain[name].score
        assert expected > 0 and plain[name].interval is None
        assert scores[name].score == pytest.approx(expected)
        interval = scores[name].interval
        assert interval is not None and interval.low < interval.mean < interval.high
        assert 0.0 < interval.mean < expected + 0.2


class _Embedder:
    """An open 'service' (``embed_sync``) built on the hash encoder, tagged so two encoders give different vectors."""

    def __init__(self, tag: str):
        from tests.helpers import HashEncoder

        self.tag, self.encoder = tag, HashEncoder(dimension=16)

    def embed_sync(self, texts):
        return self.encoder.encode([self.tag + t for t in texts])


def test_similarity_is_reported_under_the_encoder_that_computed_it(news_pairs):
    from semantic_reward.evaluation.evaluate import EVAL_SIMILARITY, REWARD_SIMILARITY, semantic_similarity, task_metrics
    from semantic_reward.evaluation.report import METRIC_LABELS, similarity_note

    refs = [r["bo"] for r in news_pairs[:6]]
    hyps = refs[:3] + [r[:5] for r in refs[3:]]  # 3 exact copies (cosine 1 under any encoder), 3 others
    reward, independent = _Embedder("reward:"), _Embedder("eval:")
    only_reward = task_metrics(hyps, refs, "bo", reward_encoder=reward, n_bootstrap=1).values
    assert only_reward[REWARD_SIMILARITY] == pytest.approx(semantic_similarity(hyps, refs, reward))
    assert EVAL_SIMILARITY not in only_reward and "semantic_similarity" not in only_reward
    both = task_metrics(hyps, refs, "bo", reward_encoder=reward, eval_encoder=independent, n_bootstrap=1).values
    assert both[EVAL_SIMILARITY] == pytest.approx(semantic_similarity(hyps, refs, independent))
    assert both[EVAL_SIMILARITY] != pytest.approx(both[REWARD_SIMILARITY])  # two encoders, two columns
    assert REWARD_SIMILARITY not in task_metrics(hyps, refs, "bo", reward_encoder=None, n_bootstrap=1).values
    assert METRIC_LABELS[REWARD_SIMILARITY] == "reward-encoder sim. (not independent)"
    assert METRIC_LABELS[EVAL_SIMILARITY] == "eval-encoder sim. (independent)"
    assert similarity_note({"encoder": "enc/r"}) == (
        "reward-encoder sim. (not independent) is the cosine under the reward encoder `enc/r`, the score GRPO "
        "optimised: it rises with reward hacking and is no independent measure of quality (no eval_encoder set).")
    assert similarity_note({"encoder": "enc/r", "eval_encoder": "enc/e"}).startswith(
        "eval-encoder sim. (independent) is the cosine under `enc/e`, an encoder that is not the reward's; ")
    assert similarity_note({}) == "No embedding similarity (no encoder set)."


def test_quality_axis_is_a_task_metric(tmp_path):
    from semantic_reward.evaluation.report import write_report

    report = {"systems": {"base": {"rouge_l": 0.1, "chrf": 0.2, "reward_encoder_similarity": 0.9},
                          "grpo": {"rouge_l": 0.3, "chrf": 0.1, "reward_encoder_similarity": 0.95}},
              "quality_metric": "rouge_l", "encoder": "enc"}
    files = write_report(report, tmp_path / "ok")
    assert Path(files["quality_vs_tax"]).stat().st_size > 10_000
    report["quality_metric"] = "reward_encoder_similarity"  # the reward's own score is never the quality axis
    with pytest.raises(ValueError, match="not a task metric"):
        write_report(report, tmp_path / "bad")
