"""The audit rejects encoders a policy could game: a tokenizer that loses characters (the old lowercasing,
accent-stripping tiny BERT), degenerate outputs that score above the unrelated floor, shuffle-blind
similarity; the demo tokenizer keeps every character; tau's clip is recorded; the untranslated copy is
no longer the true-pair similarity under another name. Texts are constructed here (real data only with
a skip when ../shared/data is absent)."""

import json
import random
import unicodedata
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from semantic_reward.encoder_tools.audit import AuditEvaluator, AuditThresholds, unrelated_tau, verdict
from semantic_reward.encoder_tools.audit_metrics import (
    distinct_pair_similarities,
    share_above,
    shuffle_sensitivity,
)
from semantic_reward.encoder_tools.degenerate import PROBE_KINDS, degenerate_negatives, degenerate_probes
from semantic_reward.encoder_tools.round_trip import round_trip
from semantic_reward.text import text_units

# ka kha ga nga ca cha ja nya ta tha da na pa pha ba ma: base letters (Lo) with no decomposition
LETTERS = [chr(c) for c in (0x0F40, 0x0F41, 0x0F42, 0x0F44, 0x0F45, 0x0F46, 0x0F47, 0x0F49, 0x0F4F, 0x0F50, 0x0F51,
                            0x0F53, 0x0F54, 0x0F55, 0x0F56, 0x0F58)]
VOWELS = ["\u0F72", "\u0F74", "\u0F7A", "\u0F7C"]  # i u e o (combining marks, Mn)
SUBJOINED = ["\u0FB1", "\u0FB2"]  # ya, ra below (Mn)


