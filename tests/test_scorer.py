"""SemanticScorer: modes, per-row language, batch vs async, data errors."""

import asyncio

import pytest

from semantic_reward.config import SemanticRewardConfig
from semantic_reward.reward_math import REWARD_KEYS, cosine_similarity, reward_components
from semantic_reward.scorer import DataError, SemanticScorer
from semantic_reward.service import LocalEmbeddingService
from tests.helpers import HashEncoder

BO = "བཀྲ་ཤིས་བདེ་ལེགས།"
BO_OTHER = "ཀྲུང་གོ་གསར་པ།"
ZH = "新中国成立"


def make(**settings):
    backend = HashEncoder()
    config = SemanticRewardConfig.from_mapping(settings)
    return SemanticScorer(config, LocalEmbeddingService(service=config.service, backend=backend)), backend


def test_reference_mode_exact_copy_gets_full_reward():
    scorer, _ = make()
    res = asyncio.run(scorer.score(BO, reference=BO))
    assert res["semantic_similarity"] == pytest.approx(1.0)
    assert res["score"] == pytest.approx(2.5)


def test_scores_equal_pure_math_on_the_encoders_similarity():
    scorer, backend = make(tau=0.0)
    res = asyncio.run(scorer.score(BO_OTHER, reference=BO))
    s = cosine_similarity(backend.vector(BO_OTHER), backend.vector(BO))
    expected = reward_components(
        BO_OTHER, scripts=("Tibetan",), config=scorer.config, sim_reference=s, length_basis=4
    )
    assert res == pytest.approx(expected)


def test_source_and_hybrid_modes():
    scorer, _ = make(mode="source")
    res = asyncio.run(scorer.score(ZH, reference=None, source=ZH, language="zh"))
    assert res["similarity_source"] == pytest.approx(1.0) and res["similarity_reference"] == 0.0
    assert res["score"] == pytest.approx(2.5)
    hybrid, _ = make(mode="hybrid", hybrid_weight=0.25)
    res = asyncio.run(hybrid.score(BO, reference=BO, source=ZH))
    expected = 0.25 * 1.0 + 0.75 * res["similarity_source"]
    assert res["semantic_similarity"] == pytest.approx(expected)


def test_per_row_language_overrides_config():
    scorer, _ = make(language="bo")
    assert asyncio.run(scorer.score(ZH, reference=ZH, language="zh"))["language_reward"] == 1.0
    assert asyncio.run(scorer.score(ZH, reference=ZH))["language_reward"] == 0.0


def test_missing_inputs_are_data_errors_naming_the_field():
    scorer, _ = make()
    with pytest.raises(DataError, match="reward_model.ground_truth"):
        asyncio.run(scorer.score(BO, reference=None))
    source_scorer, _ = make(mode="source")
    with pytest.raises(DataError, match=r"extra_info\['source'\]"):
        asyncio.run(source_scorer.score(BO, reference=BO))


def test_batch_equals_per_sample_and_skips_empty_outputs():
    scorer, backend = make()
    outputs = [BO, "", BO_OTHER, ZH, None, BO]
    refs = [BO, BO, BO, BO, BO, BO_OTHER]
    batch = scorer.score_batch(outputs, refs)
    single = [asyncio.run(scorer.score(o, reference=r)) for o, r in zip(outputs, refs, strict=True)]
    for b, one in zip(batch, single, strict=True):
        assert b == pytest.approx(one)
    assert all(tuple(r) == REWARD_KEYS for r in batch)
    assert batch[1]["is_empty"] == 1.0 and batch[4]["score"] == 0.0


@pytest.mark.parametrize("metric", ["chrf", "bleu"])
def test_lexical_ablation_uses_sacrebleu_sentence_scores(metric):
    import sacrebleu

    from semantic_reward.text import pretokenize

    config = SemanticRewardConfig.from_mapping({"similarity": {"embedding": 0, metric: 1}, "tau": 0.0})
    scorer = SemanticScorer(config)
    assert scorer.service is None  # no encoder is loaded for a lexical reward
    out, ref = "བཀྲ་ཤིས་བདེ།", "བཀྲ་ཤིས་བདེ་ལེགས།"
    h, r = pretokenize(out), pretokenize(ref)
    assert (h, r) == ("བཀྲ ཤིས བདེ", "བཀྲ ཤིས བདེ ལེགས")
    expected = (sacrebleu.sentence_chrf(h, [r], word_order=2) if metric == "chrf"
                else sacrebleu.sentence_bleu(h, [r], tokenize="none")).score / 100
    res = asyncio.run(scorer.score(out, reference=ref))
    assert res["semantic_similarity"] == pytest.approx(expected)
    assert res["score"] == pytest.approx(1.5 * expected + 1.0)
    assert scorer.score_batch([out, ""], [ref, ref])[0] == pytest.approx(res)


def test_lexical_needs_reference_mode():
    from semantic_reward.config import ConfigError

    with pytest.raises(ConfigError, match="'similarity'"):
        SemanticRewardConfig.from_mapping({"similarity": {"chrf": 1}, "mode": "source"})


