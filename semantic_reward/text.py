"""Tibetan/Chinese text: one normalisation and one segmentation into units, used everywhere.

The reward (length, repetition, emptiness, language purity), the lexical reward
(BLEU/chrF), the evaluation metrics (BLEU tokens, ROUGE-L), the encoder audit's
perturbations and ``data_tools``' filters all count the units of :data:`SEGMENTER`,
so a "unit" means the same thing in every number the project reports.

Normalisation (:func:`normalize`, also what ``data_tools`` writes into datasets):

- NFC composition;
- the non-breaking tsheg U+0F0C becomes the tsheg U+0F0B (corpora mix both, and a
  perfect output written with U+0F0C must score as the U+0F0B one);
- zero-width characters (U+200B-U+200D, U+2060, U+FEFF) and control characters
  other than tab and newline are removed;
- whitespace runs become one space, and the ends are trimmed;
- shad spacing: no space between a Tibetan letter and the shad after it; between two
  shads (the verse-line separator "། །") exactly one space.

Segmentation (:class:`Segmenter`, signature ``units-1``) runs on normalised text:

- Han, Hiragana and Katakana: one unit per character (with its combining marks);
- Tibetan: one unit per syllable, a run of Tibetan letters and their combining marks
  (vowel signs, subjoined letters). The tsheg U+0F0B and the non-breaking tsheg
  U+0F0C separate syllables; shads (U+0F0D-U+0F12, U+0F14) and all other Tibetan
  punctuation and symbols separate syllables and are never units themselves;
- digits: one unit per run of digits of any script (``2024``, Tibetan ``༢༠༢༤``,
  Tibetan half digits): counted in lengths, n-grams and BLEU, but a digit run has no
  letter, so it is neutral in the language check;
- Latin and every other script: one unit per run of letters of one script, i.e. a
  word (``GDP``). A change of script ends a unit: ``NBAརྒྱལ`` is ``NBA``, ``རྒྱལ``;
  ``POWER6`` is ``POWER``, ``6``. Scripts written without spaces other than Han and
  Tibetan (Thai, Khmer, ...) get one unit per space-separated run;
- nothing else is a unit: punctuation (shads and tsheg included), symbols, spaces,
  control characters, and combining marks with no base letter (a string of Tibetan
  vowel signs alone has no units, so it is an empty output).

The standard library and ``regex`` only: this is the bottom layer.
"""

from __future__ import annotations

import unicodedata

import regex

__all__ = [
    "Segmenter",
    "SEGMENTER",
    "TSHEG",
    "NB_TSHEG",
    "SHADS",
    "normalize",
    "text_units",
    "pretokenize",
    "strip_reasoning",
]

TSHEG = "\u0f0b"
NB_TSHEG = "\u0f0c"
SHADS = "\u0f0d\u0f0e\u0f0f\u0f10\u0f11\u0f12\u0f14"
"""Shad-type marks: shad, nyis shad, tsheg shad, nyis tsheg shad, rin chen spungs shad, rgya gram shad, gter tsheg."""

_INVISIBLE = regex.compile(r"[\u200b-\u200d\u2060\ufeff]|[\p{Cc}--[\t\n\r ]]", flags=regex.V1)
_WHITESPACE = regex.compile(r"\s+")
_SPACE_BEFORE_SHAD = regex.compile(rf"(?<=[\u0F40-\u0FBC])[ \t]+(?=[{SHADS}])")
_SHAD_GAP = regex.compile(rf"([{SHADS}])[ \t]+(?=[{SHADS}])")


def normalize(
    text: str,
    *,
    nfc: bool = True,
    tsheg: bool = True,
    strip_invisible: bool = True,
    collapse_whitespace: bool = True,
    shad_spacing: bool = True,
) -> str:
    """The one normalisation of references, sources and model outputs (steps in the module docstring)."""
    if nfc:
        text = unicodedata.normalize("NFC", text)
    if tsheg:
        text = text.replace(NB_TSHEG, TSHEG)
    if strip_invisible:
        text = _INVISIBLE.sub("", text)
    if collapse_whitespace:
        text = _WHITESPACE.sub(" ", text).strip()
    if shad_spacing:
        text = _SPACE_BEFORE_SHAD.sub("", text)
        text = _SHAD_GAP.sub(r"\1 ", text)
    return text


