"""``RolloutPromptSFTDataset``: verl's SFT dataset, with each row's prompt tokenized as the RL rollout tokenizes it.

verl's ``MultiTurnSFTDataset`` renders every turn on its own. Under Qwen3's chat template an assistant
turn rendered alone has no think block, so SFT trained ``<|im_start|>assistant\\n{answer}`` while the RL
rollout (verl's agent loop: the chat template over the prompt messages with ``add_generation_prompt`` and
``data.apply_chat_template_kwargs``) and the evaluation both prompt the model with
``<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n`` when thinking is off. The SFT baselines then learned
their answer after another prompt than the one they are evaluated on.

The SFT recipes set

    data:
      custom_cls: {path: pkg://data_tools.verl_sft_dataset, name: RolloutPromptSFTDataset}
      apply_chat_template_kwargs: {enable_thinking: <the profile's thinking>}
      enable_thinking_default: <the profile's thinking>    # verl's default, the string "none", means on

and each row (``messages``: the prompt, then the reference as the final assistant turn) becomes

    prompt ids   the template over all messages but the last, with the generation prompt and
                 ``apply_chat_template_kwargs``, through the agent loop's own text builder: the ids RL
                 sends to the rollout engine, token for token; loss 0
    answer ids   the rest of the whole conversation's rendering with the same kwargs: the answer (under
                 thinking on, after Qwen3's empty think block) and the end-of-turn token; loss 1
    separator    the template's text after the end-of-turn token (Qwen's ``\\n``), which a rollout never
                 generates: kept so the row equals the whole rendering, loss 0

so verl's own check (the concatenation equals the whole conversation rendered at once, which fails
loudly unless ``ignore_input_ids_mismatch``) still guards every row. Padding, truncation and batching
are verl's. Only the final assistant turn is trained (data_tools rows are single-turn).
"""

from __future__ import annotations

from typing import Any

import torch
from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset
from verl.utils.tokenizer.chat_template import initialize_turn_separator
from verl.utils.tokenizer.continuous_token import ContinuousTokenBuilder

__all__ = ["RolloutPromptSFTDataset"]


class RolloutPromptSFTDataset(MultiTurnSFTDataset):
    """``MultiTurnSFTDataset`` whose prompt part is the RL rollout's prompt (see the module docstring)."""

    def _read_files_and_process(self) -> None:
        super()._read_files_and_process()
        if self.processor is not None:
            raise ValueError(f"{self.parquet_files}: RolloutPromptSFTDataset is text-only; the model has a "
                             f"multimodal processor ({type(self.processor).__name__}): use verl's MultiTurnSFTDataset")
        if self.tools is not None:
            raise ValueError(f"{self.parquet_files}: column {self.tools_key!r} (tools) is not supported by "
                             "RolloutPromptSFTDataset: the rows must be plain chat messages")
        self._check_thinking_settings()
        ids = self.dataframe["id"].tolist() if "id" in self.dataframe.columns else [None] * len(self.messages)
        for row, (messages, row_id) in enumerate(zip(self.messages, ids, strict=True)):
            self._check_row(row, row_id, messages)
        self.turn_separator = initialize_turn_separator(self.tokenizer, **self.apply_chat_template_kwargs)

    def _check_thinking_settings(self) -> None:
        """One thinking choice: the parent lets ``enable_thinking_default`` override the kwargs' for every row.

        verl's own default for it is the YAML string ``none`` (not null), which the parent turns into
        ``bool("none")``: thinking on for every row, whatever ``apply_chat_template_kwargs`` says.
        """
        default = self.enable_thinking_default
        if default is not None and not isinstance(default, bool):
            raise ValueError(f"data.enable_thinking_default is {default!r}, not true, false or null: verl would read "
                             f"it as enable_thinking={bool(default)} for every row; set it to the profile's thinking")
        kwarg = self.apply_chat_template_kwargs.get("enable_thinking")
        if default is not None and kwarg is not None and bool(kwarg) != default:
            raise ValueError(f"data.enable_thinking_default {default} disagrees with data.apply_chat_template_kwargs."
                             f"enable_thinking {kwarg}: the first would win for every row; set both alike")

    def _check_row(self, row: int, row_id: Any, messages: Any) -> None:
        """Fail at load, naming the file, row and id, on a row that has no prompt and final answer."""
        where = f"{self.parquet_files}: row {row}" + (f" (id {row_id})" if row_id is not None else "")
        if not isinstance(messages, list) or len(messages) < 2:
            raise ValueError(f"{where}: field {self.messages_key!r} must hold the prompt messages and a final "
                             f"assistant answer, got {messages!r}")
        for turn, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                raise ValueError(f"{where}: {self.messages_key}[{turn}] must be a message with string "
                                 f"'content', got {message!r}")
        if messages[-1].get("role") != "assistant":
            raise ValueError(f"{where}: the last message must be the assistant's answer (the trained turn), "
                             f"got role {messages[-1].get('role')!r}")

    def _chat_kwargs(self, enable_thinking: bool | None) -> dict[str, Any]:
        """``apply_chat_template_kwargs`` with the row's thinking choice, as the parent class applies it."""
        kwargs = {**self.apply_chat_template_kwargs}
        if enable_thinking is not None:
            kwargs["enable_thinking"] = enable_thinking
        return kwargs

    def prompt_ids(self, prompt: list[dict[str, Any]], enable_thinking: bool | None = None) -> list[int]:
        """The ids verl's agent loop sends to the rollout for ``prompt`` (its text builder's initial tokens)."""
        builder = ContinuousTokenBuilder(self.tokenizer, chat_template_kwargs=self._chat_kwargs(enable_thinking))
        return builder.build_initial_tokens(prompt)

    def _answer_ids(self, messages: list[dict[str, Any]], enable_thinking: bool | None) -> list[int]:
        """The whole conversation's rendering after the generation prompt, tokenized on its own."""
        kwargs = self._chat_kwargs(enable_thinking)
        whole = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False, **kwargs)
        prompt = self.tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True,
                                                    **kwargs)
        if not whole.startswith(prompt):
            raise ValueError(f"{self.parquet_files}: the chat template renders the conversation {messages!r} with "
                             f"another text before the answer than its generation prompt {prompt!r}: SFT cannot "
                             "train after the prompt that RL and evaluation use")
        return self.tokenizer.encode(whole[len(prompt):], add_special_tokens=False)

    def _process_single_message(self, index: int, message: dict[str, Any], full_message: list,
                                tools: list[dict[str, Any]] | None = None, enable_thinking: bool | None = None):
        """The parent's per-turn step, turned into prompt-then-answer.

        The parent calls this for each message in order and concatenates the results: message 0 returns
        the whole prompt (loss 0), the other prompt messages nothing, the final assistant turn the answer
        and end-of-turn token (loss 1) and the template's separator (loss 0).
        """
        last = len(full_message) - 1
        if index == 0:
            ids = self.prompt_ids(full_message[:last], enable_thinking)
            mask = [0] * len(ids)
        elif index < last:
            ids, mask = [], []
        else:
            ids = self._answer_ids(full_message, enable_thinking)
            sep = list(self.turn_separator)
            tail = len(sep) if sep and len(ids) > len(sep) and ids[-len(sep):] == sep else 0
            mask = [1] * (len(ids) - tail) + [0] * tail
        input_ids = torch.tensor(ids, dtype=torch.long)
        return input_ids, torch.tensor(mask, dtype=torch.long), torch.ones_like(input_ids), {}
