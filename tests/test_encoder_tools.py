"""The encoder audit: its metrics on hand-made embeddings, as a sentence-transformers evaluator (alone and
selecting a checkpoint inside a short training run), and the training entry point on a tiny run."""

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from semantic_reward.encoder_tools.audit import AuditEvaluator, AuditThresholds, perturb, unk_share, verdict
from semantic_reward.encoder_tools.degenerate import PROBE_KINDS
from semantic_reward.encoder_tools.audit_metrics import (
    pair_similarities,
    propose_tau,
    random_pair_similarities,
    roc_auc,
)


class _FixedEncoder:
    """A stand-in SentenceTransformer whose embedding of each text is given by hand."""

    tokenizer = None  # no unknown token: unk share 0
    model_card_data = SimpleNamespace(set_evaluation_metrics=lambda *args, **kwargs: None)

    def __init__(self, table, default=None):
        self.table = {k: np.asarray(v, float) for k, v in table.items()}
        self.default = default

    def vector(self, text):
        return self.table[text] if self.default is None else self.table.get(text, np.asarray(self.default, float))

    def encode(self, sentences, convert_to_numpy=True, normalize_embeddings=False, **kwargs):
        vecs = np.stack([self.vector(s) for s in sentences])
        if normalize_embeddings:
            vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs if convert_to_numpy else [torch.tensor(v) for v in vecs]


def _audit_p_at_1(src_vecs, tgt_vecs):
    src = [f"源{i}" for i in range(len(src_vecs))]
    tgt = [f"ཚིག{i}" for i in range(len(tgt_vecs))]
    # perturbed texts of the sensitivity check get a default vector; P@1 reads only the pairs
    model = _FixedEncoder({**dict(zip(src, src_vecs)), **dict(zip(tgt, tgt_vecs))}, default=np.ones(len(src_vecs[0])))
    metrics = AuditEvaluator(src, tgt, "tibetan", name="dev")(model)
    return metrics["dev_p_at_1_src2tgt"], metrics["dev_p_at_1_tgt2src"]


def test_audit_evaluator_p_at_1_on_known_embeddings():
    from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

    assert isinstance(AuditEvaluator(["a", "b"], ["c", "d"]), SentenceEvaluator)
    assert _audit_p_at_1(np.eye(4), np.eye(4)) == (1.0, 1.0)
    # target 3 has target 0's embedding: source 0 ties and TranslationEvaluator's argmax takes the first (hit);
    # source 3 is orthogonal to every target, so argmax is target 0 (miss): 3 of 4
    tgt = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], float)
    assert _audit_p_at_1(np.eye(4), tgt)[0] == 0.75
    # a constant encoder finds only the first pair (argmax of a constant row is index 0)
    assert _audit_p_at_1(np.ones((5, 3)), np.ones((5, 3))) == (0.2, 0.2)


def test_audit_evaluator_asymmetry_by_hand():
    src = np.array([[1, 0], [1, 0.1]], float)
    tgt = np.array([[1, 0], [0, 1]], float)
    # s->t: row 0 best is tgt 0 (hit); row 1: cos to tgt0 0.995 > cos to tgt1 0.0995 (miss) -> 0.5
    # t->s: tgt 0 best is src 0 (1.0 vs 0.995, hit); tgt 1 best is src 1 (0.0995 vs 0, hit) -> 1.0
    assert _audit_p_at_1(src, tgt) == (0.5, 1.0)


