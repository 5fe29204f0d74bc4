"""A tiny causal LM built offline: byte-level BPE tokenizer trained on local text + a Qwen3 model from a config.

For CPU demos and tests where no hub is reachable. The tokenizer carries a ChatML
chat template (as Qwen models do), so verl and the evaluation code treat it like
a real chat model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["CHATML_TEMPLATE", "train_chat_tokenizer", "build_tiny_policy", "perturbed_copy", "train_causal_lm"]

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_chat_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 4000):
    """A byte-level BPE tokenizer (any text encodes) with ChatML special tokens and template, saved to ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out)
    return fast


def build_tiny_policy(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 4000, hidden_size: int = 64,
                      num_layers: int = 2, num_heads: int = 4, max_positions: int = 2048, seed: int = 0) -> Path:
    """Train a tokenizer on ``texts`` and save it with a randomly initialised Qwen3 model."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    out = Path(out_dir)
    fast = train_chat_tokenizer(texts, out, vocab_size)
    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=len(fast), hidden_size=hidden_size, intermediate_size=hidden_size * 3,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
                         head_dim=hidden_size // num_heads, max_position_embeddings=max_positions,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, bos_token_id=None,
                         tie_word_embeddings=True)
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(out)
    return out


def perturbed_copy(model_dir: str | Path, out_dir: str | Path, scale: float = 0.5, seed: int = 0) -> Path:
    """A copy whose weights get Gaussian noise of ``scale`` x each tensor's own std (a stand-in for drift)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.numel() > 1:
                param.add_(torch.randn(param.shape, generator=gen) * param.std() * scale)
    out = Path(out_dir)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def train_causal_lm(model_dir: str | Path, texts: list[str], out_dir: str | Path, steps: int = 200,
                    batch_size: int = 16, max_length: int = 128, lr: float = 3e-3, seed: int = 0,
                    progress: bool = True) -> Path:
    """A few hundred steps of next-token training on ``texts`` (for demos: gives a tiny model real behaviour)."""
    import random

    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.train()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / steps))
    for _ in tqdm(range(steps), desc="training tiny LM", disable=not progress):
        batch = tok(rng.sample(texts, min(batch_size, len(texts))), return_tensors="pt", padding=True,
                    truncation=True, max_length=max_length, add_special_tokens=False)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad()
    model.eval()
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
