"""Unicode normalisation for Tibetan and Chinese text.

Steps, each switchable in ``NormalizeConfig``:
- NFC composition;
- the non-breaking tsheg U+0F0C becomes the ordinary tsheg U+0F0B (corpora mix
  both, and some rows use U+0F0C throughout, which would split the vocabulary);
- zero-width characters (U+200B-U+200D, U+2060, U+FEFF) and control characters
  are removed;
- whitespace runs become one space, and the ends are trimmed;
- shad spacing: no space between a syllable and its shad; "shad space shad"
  (the verse-line separator) keeps exactly one space;
- optional Traditional -> Simplified Chinese through OpenCC (``t2s``).
"""

from __future__ import annotations

import functools
import unicodedata

import regex

from .config import NormalizeConfig

__all__ = ["Normalizer"]

_INVISIBLE = regex.compile(r"[\u200b-\u200d\u2060\ufeff]|[\p{Cc}--[\t\n\r ]]", flags=regex.V1)
_WHITESPACE = regex.compile(r"\s+")
_SPACE_BEFORE_SHAD = regex.compile(r"(?<=[\u0F40-\u0FBC])[ \t]+(?=[\u0F0D-\u0F11])")
_SHAD_GAP = regex.compile(r"([\u0F0D-\u0F11])[ \t]+(?=[\u0F0D-\u0F11])")


@functools.lru_cache(maxsize=1)
def _t2s():
    try:
        import opencc
    except ImportError as exc:  # pragma: no cover - opencc is a dependency
        raise RuntimeError("Traditional->Simplified conversion needs the 'opencc' package") from exc
    return opencc.OpenCC("t2s")


class Normalizer:
    """Callable text normaliser for one configuration."""

    def __init__(self, config: NormalizeConfig | None = None):
        self.config = config or NormalizeConfig()

    def __call__(self, text: str, chinese: bool = False) -> str:
        cfg = self.config
        if cfg.nfc:
            text = unicodedata.normalize("NFC", text)
        if cfg.tsheg:
            text = text.replace("\u0f0c", "\u0f0b")
        if cfg.strip_invisible:
            text = _INVISIBLE.sub("", text)
        if cfg.collapse_whitespace:
            text = _WHITESPACE.sub(" ", text).strip()
        if cfg.shad_spacing:
            text = _SPACE_BEFORE_SHAD.sub("", text)
            text = _SHAD_GAP.sub(r"\1 ", text)
        if chinese and cfg.traditional_to_simplified:
            text = _t2s().convert(text)
        return text