# Scripts whose words are split apart at a change of script; letters of any other
# script form runs of their own (``_OTHER``). Han and kana are per character.
_WORD_SCRIPTS = (
    "Tibetan", "Latin", "Cyrillic", "Greek", "Armenian", "Georgian", "Arabic", "Hebrew", "Syriac", "Thaana",
    "Mongolian", "Yi", "Hangul", "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu",
    "Kannada", "Malayalam", "Sinhala", "Thai", "Lao", "Khmer", "Myanmar", "Ethiopic",
)
_CHAR_SCRIPTS = ("Han", "Hiragana", "Katakana")


def _unit_pattern() -> regex.Pattern:
    common_letter = r"[\p{L}&&\p{Script=Common}]"
    char_union = "".join(rf"\p{{Script={s}}}" for s in _CHAR_SCRIPTS)
    known = "".join(rf"\p{{Script={s}}}" for s in (*_CHAR_SCRIPTS, *_WORD_SCRIPTS, "Common"))
    parts = [
        rf"[\p{{L}}&&[{char_union}]](?:\p{{M}}|{common_letter})*",  # one Han / kana character (コー)
        r"\p{N}[\p{N}\p{M}]*",  # a run of digits (any script)
    ]
    for script in _WORD_SCRIPTS:
        letter = rf"[\p{{L}}&&\p{{Script={script}}}]"
        parts.append(rf"{letter}(?:{letter}|\p{{M}}|{common_letter})*")
    other = rf"[\p{{L}}--[{known}]]"
    parts.append(rf"{other}(?:{other}|\p{{M}}|{common_letter})*")
    return regex.compile("|".join(parts), flags=regex.V1)


class Segmenter:
    """Splits text into the project's units (see the module docstring); ``signature`` names the scheme.

    Like a sacrebleu tokeniser, it is a small named callable; unlike one it returns
    the units as a list. Input is normalised with :func:`normalize` first, so callers
    that forget to normalise still count the same units.
    """

    name = "units"
    version = "1"

    def __init__(self) -> None:
        self._pattern = _unit_pattern()

    def signature(self) -> str:
        """The scheme's name and version, for reports next to sacrebleu's own signature."""
        return f"{self.name}-{self.version}"

    def __call__(self, text: str) -> list[str]:
        return self._pattern.findall(normalize(text))

    def __repr__(self) -> str:
        return f"Segmenter({self.signature()!r})"


SEGMENTER = Segmenter()


def text_units(text: str) -> list[str]:
    """The units of ``text`` (Tibetan syllables, Han characters, words, digit runs)."""
    return SEGMENTER(text)


def pretokenize(text: str) -> str:
    """Units joined by single spaces: the input to sacrebleu with ``tokenize='none'`` (BLEU) and chrF++."""
    return " ".join(SEGMENTER(text))


_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


def strip_reasoning(text: str, open_tag: str = _THINK_OPEN, close_tag: str = _THINK_CLOSE) -> tuple[str, int]:
    """Remove a leading reasoning block; returns (answer, characters removed).

    - ``<think>...</think> answer`` -> the answer;
    - ``... </think> answer`` with no opening tag (chat templates that open the block
      in the prompt) -> the answer;
    - ``<think>...`` never closed -> an empty answer: the model did not answer;
    - anything else is returned unchanged, with 0.
    A ``<think>`` later in the text is not a leading block and stays in the answer.
    """
    stripped = text.lstrip()
    if stripped.startswith(open_tag):
        end = stripped.find(close_tag, len(open_tag))
        if end < 0:
            return "", len(text)
        answer = stripped[end + len(close_tag):]
        return answer, len(text) - len(answer)
    end = text.find(close_tag)
    if end >= 0 and open_tag not in text[:end]:
        answer = text[end + len(close_tag):]
        return answer, len(text) - len(answer)
    return text, 0
