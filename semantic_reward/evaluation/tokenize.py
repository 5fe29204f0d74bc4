"""Scoring tokenisation: the project's units (``semantic_reward.text``), for every language.

BLEU runs with sacrebleu's ``none`` tokeniser over space-joined units, chrF++ over
the same string, ROUGE-L over the unit list, so the metrics count exactly the units
the reward counts (Tibetan syllables, Han characters, words, digit runs; no
punctuation). ``SEGMENTER.signature()`` names the scheme in reports. The
``language`` arguments are kept for callers; segmentation does not depend on them.
"""

from __future__ import annotations

from ..text import SEGMENTER, pretokenize as _pretokenize

__all__ = ["SEGMENTER", "rouge_units", "bleu_tokenizer", "pretokenize"]


def rouge_units(text: str, language: str | None = None) -> list[str]:
    """Units for ROUGE-L."""
    return SEGMENTER(text)


def bleu_tokenizer(language: str | None = None) -> str:
    """The sacrebleu tokeniser to use after ``pretokenize``: always ``none``."""
    return "none"


def pretokenize(text: str, language: str | None = None) -> str:
    """Space-separated units: the input sacrebleu's BLEU (``tokenize='none'``) and chrF++ receive."""
    return _pretokenize(text)
