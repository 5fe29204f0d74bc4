"""Tokenisation for scoring, per target language. Nothing is downloaded.

- Chinese: sacrebleu's ``zh`` tokeniser (each Han character a token) for BLEU;
  characters for ROUGE-L.
- Tibetan: syllables. Text is split on the tsheg (U+0F0B/U+0F0C) and whitespace;
  each shad-type mark (U+0F0D-U+0F14) is its own token. BLEU then runs with
  sacrebleu's ``none`` tokeniser over the space-joined syllables.
- Anything else: sacrebleu's ``13a`` for BLEU, whitespace words for ROUGE-L.
"""

from __future__ import annotations

import regex

from ..languages import canonical_language

__all__ = ["tibetan_syllables", "rouge_units", "bleu_tokenizer", "pretokenize"]

_TIBETAN_SPLIT = regex.compile(r"[\u0F0B\u0F0C\s]+")
_SHAD = regex.compile(r"([\u0F0D-\u0F14])")
_CJK_UNIT = regex.compile(r"\p{Han}|[^\s\p{Han}\p{P}]+|\p{P}")



def tibetan_syllables(text: str) -> list[str]:
    """'བཀྲ་ཤིས་བདེ་ལེགས།' -> ['བཀྲ', 'ཤིས', 'བདེ', 'ལེགས', '།']"""
    out: list[str] = []
    for chunk in _TIBETAN_SPLIT.split(_SHAD.sub(r" \1 ", text)):
        if chunk:
            out.append(chunk)
    return out


def rouge_units(text: str, language: str) -> list[str]:
    """Units for ROUGE-L: syllables (Tibetan), characters (Chinese), words (others)."""
    lang = canonical_language(language)
    if lang == "tibetan":
        return [u for u in tibetan_syllables(text) if not _SHAD.fullmatch(u)]
    if lang == "chinese":
        return [u for u in _CJK_UNIT.findall(text) if not regex.fullmatch(r"\p{P}", u)]
    return text.split()


def bleu_tokenizer(language: str) -> str:
    """The sacrebleu tokeniser name to use after ``pretokenize``."""
    lang = canonical_language(language)
    if lang == "tibetan":
        return "none"
    if lang == "chinese":
        return "zh"
    return "13a"


def pretokenize(text: str, language: str) -> str:
    """Tibetan becomes space-separated syllables; other languages pass through."""
    return " ".join(tibetan_syllables(text)) if canonical_language(language) == "tibetan" else text
