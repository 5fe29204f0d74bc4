"""The tiny policy's chat template behaves as Qwen3's, so Qwen3's pitfalls show up on CPU too.

verl's SFT dataset tokenizes each turn on its own and asserts that the concatenation equals the
whole rendered conversation; Qwen3's empty think block in the final assistant turn breaks that
(verl issue 3477). These tests build verl's stock dataset with the SFT trainer's own data defaults:
they show why the SFT recipes use ``data_tools.verl_sft_dataset.RolloutPromptSFTDataset`` instead,
whose prompt is the RL rollout's and the evaluation's, token for token (tests/test_one_prompt.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("verl")

MESSAGES = [
    {"role": "system", "content": "Translate the Chinese sentence into Tibetan."},
    {"role": "user", "content": "你好世界"},
    {"role": "assistant", "content": "ཀ་ཁ་ག་ང།"},
]
EMPTY_THINK = "<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def test_template_renders_as_qwen3(tok):
    two_turns = [*MESSAGES, {"role": "user", "content": "再见"},
                 {"role": "assistant", "content": "<think>\nreasoning\n</think>\n\nང་ཅ།"}]
    whole = tok.apply_chat_template(two_turns, tokenize=False)
    # only the final assistant turn carries a think block; an earlier turn loses its reasoning
    assert whole.count("<think>") == 1
    assert "<|im_start|>assistant\nཀ་ཁ་ག་ང།<|im_end|>\n" in whole
    assert whole.endswith("<|im_start|>assistant\n<think>\nreasoning\n</think>\n\nང་ཅ།<|im_end|>\n")
    assert tok.apply_chat_template(MESSAGES, tokenize=False).endswith(
        "<|im_start|>assistant\n" + EMPTY_THINK + "ཀ་ཁ་ག་ང།<|im_end|>\n")  # empty block added when rendering all
    assert tok.apply_chat_template(MESSAGES[:1], tokenize=False) == MESSAGES[0]["content"].join(
        ["<|im_start|>system\n", "<|im_end|>\n"])

    prompt = MESSAGES[:2]
    assert tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True).endswith(
        "<|im_start|>user\n你好世界<|im_end|>\n<|im_start|>assistant\n")
    off = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert off.endswith("<|im_start|>assistant\n" + EMPTY_THINK)
    on = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True, enable_thinking=True)
    assert on.endswith("<|im_start|>assistant\n")


def test_think_tags_are_ordinary_single_tokens(tok):
    ids = [tok.convert_tokens_to_ids(t) for t in ("<think>", "</think>")]
    assert tok.unk_token_id not in ids and None not in ids
    assert not set(ids) & set(tok.all_special_ids)
    encoded = tok.encode(EMPTY_THINK + "ཀ་ཁ", add_special_tokens=False)
    assert encoded[0] == ids[0] and ids[1] in encoded
    assert tok.decode(encoded, skip_special_tokens=True) == EMPTY_THINK + "ཀ་ཁ"  # the reward sees the tags


def _dataset(tmp_path: Path, tok, **overrides):
    """verl's MultiTurnSFTDataset with the SFT trainer's own data defaults plus ``overrides``."""
    import importlib.resources

    import pandas as pd
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    trainer_yaml = importlib.resources.files("verl.trainer.config") / "sft_trainer_engine.yaml"
    data = OmegaConf.load(str(trainer_yaml)).data
    data.max_length = 128
    for key, value in overrides.items():
        OmegaConf.update(data, key, value, force_add=True)
    path = tmp_path / "sft.parquet"
    pd.DataFrame({"messages": [MESSAGES, MESSAGES]}).to_parquet(path)
    return MultiTurnSFTDataset(str(path), tok, data)


def _trained_text(tok, item) -> str:
    ids = item["input_ids"][item["loss_mask"].bool()]
    return tok.decode(ids)


def test_verl_sft_dataset_stops_on_the_template_without_handling(tmp_path, tok):
    with pytest.raises(AssertionError, match="ignore_input_ids_mismatch"):
        _dataset(tmp_path, tok)[0]
    # enable_thinking only changes the generation prompt; the final turn's empty block stays
    with pytest.raises(AssertionError, match="ignore_input_ids_mismatch"):
        _dataset(tmp_path, tok, apply_chat_template_kwargs={"enable_thinking": False})[0]


def test_verl_sft_dataset_with_ignore_input_ids_mismatch_trains_after_another_prompt(tmp_path, tok):
    """The stock dataset trains the whole answer, but after a prompt without the think block that RL and
    evaluation (enable_thinking=false) put before it: the reason for RolloutPromptSFTDataset."""
    item = _dataset(tmp_path, tok, ignore_input_ids_mismatch=True)[0]
    assert _trained_text(tok, item) == "ཀ་ཁ་ག་ང།<|im_end|>\n"  # the answer, its end and the separator
    assert "<think>" not in tok.decode(item["input_ids"])  # per-turn ids: no think block in training
    rl_prompt = tok.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True,
                                        enable_thinking=False)
    assert not tok.decode(item["input_ids"]).startswith(rl_prompt)


def test_verls_sft_default_thinking_switch_is_the_string_none(tmp_path, tok):
    """verl's ``enable_thinking_default: none`` is YAML for the string 'none', which its dataset reads as
    bool('none'): thinking on for every row unless a recipe sets it (recipes/base/sft.yaml does)."""
    import importlib.resources

    from omegaconf import OmegaConf

    trainer_yaml = importlib.resources.files("verl.trainer.config") / "sft_trainer_engine.yaml"
    assert OmegaConf.load(str(trainer_yaml)).data.enable_thinking_default == "none"
    dataset = _dataset(tmp_path, tok, ignore_input_ids_mismatch=True)
    assert dataset.enable_thinking_default == "none" and bool(dataset.enable_thinking_default) is True


def test_enable_thinking_false_in_sft_kwargs_masks_the_head_of_the_answer(tmp_path, tok):
    """A trap for the stock dataset: verl masks len(generation prompt) tokens of each assistant turn, and with
    enable_thinking=false that prompt includes the empty think block the per-turn ids do not have."""
    item = _dataset(tmp_path, tok, ignore_input_ids_mismatch=True,
                    apply_chat_template_kwargs={"enable_thinking": False})[0]
    trained = _trained_text(tok, item)
    assert trained != "ཀ་ཁ་ག་ང།<|im_end|>\n" and "ཀ་ཁ་ག་ང།<|im_end|>\n".endswith(trained)
