"""One prompt for SFT, RL and evaluation, token for token, with the Qwen3-like tiny template.

For rows of a real ``python -m data_tools mt`` build:
  SFT         verl's SFT dataset factory with the SFT recipe's composed ``data`` node (its ``custom_cls``):
              the loss-masked ids before the first trained token;
  RL          verl's single-turn agent loop, built with the GRPO recipe's composed config and given the
              row of verl's RLHFDataset, against a stand-in server that records the prompt ids it is sent;
  evaluation  the evaluation's engine for one system (``evaluation.generate.SystemEngine``, transformers
              path): the ids the model's ``generate`` receives (left padding removed).
All three must be the same ids, for the profile's thinking off (with Qwen3's empty think block) and on.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

pytest.importorskip("verl")

from data_tools.cli import main as cli_main  # noqa: E402
from semantic_reward.recipe_check import RECIPES_DIR, compose_recipe, recipe_kind  # noqa: E402
from tests.conftest import SHARED_DATA, _tokenizer_corpus  # noqa: E402

NEWS = str(SHARED_DATA / "bo_zh_news.jsonl")
EMPTY_THINK = "<think>\n\n</think>\n\n"
ROWS = 5  # test-split rows compared per mode


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory) -> str:
    """A tiny Qwen3 policy whose tokenizer has the Qwen3-like template (the evaluation loads a model)."""
    from tiny_models import build_tiny_policy

    out = tmp_path_factory.mktemp("one_prompt_policy")
    build_tiny_policy(_tokenizer_corpus(), out, vocab_size=2000, hidden_size=16, num_layers=1, num_heads=2)
    return str(out)


@pytest.fixture(scope="module")
def tok(policy_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(policy_dir)


@pytest.fixture(scope="module")
def build(tmp_path_factory, news_pairs):
    out = tmp_path_factory.mktemp("one_prompt_build")
    assert cli_main(["mt", "--input", NEWS, "--direction", "zh-bo", "--out", str(out), "--quiet"]) == 0
    return out


def _data_node(recipe: str, thinking: bool, files: str):
    cfg = compose_recipe(recipe, "cpu-tiny", [f"profile.thinking={str(thinking).lower()}",
                                               f"data.train_files={files}", "data.val_files=null"])
    OmegaConf.resolve(cfg)
    return cfg


def _sft_items(build, tok, thinking: bool) -> tuple[object, list[dict]]:
    """verl's SFT dataset as the SFT trainer creates it from the recipe (first ROWS rows of the test split)."""
    from verl.trainer.sft_trainer import create_sft_dataset

    path = str(build / "sft" / "test.parquet")
    cfg = _data_node("sft_cold_start", thinking, path)
    dataset = create_sft_dataset([path], cfg.data, tok, processor=None)
    return dataset, [dataset[i] for i in range(min(ROWS, len(dataset)))]


class RecordingServer:
    """Stands in for verl's LLM server client: records the prompt ids, answers with fixed tokens."""

    def __init__(self, answer_ids: list[int]):
        self.answer_ids = answer_ids
        self.prompts: list[list[int]] = []

    async def generate(self, *, prompt_ids, **_):
        from verl.workers.rollout.replica import TokenOutput

        self.prompts.append(list(prompt_ids))
        return TokenOutput(token_ids=list(self.answer_ids))


def _rl_prompt_ids(build, tok, policy_dir, thinking: bool) -> tuple[list[str], list[list[int]]]:
    """Row ids and the prompt ids verl's single-turn agent loop sends to the server for them."""
    from transformers import AutoConfig
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop
    from verl.utils.dataset.rl_dataset import RLHFDataset

    path = str(build / "rl" / "test.parquet")
    cfg = _data_node("grpo_semantic_zh_bo", thinking, path)
    data = OmegaConf.merge(cfg.data, {"filter_overlong_prompts": False})
    dataset = RLHFDataset(path, tok, data)
    server = RecordingServer(tok.encode("ཀ་ཁ<|im_end|>", add_special_tokens=False))
    loop = SingleTurnAgentLoop(trainer_config=DictConfigWrap(cfg), server_manager=server, tokenizer=tok,
                               processor=None, dataset_cls=RLHFDataset, data_config=DictConfigWrap(cfg.data),
                               hf_model_type=AutoConfig.from_pretrained(policy_dir).model_type)
    ids, prompts = [], []
    for i in range(min(ROWS, len(dataset))):
        row = dataset[i]
        # on the event loop the agent loop captured at construction, as verl's worker runs it
        output = loop.loop.run_until_complete(loop.run({"temperature": 1.0}, raw_prompt=row["raw_prompt"]))
        assert output.prompt_ids == server.prompts[-1]  # what the server was sent is the trained prompt
        ids.append(row["extra_info"]["id"])
        prompts.append(list(output.prompt_ids))
    return ids, prompts