def test_audit_evaluator_metrics_dict():
    src, tgt = ["源0", "源1", "源2"], ["ཀ་ཁ", "ག་ང", "ཅ་ཆ"]
    model = _FixedEncoder({**dict(zip(src, np.eye(3))), **dict(zip(tgt, np.eye(3)))}, default=[1.0, 0.5, 0.25])
    ev = AuditEvaluator(src, tgt, "tibetan", name="dev")
    metrics = ev(model)
    assert ev.primary_metric == "dev_p_at_1_min" and metrics[ev.primary_metric] == 1.0
    assert metrics["dev_auc"] == 1.0 and metrics["dev_unk_share"] == 0.0 and metrics["dev_lost_share"] == 0.0
    assert metrics["dev_true_pair_similarity_mean"] == pytest.approx(1.0)
    assert all(isinstance(v, float) for v in metrics.values())
    assert ev.last_audit["sensitivity"]["truncated"]["rows"] == 3
    # every degenerate output gets the default vector, whose cosine with each one-hot reference is positive: all
    # of them score above the unrelated floor (0: the references are orthogonal), and nothing else fails
    assert metrics["dev_unrelated_floor"] == 0.0 and metrics["dev_degenerate_share_max"] == 1.0
    assert metrics["dev_usable"] == 0.0 and len(ev.last_audit["verdict_reasons"]) == len(PROBE_KINDS)
    assert [r.split(":")[0] for r in ev.last_audit["verdict_reasons"]] == list(PROBE_KINDS)
    # every truncated copy is a text the stub does not know (default vector): cosine with each one-hot reference
    default = np.array([1.0, 0.5, 0.25]) / np.linalg.norm([1.0, 0.5, 0.25])
    assert perturb("truncated", tgt[0], src[0], src[1], random.Random(0)) not in model.table
    assert ev.last_audit["sensitivity"]["truncated"]["similarity_mean"] == pytest.approx(default.mean())
    # the untranslated source is the source itself: one-hot like its reference, similarity 1, so at tau 0 it
    # earns the full R_sim on every row (the language reward is what stops it)
    untranslated = ev.last_audit["untranslated_source"]
    assert untranslated["r_sim_mean"] == pytest.approx(1.0) and untranslated["rewarded_share"] == 1.0


def test_similarities_auc_and_tau_by_hand():
    src = np.array([[1, 0], [0, 1], [1, 1]], float)
    tgt = np.array([[2, 0], [0, 3], [-1, -1]], float)
    np.testing.assert_allclose(pair_similarities(src, tgt), [1.0, 1.0, -1.0])
    rand = random_pair_similarities(src, tgt, seed=3)
    assert rand.shape == (3,)
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert roc_auc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert roc_auc([0.5], [0.5]) == 0.5
    # 25th percentile of 0.2, 0.4, 0.6, 0.8, 1.0 by linear interpolation = 0.4
    assert propose_tau([0.2, 0.4, 0.6, 0.8, 1.0], 25) == pytest.approx(0.4)
    assert propose_tau([-0.5, float("nan")], 50) == 0.0
    with pytest.raises(ValueError):
        propose_tau([float("nan")])


def test_unrelated_tau_is_the_median_reference_to_reference_similarity():
    from semantic_reward.encoder_tools.audit import unrelated_tau

    tau = unrelated_tau([0.1, 0.3, 0.2, 0.9])  # median of 0.1, 0.2, 0.3, 0.9 = 0.25
    assert tau["tau"] == pytest.approx(0.25) and tau["pairs"] == 4 and tau["percentile"] == 50.0
    assert unrelated_tau([-0.4, -0.2, -0.1])["tau"] == 0.0  # clipped: tau is never negative
    # in an audit it is computed on the targets against other targets (what the reward compares)
    src, tgt = ["源0", "源1", "源2"], ["ཀ་ཁ", "ག་ང", "ཅ་ཆ"]
    vecs = np.array([[1, 0, 0], [0.6, 0.8, 0], [0.6, 0, 0.8]])
    model = _FixedEncoder({**dict(zip(src, np.eye(3))), **dict(zip(tgt, vecs))}, default=[1.0, 0.5, 0.25])
    audit = AuditEvaluator(src, tgt, "tibetan").audit(model)
    # every pair of different references: 0.6, 0.6, 0.36 -> median 0.6
    assert audit["tau_unrelated"]["tau"] == pytest.approx(0.6) and audit["tau_unrelated"]["pairs"] == 3
    assert audit["tau_unrelated"]["clipped"] is False


