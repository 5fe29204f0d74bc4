"""A small BERT encoder built offline: WordPiece tokenizer trained on local text, model from a config.

For demos and tests on machines without a hub. Tibetan syllables are split on the
tsheg (BERT's pre-tokenizer treats it as punctuation) and Chinese characters are
split one by one, so the vocabulary covers both scripts of the training text.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["build_tiny_encoder"]


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
    """Train a tokenizer on ``texts``, build a randomly initialised BERT, save both as a transformers model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", do_lower_case=True,
                             model_max_length=max_length)
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(fast), hidden_size=hidden_size, num_hidden_layers=num_layers,
                        num_attention_heads=num_heads, intermediate_size=hidden_size * 4,
                        max_position_embeddings=max_length + 2)
    BertModel(config).save_pretrained(out)
    return out