def _syllable(i: int) -> str:
    s = LETTERS[i % len(LETTERS)]
    if i % 3 == 0:
        s += SUBJOINED[i % 2]
    if i % 2 == 0:
        s += VOWELS[(i // 2) % 4]
    return s


def _references(n: int = 8, length: int = 6) -> list[str]:
    return ["་".join(_syllable(7 * r + k) for k in range(length)) + "།" for r in range(n)]


def _sources(n: int = 8) -> list[str]:
    return [f"第{i}条新闻" for i in range(n)]


class _Encoder:
    """A stand-in SentenceTransformer: embeddings from a table, a rule, or a default; any tokenizer."""

    model_card_data = SimpleNamespace(set_evaluation_metrics=lambda *args, **kwargs: None)

    def __init__(self, table, default, tokenizer=None, rule=None):
        self.table = {k: np.asarray(v, float) for k, v in table.items()}
        self.default = np.asarray(default, float)
        self.tokenizer = tokenizer
        self.rule = rule

    def vector(self, text):
        if text in self.table:
            return self.table[text]
        ruled = self.rule(text) if self.rule else None
        return self.default if ruled is None else np.asarray(ruled, float)

    def encode(self, sentences, convert_to_numpy=True, normalize_embeddings=False, **kwargs):
        vecs = np.stack([self.vector(s) for s in sentences])
        if normalize_embeddings:
            vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs if convert_to_numpy else [torch.tensor(v) for v in vecs]


def _separating_encoder(src, tgt, tokenizer=None, rule=None):
    """Pairs on their own axis, every other text on one more axis: clears every threshold but the tokenizer's."""
    n = len(src)
    eye = np.eye(n + 1)
    table = {**dict(zip(src, eye[:n])), **dict(zip(tgt, eye[:n]))}
    return _Encoder(table, eye[n], tokenizer, rule)


def _wordpiece(texts, lowercase: bool):
    """A BERT WordPiece tokenizer like the tiny encoder's; ``lowercase`` as the old one (strips accents too)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase,
                                                strip_accents=None if lowercase else False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[PAD]", "[UNK]"]))
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", do_lower_case=lowercase,
                             strip_accents=None if lowercase else False)


def _marks(texts) -> int:
    return sum(unicodedata.category(c) == "Mn" for t in texts for c in t)


def _tibetan(texts) -> int:
    return sum(0x0F00 <= ord(c) <= 0x0FFF for t in texts for c in t)


def test_the_audit_rejects_the_old_lowercasing_tokenizer():
    src, tgt = _sources(), _references()
    old = _wordpiece(src + tgt, lowercase=True)
    audit = AuditEvaluator(src, tgt, "tibetan").audit(_separating_encoder(src, tgt, old))
    rt = audit["round_trip"]
    # accent stripping removes exactly the combining marks: every vowel sign and subjoined letter
    assert rt["characters"] == _tibetan(tgt) and rt["lost"] == _marks(tgt) > 0
    assert rt["unknown"] == 0 and rt["deleted"] + rt["altered"] == rt["lost"]
    assert audit["lost_share"] == pytest.approx(_marks(tgt) / _tibetan(tgt))
    assert audit["unk_share"] == 0.0  # what the old audit read: it saw nothing
    assert {x["codepoint"] for x in rt["top_lost"]} <= {f"U+{ord(c):04X}" for c in VOWELS + SUBJOINED}
    assert audit["verdict"] == "unusable" and len(audit["verdict_reasons"]) == 1
    assert audit["verdict_reasons"][0].startswith(f"the tokenizer loses {audit['lost_share']:.1%}")
    # the same tokenizer without lowercasing keeps every character, and the same encoder is usable
    kept = AuditEvaluator(src, tgt, "tibetan").audit(_separating_encoder(src, tgt, _wordpiece(src + tgt, False)))
    assert kept["round_trip"]["lost"] == 0 and kept["verdict"] == "usable"


def test_the_audit_rejects_an_encoder_for_which_a_repeated_syllable_beats_unrelated_text():
    src, tgt = _sources(), _references()
    n = len(src)
    hub = np.r_[np.ones(n), 0.0]  # close to every reference: cosine 1/sqrt(n) with each, above the floor 0

    def repeated(text):
        units = text_units(text)
        return hub if len(units) > 1 and len(set(units)) == 1 else None

    audit = AuditEvaluator(src, tgt, "tibetan").audit(_separating_encoder(src, tgt, rule=repeated))
    assert audit["unrelated_floor"] == 0.0  # references are orthogonal to each other
    probes = audit["degenerate"]
    assert probes["repeated_unit"]["share_above_floor"] == 1.0
    assert probes["repeated_unit"]["similarity_mean"] == pytest.approx(1 / np.sqrt(n))
    assert probes["repeated_unit"]["pairs"] == probes["repeated_unit"]["probes"] * n  # each against every reference
    assert [probes[k]["share_above_floor"] for k in PROBE_KINDS[1:]] == [0.0, 0.0, 0.0]
    assert audit["degenerate_share_max"] == 1.0
    assert audit["verdict"] == "unusable"
    assert audit["verdict_reasons"] == ["repeated_unit: 100% of degenerate outputs score above the unrelated "
                                        "floor 0.000 (> 10%)"]
    # the separating encoder without that rule passes every probe
    assert AuditEvaluator(src, tgt, "tibetan").audit(_separating_encoder(src, tgt))["verdict"] == "usable"


def test_verdict_threshold_logic_on_hand_made_metrics():
    t = AuditThresholds()
    good = {"p_at_1_src2tgt": 0.9, "p_at_1_tgt2src": 0.8, "auc": 0.97, "unk_share": 0.0, "unrelated_floor": -0.05,
            "round_trip": {"lost_share": 0.02, "unknown": 1, "deleted": 1, "altered": 0, "characters": 100},
            "degenerate": {"repeated_unit": {"pairs": 10, "share_above_floor": 0.1},
                           "punctuation_run": {"pairs": 0, "share_above_floor": 1.0}},  # no probes: not judged
            "shuffle_sensitivity": 0.05}
    assert verdict(good, t) == ("usable", [])  # every value sits on its bound: bounds pass
    assert verdict({**good, "shuffle_sensitivity": None}, t) == ("usable", [])  # no shuffled copies: not judged
    bad = {**good, "round_trip": {**good["round_trip"], "lost_share": 0.0201},
           "degenerate": {"repeated_unit": {"pairs": 10, "share_above_floor": 0.3}}, "shuffle_sensitivity": 0.04}
    label, reasons = verdict(bad, t)
    assert label == "unusable" and reasons == [
        "the tokenizer loses 2.0% of target-script characters (unknown 1, deleted 1, altered 0 of 100; > 2%)",
        "repeated_unit: 30% of degenerate outputs score above the unrelated floor -0.050 (> 10%)",
        "a shuffled reference moves only 0.04 of the way to an unrelated one (< 0.05)"]
    strict = AuditThresholds(max_degenerate_share=0.05)
    assert verdict(good, strict)[1] == ["repeated_unit: 10% of degenerate outputs score above the unrelated floor "
                                        "-0.050 (> 5%)"]


def test_floor_share_and_shuffle_sensitivity_by_hand():
    x = np.array([[1, 0, 0], [0.6, 0.8, 0], [0.6, 0, 0.8]])
    np.testing.assert_allclose(distinct_pair_similarities(x), [0.6, 0.6, 0.36])  # (0,1), (0,2), (1,2)
    assert distinct_pair_similarities(x[:1]).size == 0
    assert share_above([0.1, 0.2, 0.3], 0.2) == pytest.approx(1 / 3) and share_above([], 0.0) == 0.0
    assert shuffle_sensitivity(0.9, -0.25) == pytest.approx(0.08)  # 0.1 of the 1.25 between 1 and the floor
    assert shuffle_sensitivity(1.0, 0.3) == 0.0 and shuffle_sensitivity(0.3, 0.3) == pytest.approx(1.0)


def test_a_negative_floor_is_clipped_up_to_zero_and_recorded(tmp_path):
    tau = unrelated_tau([-0.3, -0.1, -0.05, 0.2])  # median -0.075
    assert tau["floor"] == pytest.approx(-0.075) and tau["tau"] == 0.0 and tau["clipped"] is True
    assert tau["unrelated_rewarded_share"] == 0.25  # only 0.2 earns R_sim > 0 at tau 0
    same = unrelated_tau([0.1, 0.3, 0.2, 0.9])  # median 0.25: nothing to clip
    assert same["floor"] == same["tau"] == pytest.approx(0.25) and same["clipped"] is False
    assert same["unrelated_rewarded_share"] == 0.5
    with pytest.raises(ValueError, match="at least 2 references"):
        unrelated_tau([])

    from semantic_reward.experiment.stages import audit_tau

    (tmp_path / "audit.json").write_text(json.dumps({"reward": {"tau_unrelated": {**tau, "pairs": 435}}}))
    record = audit_tau(tmp_path)
    assert record["value"] == 0.0 and record["clipped"] is True and record["floor"] == pytest.approx(-0.075)
    assert "the floor -0.075 is clipped up to 0.000" in record["label"] and "435 pairs" in record["label"]


def test_untranslated_source_is_not_the_true_pair_similarity():
    """The copy's R_sim at the audit's tau and how often it outranks an unrelated reference, by hand."""
    tgt = ["ཀ་ཁ།", "ག་ང།", "ཅ་ཆ།"]
    src = ["甲乙", "丙丁", "戊己"]
    t = np.array([[1, 0, 0], [0.6, 0.8, 0], [0.6, 0, 0.8]])  # reference pairs: 0.6, 0.6, 0.36 -> floor 0.6
    s = np.array([[1, 0, 0], [0, 1, 0], [0.5, np.sqrt(0.75), 0]])  # true pairs: 1.0, 0.8, 0.3
    model = _Encoder({**dict(zip(tgt, t)), **dict(zip(src, s))}, default=[0.0, 0.0, -1.0])
    audit = AuditEvaluator(src, tgt, "tibetan").audit(model)
    assert audit["true_pair_similarity_mean"] == pytest.approx(0.7)
    assert audit["tau_unrelated"]["tau"] == pytest.approx(0.6)
    u = audit["untranslated_source"]
    # R_sim = (s - 0.6) / 0.4: 1.0, 0.5, 0 -> mean 0.5; rewarded on 2 of 3 rows
    assert u["tau"] == pytest.approx(0.6) and u["r_sim_mean"] == pytest.approx(0.5)
    assert u["rewarded_share"] == pytest.approx(2 / 3)
    # rows 0 and 1 beat any other reference (0.6 / 0.36 at most); row 2 (0.3) beats none
    assert u["beats_unrelated_target_share"] == pytest.approx(2 / 3)
    assert "similarity_mean" not in u and "untranslated_source" not in audit["sensitivity"]


def test_degenerate_probes_are_built_from_the_references():
    refs = _references(n=6, length=8)
    probes = degenerate_probes(refs, seed=1, top=3, salads=4)
    assert set(probes) == set(PROBE_KINDS)
    units = {u for r in refs for u in text_units(r)}
    # the 3 most frequent units, each repeated at a quarter of (2) and at the median length (8)
    repeated = [text_units(t) for t, ref in probes["repeated_unit"]]
    assert len(repeated) == 6 and sorted(len(u) for u in repeated) == [2, 2, 2, 8, 8, 8]
    assert all(len(set(u)) == 1 and u[0] in units for u in repeated)
    assert all(ref is None for kind in PROBE_KINDS[:3] for _, ref in probes[kind])
    # tsheg and shad, each alone and alternating: 2 runs + 1 pair, no letter in any
    runs = [t for t, _ in probes["punctuation_run"]]
    assert runs == ["་" * 8, "་།" * 4, "།" * 8]
    assert len(probes["frequent_unit_salad"]) == 4
    assert all(set(text_units(t)) <= units for t, _ in probes["frequent_unit_salad"])
    # each reference's own half, reordered
    shuffled = probes["shuffled_truncated_reference"]
    assert [ref for _, ref in shuffled] == list(range(6))
    for text, ref in shuffled:
        own = text_units(refs[ref])
        got = text_units(text)
        assert len(got) == 4 and set(got) <= set(own) and text != refs[ref]
        assert all(got != own[i:i + 4] for i in range(len(own) - 3))  # no run of the reference in its order


def test_degenerate_negatives_one_per_target_never_the_target():
    refs = _references(n=9, length=5)
    negatives = degenerate_negatives(refs, seed=0)
    assert len(negatives) == len(refs) and all(n != r for n, r in zip(negatives, refs))
    units = {u for r in refs for u in text_units(r)}
    assert all(set(text_units(n)) <= units for n in negatives)  # built from the targets only
    assert len(set(text_units(negatives[0]))) == 1  # row 0: a repeated unit
    assert text_units(negatives[1]) == []  # row 1: punctuation only
    assert degenerate_negatives(refs, seed=0) == negatives  # seeded


def test_degenerate_negatives_join_the_training_rows_by_target():
    import datasets

    from semantic_reward.encoder_tools.train import with_degenerate_negatives

    refs, src = _references(n=4), _sources(4)
    expected = dict(zip(refs, degenerate_negatives(refs, seed=3)))
    rows = datasets.Dataset.from_dict({"anchor": src[::-1], "positive": refs[::-1]})  # reordered, as mining may
    out = with_degenerate_negatives(rows, True, refs, seed=3)
    assert out.column_names == ["anchor", "positive", "negative"]
    assert out["negative"] == [expected[r] for r in refs[::-1]]
    flipped = with_degenerate_negatives(datasets.Dataset.from_dict({"anchor": refs, "positive": src}), False, refs, 3)
    assert flipped["negative"] == [expected[r] for r in refs]
    mined = datasets.Dataset.from_dict({"anchor": src, "positive": refs, "negative": refs[1:] + refs[:1]})
    assert with_degenerate_negatives(mined, True, refs, 3).column_names[-1] == "negative_degenerate"


def _mixed_texts() -> list[str]:
    rng = random.Random(0)
    texts = _references(12) + _sources(12)
    texts += [f"GDP 与 CPI 的 {rng.randint(10, 99)}% ཀྲུང་གོ༌ནང་།" for _ in range(4)]  # Latin capitals, U+0F0C
    return texts


def test_the_tiny_encoder_tokenizer_keeps_every_character(tmp_path):
    from transformers import AutoTokenizer

    from tiny_models import build_tiny_encoder

    texts = _mixed_texts()
    path = build_tiny_encoder(texts, tmp_path / "enc", vocab_size=300, hidden_size=32, num_layers=1, num_heads=2)
    tok = AutoTokenizer.from_pretrained(path)
    for scripts in (["Tibetan"], ["Han"], ["Latin"]):
        rt = round_trip(tok, texts, scripts)
        assert rt["characters"] > 0 and rt["lost"] == 0, (scripts, rt)
    _assert_offsets_round_trip(tok, texts)


def _assert_offsets_round_trip(tok, texts):
    """Every token's surface (its offsets into the text) is the token itself; together they cover every non-space."""
    for text in texts:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        covered = set()
        for token, (start, end) in zip(tok.convert_ids_to_tokens(enc["input_ids"]), enc["offset_mapping"]):
            assert token != tok.unk_token and text[start:end] == token.removeprefix("##"), (text, token)
            covered.update(range(start, end))
        assert covered == {i for i, c in enumerate(text) if not c.isspace()}


@pytest.mark.shared_data
def test_the_tiny_encoder_tokenizer_keeps_every_character_of_the_news_corpus(tmp_path, news_pairs):
    from transformers import AutoTokenizer

    from tiny_models import build_tiny_encoder

    texts = [r["bo"] for r in news_pairs] + [r["zh"] for r in news_pairs]
    path = build_tiny_encoder(texts, tmp_path / "enc", hidden_size=32, num_layers=1, num_heads=2)
    tok = AutoTokenizer.from_pretrained(path)
    rt = round_trip(tok, [r["bo"] for r in news_pairs], ["Tibetan"])
    assert rt["characters"] > 30000 and rt["lost"] == 0
    _assert_offsets_round_trip(tok, texts)
    # distinct syllables stay distinct token sequences
    syllables = {u for r in news_pairs for u in text_units(r["bo"]) if any("\u0F40" <= c <= "\u0FBC" for c in u)}
    assert len({tuple(tok(s, add_special_tokens=False)["input_ids"]) for s in syllables}) == len(syllables)


def test_round_trip_counts_unknown_deleted_and_altered_characters():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "ཀ": 1, "ཁ": 2, "་": 3, "།": 4, "a": 5}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    plain = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    # ག is not in the vocabulary: its word (one syllable) is [UNK]; everything else comes back
    rt = round_trip(plain, ["ཀ་ག་ཁ།"], ["Tibetan"])
    assert (rt["characters"], rt["lost"], rt["unknown"], rt["deleted"], rt["altered"]) == (6, 1, 1, 0, 0)
    assert rt["top_lost"][0]["codepoint"] == "U+0F42"
    # a normalizer that strips marks and lowercases: the vowel sign is lost, the lowercased Latin is not counted
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    stripping = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    rt = round_trip(stripping, ["ཀི་ཁ A"], ["Tibetan"])
    assert (rt["characters"], rt["lost"], rt["unknown"]) == (4, 1, 0) and rt["lost_share"] == 0.25
    assert round_trip(stripping, ["A"], ["Latin"])["lost"] == 1  # lowercasing shows for a Latin target
    # NFKC-equivalent changes lose nothing: the non-breaking tsheg written as a tsheg
    tok.normalizer = normalizers.NFKC()
    rt = round_trip(PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]"), ["ཀ༌ཁ།"], ["Tibetan"])
    assert rt["lost"] == 0 and rt["characters"] == 4
    # no tokenizer (a stand-in encoder): characters counted, nothing checked
    assert round_trip(None, ["ཀ་ཁ"], ["Tibetan"]) == {"characters": 3, "lost": 0, "lost_share": 0.0, "unknown": 0,
                                                       "deleted": 0, "altered": 0, "top_lost": [], "checked": False}


def test_floor_ranking_orders_true_pair_shuffle_unrelated_and_degenerate():
    """The CoSENT rows of degenerate-negative training: per pair, the true pair (1), the target against its own
    units shuffled (0.75), against another target (0.5) and against a degenerate string (0)."""
    from semantic_reward.encoder_tools.train import floor_ranking
    from semantic_reward.text import text_units

    targets = ["ཀ་ཁ་ག་ང།", "ཅ་ཆ་ཇ་ཉ།", "ཏ་ཐ་ད་ན།", "པ་ཕ་བ་མ།"]
    sources = ["甲乙", "丙丁", "戊己", "庚辛"]
    rows = floor_ranking(sources, targets, seed=0).to_list()
    by_score: dict[float, list[dict]] = {}
    for row in rows:
        by_score.setdefault(row["score"], []).append(row)
    assert sorted(by_score) == [0.0, 0.5, 0.75, 1.0]
    assert [(r["sentence1"], r["sentence2"]) for r in by_score[1.0]] == list(zip(sources, targets, strict=True))
    for row in by_score[0.75]:  # the same units in another order
        a, b = text_units(row["sentence1"]), text_units(row["sentence2"])
        assert sorted(a) == sorted(b) and a != b
    assert all(r["sentence1"] in targets and r["sentence2"] in targets and r["sentence1"] != r["sentence2"]
               for r in by_score[0.5])
    assert all(r["sentence2"] not in targets for r in by_score[0.0])