def _eval_prompt_ids(build, policy_dir, thinking: bool, monkeypatch) -> tuple[list[str], list[list[int]]]:
    """Row ids and the ids the evaluation's transformers engine hands to the model's ``generate``."""
    from transformers.generation.utils import GenerationMixin

    from semantic_reward.evaluation import generate as gen
    from semantic_reward.evaluation.inputs import read_test_rows

    rows = read_test_rows(build / "rl" / "test.parquet", "bo")[:ROWS]
    seen: list[list[int]] = []
    original = GenerationMixin.generate

    def spy(self, *args, **kwargs):
        for ids, mask in zip(kwargs["input_ids"], kwargs["attention_mask"], strict=True):
            seen.append(ids[mask.bool()].tolist())  # left padding removed
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", spy)
    # one system's engine, as the evaluation runner opens it (transformers path, the profile's thinking)
    spec = gen.EngineSpec(model=policy_dir, enable_thinking=thinking, batch_size=8, device="cpu", progress=False)
    engine = gen.SystemEngine("hf", spec)
    try:
        engine.generate([r["prompt"] for r in rows], max_new_tokens=1)
    finally:
        engine.close()
    return [r["id"] for r in rows], seen


@pytest.mark.parametrize("thinking", [False, True], ids=["thinking_off", "thinking_on"])
def test_sft_rl_and_evaluation_prompt_the_same_tokens(build, tok, policy_dir, thinking, monkeypatch):
    import pyarrow.parquet as pq

    from data_tools.verl_sft_dataset import RolloutPromptSFTDataset

    dataset, items = _sft_items(build, tok, thinking)
    assert type(dataset) is RolloutPromptSFTDataset  # the recipe's custom_cls, through verl's factory
    rows = pq.read_table(build / "sft" / "test.parquet").to_pylist()[: len(items)]
    rl_ids, rl_prompts = _rl_prompt_ids(build, tok, policy_dir, thinking)
    eval_ids, eval_prompts = _eval_prompt_ids(build, policy_dir, thinking, monkeypatch)
    assert len(items) == len(rl_prompts) == len(eval_prompts) == ROWS
    assert [r["id"] for r in rows] == rl_ids == eval_ids  # the same rows in the same order

    generation_prompt = "<|im_start|>assistant\n" + ("" if thinking else EMPTY_THINK)
    for row, item, rl, ev in zip(rows, items, rl_prompts, eval_prompts, strict=True):
        ids, mask = item["input_ids"].tolist(), item["loss_mask"].tolist()
        start = mask.index(1)
        assert ids[:start] == rl == ev, row["id"]  # SFT's loss-masked prefix = RL prompt = evaluation prompt
        assert tok.decode(rl).endswith(generation_prompt)
        assert tok.decode(rl).count("<think>") == (0 if thinking else 1)
        # the loss covers one contiguous span right after the prefix: the answer and the end-of-turn token
        end = start + mask[start:].index(0) if 0 in mask[start:] else len(mask)
        assert set(mask[end:]) <= {0}
        answer = row["messages"][-1]["content"]
        assert tok.decode(ids[start:end]) == ("" if not thinking else EMPTY_THINK) + answer + "<|im_end|>"
        assert ids[end - 1] == tok.convert_tokens_to_ids("<|im_end|>")
        assert tok.decode(ids[end:]) == "\n"  # the template's separator: input only, never a target


def test_verls_stock_dataset_would_train_after_another_prompt(build, tok, policy_dir):
    """What the custom class fixes: verl's MultiTurnSFTDataset, as the recipes used it, loses the think block."""
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    path = str(build / "sft" / "test.parquet")
    # the data keys the SFT recipes set before (no custom_cls, no thinking choice: verl's per-turn ids)
    data = OmegaConf.create({"messages_key": "messages", "max_length": 1024, "truncation": "right",
                             "ignore_input_ids_mismatch": True})
    item = MultiTurnSFTDataset([path], tok, data)[0]
    ids, mask = item["input_ids"].tolist(), item["loss_mask"].tolist()
    _, rl_prompts = _rl_prompt_ids(build, tok, policy_dir, False)
    assert ids[: mask.index(1)] != rl_prompts[0]
    assert tok.decode(ids[: mask.index(1)]).endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("profile", ["cpu-tiny", "paper"])
