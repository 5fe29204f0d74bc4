"""The encoder audit's metrics on hand-made embeddings, and the training entry point on a tiny run."""

import json
import random

import numpy as np
import pytest

from semantic_reward.encoder_tools.audit import AuditThresholds, perturb, unk_share, verdict
from semantic_reward.encoder_tools.audit_metrics import (
    pair_similarities,
    propose_tau,
    random_pair_similarities,
    retrieval_p_at_1,
    roc_auc,
)


def test_p_at_1_on_known_embeddings():
    eye = np.eye(4)
    assert retrieval_p_at_1(eye, eye) == (1.0, 1.0)
    # target 3 is a copy of target 0: source 0 ties, source 3 ties -> both miss; 1 and 2 hit -> 0.5
    tgt = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], float)
    assert retrieval_p_at_1(np.eye(4), tgt)[0] == 0.5
    # a constant encoder retrieves nothing
    assert retrieval_p_at_1(np.ones((5, 3)), np.ones((5, 3))) == (0.0, 0.0)


def test_p_at_1_asymmetry_by_hand():
    src = np.array([[1, 0], [1, 0.1]], float)
    tgt = np.array([[1, 0], [0, 1]], float)
    # s->t: row 0 best is tgt 0 (hit); row 1: cos to tgt0 0.995 > cos to tgt1 0.0995 (miss) -> 0.5
    # t->s: tgt 0 best is src 0 (1.0 vs 0.995, hit); tgt 1 best is src 1 (0.0995 vs 0, hit) -> 1.0
    assert retrieval_p_at_1(src, tgt) == (0.5, 1.0)


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


def test_verdict_thresholds():
    good = {"p_at_1_src2tgt": 0.9, "p_at_1_tgt2src": 0.8, "auc": 0.97, "unk_share": 0.0}
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


@pytest.mark.parametrize(("anchor", "hard_negatives"), [("source", False), ("target", True)])
def test_training_entry_point_tiny_run(tmp_path, anchor, hard_negatives):
    from sentence_transformers import SentenceTransformer

    from tiny_models import build_tiny_encoder
    from semantic_reward.encoder_tools.train import EncoderTrainConfig, load_as_sentence_transformer, train_encoder

    src = [f"第{i}句中文" for i in range(40)]
    tgt = [f"ཚིག་{i}་པ།" for i in range(40)]
    base = build_tiny_encoder(src + tgt, tmp_path / "base", vocab_size=300, hidden_size=32, num_layers=1,
                              num_heads=2)
    before = load_as_sentence_transformer(str(base), device="cpu").encode(src[:3])
    cfg = EncoderTrainConfig(model=str(base), output_dir=str(tmp_path / "run"), anchor=anchor, epochs=1,
                             hard_negatives=hard_negatives,
                             batch_size=8, learning_rate=1e-3, save_steps=3, eval_steps=3, device="cpu")
    final = train_encoder(cfg, src, tgt, src[:8], tgt[:8])
    model = SentenceTransformer(str(final), device="cpu")
    after = model.encode(src[:3])
    assert after.shape == before.shape and not np.allclose(after, before)  # weights moved
    assert model.max_seq_length == 128
    assert any((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))


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
    for key in ("p_at_1_src2tgt", "p_at_1_tgt2src", "auc", "unk_share", "verdict"):
        assert key in m
    assert m["verdict"] == "unusable" and m["unk_share"] > 0.05
    assert 0.0 <= m["tau_proposal"]["tau"] <= 0.99
    assert (tmp_path / "a" / "similarity_histograms.png").stat().st_size > 5000
    assert "UNUSABLE" in (tmp_path / "a" / "audit.md").read_text()