def test_verdict_thresholds():
    good = {"p_at_1_src2tgt": 0.9, "p_at_1_tgt2src": 0.8, "auc": 0.97, "unk_share": 0.0, "unrelated_floor": 0.1,
            "round_trip": {"lost_share": 0.0}, "degenerate": {}, "shuffle_sensitivity": 0.5}
    assert verdict(good, AuditThresholds()) == ("usable", [])
    bad = {**good, "p_at_1_tgt2src": 0.2, "unk_share": 0.4}
    label, reasons = verdict(bad, AuditThresholds())
    assert label == "unusable" and len(reasons) == 2 and "40.0%" in reasons[1]


def test_perturbations():
    rng = random.Random(0)
    ref = "ཀ་ཁ་ག་ང་ཅ།"
    assert perturb("truncated", ref, "中文", "别的", rng) == "ཀ་ཁ།"
    shuffled = perturb("shuffled", ref, "中文", "别的", rng)
    assert sorted(shuffled.rstrip("།").split("་")) == ["ཀ", "ཁ", "ག", "ང", "ཅ"] and shuffled != ref
    assert perturb("numbers_changed", "ལོ་2024་༢༠", "", "", rng) == "ལོ་5357་༥༣"
    assert perturb("numbers_changed", ref, "", "", rng) is None
    assert perturb("untranslated_source", ref, "中文", "别的", rng) == "中文"
    assert perturb("wrong_language_other_sentence", ref, "中文", "别的", rng) == "别的"


def test_unk_share_counts_target_letters_in_unknown_tokens(minilm_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path)
    assert unk_share(tok, ["hello world"], ["Latin"]) == 0.0
    share = unk_share(tok, ["བཀྲ་ཤིས་བདེ་ལེགས།"], ["Tibetan"])
    assert 0.0 < share <= 1.0
    assert unk_share(tok, ["123 ..."], ["Tibetan"]) == 0.0  # no target letters at all


@pytest.mark.parametrize(("anchor", "hard_negatives", "degenerate"),
                         [("source", False, False), ("target", True, False), ("source", True, True)])
def test_training_entry_point_tiny_run(tmp_path, anchor, hard_negatives, degenerate):
    from sentence_transformers import SentenceTransformer

    from tiny_models import build_tiny_encoder
    from semantic_reward.encoder_tools.train import EncoderTrainConfig, load_as_sentence_transformer, train_encoder

    src = [f"第{i}句中文" for i in range(40)]
    tgt = [f"ཚིག་{i}་པ།" for i in range(40)]
    base = build_tiny_encoder(src + tgt, tmp_path / "base", vocab_size=300, hidden_size=32, num_layers=1,
                              num_heads=2)
    before = load_as_sentence_transformer(str(base), device="cpu").encode(src[:3])
    cfg = EncoderTrainConfig(model=str(base), output_dir=str(tmp_path / "run"), anchor=anchor, epochs=1,
                             hard_negatives=hard_negatives, degenerate_negatives=degenerate,
                             batch_size=8, learning_rate=1e-3, save_steps=3, eval_steps=3, device="cpu")
    final = train_encoder(cfg, src, tgt, src[:8], tgt[:8])
    model = SentenceTransformer(str(final), device="cpu")
    after = model.encode(src[:3])
    assert after.shape == before.shape and not np.allclose(after, before)  # weights moved
    assert model.max_seq_length == 128
    assert any((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))