def test_every_sft_recipe_uses_the_rollout_prompt_with_the_grpo_thinking_choice(profile):
    grpo = compose_recipe("grpo_semantic_zh_bo", profile)
    OmegaConf.resolve(grpo)
    sft_recipes = [p.stem for p in sorted(RECIPES_DIR.glob("*.yaml")) if recipe_kind(p) == "sft"]
    assert {"sft_cold_start", "sft_strong", "recover_sft", "sft_cold_start_headline"} <= set(sft_recipes)
    for name in sft_recipes:
        cfg = compose_recipe(name, profile)
        OmegaConf.resolve(cfg)
        assert cfg.data.custom_cls.path == "pkg://data_tools.verl_sft_dataset", name
        assert cfg.data.custom_cls.name == "RolloutPromptSFTDataset", name
        assert cfg.data.apply_chat_template_kwargs == grpo.data.apply_chat_template_kwargs, name
        assert cfg.data.apply_chat_template_kwargs.enable_thinking == cfg.profile.thinking, name
        assert cfg.data.ignore_input_ids_mismatch is False, name  # verl's whole-conversation check stays on


def _one_row_dataset(tmp_path, tok, messages, extra=None, **data):
    import pandas as pd

    from data_tools.verl_sft_dataset import RolloutPromptSFTDataset

    path = tmp_path / "rows.parquet"
    pd.DataFrame({"messages": [messages], "id": ["row-7"], **(extra or {})}).to_parquet(path)
    config = OmegaConf.create({"max_length": 64, "truncation": "error", **data})
    return RolloutPromptSFTDataset(str(path), tok, config)


PAIR = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "ཀ་ཁ"}]


def test_a_thinking_choice_that_verl_would_override_fails_at_load(tmp_path, tok):
    # verl's own default for the per-row switch is the YAML string "none": bool("none") is thinking on
    with pytest.raises(ValueError, match="enable_thinking_default is 'none'.*enable_thinking=True"):
        _one_row_dataset(tmp_path, tok, PAIR, enable_thinking_default="none")
    with pytest.raises(ValueError, match="disagrees with data.apply_chat_template_kwargs.enable_thinking"):
        _one_row_dataset(tmp_path, tok, PAIR, enable_thinking_default=True,
                         apply_chat_template_kwargs={"enable_thinking": False})
    agreed = _one_row_dataset(tmp_path, tok, PAIR, enable_thinking_default=False,
                              apply_chat_template_kwargs={"enable_thinking": False})[0]
    assert tok.decode(agreed["input_ids"][agreed["loss_mask"].bool()]) == "ཀ་ཁ<|im_end|>"


def test_a_row_without_a_final_answer_fails_at_load_naming_the_row(tmp_path, tok):
    with pytest.raises(ValueError, match=r"rows.parquet.*row 0 \(id row-7\).*last message must be the assistant"):
        _one_row_dataset(tmp_path, tok, [{"role": "user", "content": "你好"}, {"role": "user", "content": "再见"}])
    with pytest.raises(ValueError, match=r"row 0 \(id row-7\).*prompt messages and a final assistant answer"):
        _one_row_dataset(tmp_path, tok, [{"role": "assistant", "content": "ཀ"}])
    with pytest.raises(ValueError, match="tools"):
        _one_row_dataset(tmp_path, tok, PAIR, extra={"tools": [[{"name": "x"}]]})


def test_padding_stays_verls_and_the_row_is_the_whole_rendering(tmp_path, tok):
    """The parent's right padding applies to the new ids: pads carry no loss and no attention."""
    messages = PAIR
    item = _one_row_dataset(tmp_path, tok, messages)[0]
    assert item["input_ids"].shape == item["loss_mask"].shape == (64,)  # pad_mode right (the class default)
    n = int(item["attention_mask"].sum())
    assert 0 < n < 64 and torch.all(item["loss_mask"][n:] == 0)
    # no thinking choice given: the generation prompt has no think block, the template's final turn has one
    assert tok.decode(item["input_ids"][:n]) == tok.apply_chat_template(messages, tokenize=False)
    assert tok.decode(item["input_ids"][item["loss_mask"].bool()]) == EMPTY_THINK + "ཀ་ཁ<|im_end|>"