def test_lexical_reward_does_not_import_evaluation():
    import subprocess
    import sys

    code = (
        "import sys, asyncio\n"
        "from semantic_reward.config import SemanticRewardConfig\n"
        "from semantic_reward.scorer import SemanticScorer\n"
        "s = SemanticScorer(SemanticRewardConfig.from_mapping({'similarity': {'embedding': 0, 'bleu': 1}}))\n"
        "asyncio.run(s.score('བཀྲ་ཤིས།', reference='བཀྲ་ཤིས།'))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('semantic_reward.evaluation', 'data_tools'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- issue 13, item 13: outputs, references and sources normalised as data_tools normalises ------


REF = "ཀྲུང་གོ་གསར་པ་དབུ་བརྙེས་དུས།"


@pytest.mark.parametrize(
    "variant",
    [
        REF.replace("\u0f0b", "\u0f0c"),  # the example: non-breaking tsheg throughout
        REF.replace("\u0f0b", "\u0f0c", 2),  # mixed tsheg forms
        "\ufeff " + REF.replace("་", "་\u200b") + " \n",  # invisible characters and stray whitespace
        REF.replace("།", " །"),  # a space before the shad
    ],
)
def test_output_normalised_like_the_reference(variant):
    from data_tools.normalize import Normalizer

    assert Normalizer()(variant) == REF  # the dataset would hold REF for this text
    scorer, backend = make()
    res = asyncio.run(scorer.score(variant, reference=REF))
    assert res == pytest.approx(asyncio.run(scorer.score(REF, reference=REF)))
    assert res["semantic_similarity"] == pytest.approx(1.0) and res["score"] == pytest.approx(2.5)
    # the reference and the source are normalised too
    assert asyncio.run(scorer.score(REF, reference=variant))["score"] == pytest.approx(2.5)
    source_scorer, _ = make(mode="source")
    assert asyncio.run(source_scorer.score(REF, source=variant))["score"] == pytest.approx(2.5)
    assert scorer.score_batch([variant], [REF])[0] == pytest.approx(res)


def test_precomposed_and_decomposed_tibetan_score_the_same():
    composed, decomposed = "\u0f43\u0f0bཀ།", "\u0f42\u0fb7\u0f0bཀ།"  # NFC decomposes U+0F43 (composition exclusion)
    assert composed != decomposed
    scorer, _ = make()
    assert asyncio.run(scorer.score(composed, reference=decomposed))["score"] == pytest.approx(2.5)
    assert asyncio.run(scorer.score(decomposed, reference=composed))["score"] == pytest.approx(2.5)


# ---- issue 13, item 14: empty never ranks above a genuine attempt, through the scorer -----------


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"length_penalty": {"weight": 0.2}, "repetition_penalty": {"weight": 0.05}},
        {"combine": "gated", "semantic_weight": 1.0, "length_penalty": {"weight": 0.2}},
        {"mode": "hybrid", "repetition_penalty": {"weight": 0.5}},
        {"length_penalty": {"weight": 0.3, "relative_to": "batch_median"}},
        {"similarity": {"embedding": 0, "chrf": 1}, "length_penalty": {"weight": 0.2}, "repetition_penalty": {"weight": 0.05}},
    ],
)
def test_empty_output_is_never_the_best_choice(settings):
    scorer, _ = make(**settings)
    low = scorer.config.reward_range[0]
    group = ["", "   ", "\u0f71\u0f72", "新中国" * 100, "་".join(["ཀ", "ཁ"] * 60), ZH, BO]
    results = scorer.score_batch(group, [BO] * len(group), [ZH] * len(group))
    empties, attempts = results[:3], results[3:]
    assert all(r["is_empty"] == 1.0 and r["score"] == low for r in empties)
    assert all(r["is_empty"] == 0.0 and r["score"] >= low for r in attempts)
    assert max(r["score"] for r in attempts) > low


@pytest.mark.parametrize(
    "wrapped",
    [
        "<think>\n\n</think>\n\n" + BO,  # Qwen3's empty block (enable_thinking off)
        "<think>\nThe user wants Tibetan. 先想一想 ... བཀྲ་ཤིས</think>\n" + BO,  # a filled block in other scripts
        "reasoning without an opening tag</think>" + BO,  # the template opened the block in the prompt
    ],
)
def test_a_perfect_answer_behind_a_think_block_scores_what_the_bare_answer_scores(wrapped):
    scorer, _ = make()
    bare = asyncio.run(scorer.score(BO, reference=BO))
    res = asyncio.run(scorer.score(wrapped, reference=BO))
    assert bare["score"] == pytest.approx(2.5) and bare["reasoning_length"] == 0.0
    assert {k: v for k, v in res.items() if k != "reasoning_length"} == pytest.approx(
        {k: v for k, v in bare.items() if k != "reasoning_length"})
    assert res["reasoning_length"] == wrapped.index("</think>") + len("</think>")  # the block, tags included
    (batch,) = scorer.score_batch([wrapped], references=[BO])
    assert batch == pytest.approx(res)


def test_think_block_handling_is_configurable():
    off, _ = make(reasoning={"strip": False})
    res = asyncio.run(off.score("<think>\n\n</think>\n\n" + BO, reference=BO))
    assert res["language_reward"] == 0.0 and res["reasoning_length"] == 0.0  # the tags count as Latin units
    custom, _ = make(reasoning={"open_tag": "<reasoning>", "close_tag": "</reasoning>"})
    res = asyncio.run(custom.score("<reasoning>x</reasoning>" + BO, reference=BO))
    assert res["score"] == pytest.approx(2.5) and res["reasoning_length"] == len("<reasoning>x</reasoning>")
    # an unclosed block is no answer: scored as empty, at the bottom of the range
    res = asyncio.run(custom.score("<reasoning>still thinking " + BO, reference=BO))
    assert res["is_empty"] == 1.0 and res["score"] == custom.config.reward_range[0]
    with pytest.raises(Exception, match="reasoning.open_tag"):
        make(reasoning={"open_tag": " "})