def test_audit_evaluator_selects_the_checkpoint(tmp_path):
    """A short training run with the audit as its evaluator keeps the best-scoring checkpoint, not the last."""
    from sentence_transformers import SentenceTransformer

    from tiny_models import build_tiny_encoder
    from semantic_reward.encoder_tools.train import EncoderTrainConfig, train_encoder

    src = [f"第{i}句中文讲天气" for i in range(48)]
    tgt = [f"ཚིག་{i}་པ་གནམ་གཤིས།" for i in range(48)]
    base = build_tiny_encoder(src + tgt, tmp_path / "base", vocab_size=300, hidden_size=32, num_layers=1,
                              num_heads=2)
    dev_src, dev_tgt = src[:16], tgt[:16]
    evaluator = AuditEvaluator(dev_src, dev_tgt, "tibetan", name="dev", batch_size=16)
    with pytest.raises(ValueError, match="'save_steps': 5 must be a multiple"):
        EncoderTrainConfig(model="m", output_dir="o", save_steps=5, eval_steps=3)
    # a high learning rate makes the dev score move around, so the best checkpoint need not be the last
    cfg = EncoderTrainConfig(model=str(base), output_dir=str(tmp_path / "run"), epochs=3, batch_size=8,
                             learning_rate=5e-3, save_steps=3, eval_steps=3, device="cpu")
    final = train_encoder(cfg, src, tgt, evaluator=evaluator)
    record = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert record["metric"] == "dev_p_at_1_min" and record["selected_best"] is True
    scores = [e["eval_dev_p_at_1_min"] for e in record["evaluations"] if "eval_dev_p_at_1_min" in e]
    assert len(scores) >= 3 and record["best_metric"] == max(scores)
    best_step = record["evaluations"][scores.index(max(scores))]["step"]
    assert record["best_checkpoint"].endswith(f"checkpoint-{best_step}")
    # the saved final model is that checkpoint: re-scoring it gives the best score
    rescored = AuditEvaluator(dev_src, dev_tgt, "tibetan", name="dev", batch_size=16)(
        SentenceTransformer(str(final), device="cpu"))
    assert rescored["dev_p_at_1_min"] == pytest.approx(record["best_metric"])
    assert record["final_metrics"]["dev_p_at_1_min"] == pytest.approx(record["best_metric"])
    assert "Dev audit" in (tmp_path / "run" / "dev_audit" / "audit.md").read_text()


def test_audit_cli_writes_reports(tmp_path, news_pairs, minilm_path):
    from semantic_reward.encoder_tools.__main__ import main

    hyps = tmp_path / "hyp.jsonl"
    hyps.write_text("\n".join(json.dumps({"hypothesis": r["bo"][:30], "reference": r["bo"]}, ensure_ascii=False)
                              for r in news_pairs[:20]), encoding="utf-8")
    from tests.conftest import SHARED_DATA

    rc = main(["audit", "--input", str(SHARED_DATA / "bo_zh_news.jsonl"), "--direction", "zh-bo",
               "--encoder", f"minilm={minilm_path}", "--hypotheses", str(hyps), "--out", str(tmp_path / "a")])
    assert rc == 0
    audit = json.loads((tmp_path / "a" / "audit.json").read_text())
    m = audit["minilm"]
    for key in ("p_at_1_src2tgt", "p_at_1_tgt2src", "auc", "unk_share", "lost_share", "degenerate",
                "shuffle_sensitivity", "untranslated_source", "verdict"):
        assert key in m
    assert m["verdict"] == "unusable" and m["unk_share"] > 0.05
    # an English tokenizer: many Tibetan characters are unknown, the vowel signs deleted by its normalizer
    # (44% of the dev split's Tibetan characters lost), far above the audit's 2% bar
    rt = m["round_trip"]
    assert m["lost_share"] > 0.3 and rt["unknown"] > 0 and rt["deleted"] > 0
    assert m["lost_share"] == pytest.approx((rt["unknown"] + rt["deleted"] + rt["altered"]) / rt["characters"])
    assert 0.0 <= m["tau_proposal"]["tau"] <= 0.99
    assert (tmp_path / "a" / "similarity_histograms.png").stat().st_size > 5000
    assert "UNUSABLE" in (tmp_path / "a" / "audit.md").read_text()
