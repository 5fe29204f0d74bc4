"""Target languages as sets of Unicode scripts, and the language check.

A language is known to the reward only through its writing system(s), so a new
low-resource language is added by naming its scripts (any Unicode script name the
``regex`` module knows: ``Yi``, ``Ol_Chiki``, ``Tifinagh`` ...), never by code.

The language check (:func:`unit_share`, :func:`passes_language`) counts the units
of ``semantic_reward.text`` that hold a letter: a Tibetan syllable, a Han
character, a Latin word each count once, so the acronym in "...全省GDP的..." weighs
as much as one Han character, not three. Digit runs, punctuation and symbols hold
no letter and never decide the language, and combining marks with no base letter
are no unit at all. The reward's R_lang, ``data_tools``' script filter and the
evaluation's language consistency all use this one check.

:func:`script_share` (letters, not units) remains for measures that need letters,
such as the encoder audit's share of unknown-token letters.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import regex

from .text import text_units

__all__ = [
    "Language",
    "LanguageError",
    "BUILTIN_LANGUAGES",
    "LanguageRegistry",
    "DEFAULT_PURITY",
    "ScriptShare",
    "UnitShare",
    "is_valid_script",
    "letter_count",
    "script_share",
    "unit_share",
    "passes_language",
    "canonical_language",
]


DEFAULT_PURITY = 0.9
"""Share of letter units in the target scripts needed for R_lang = 1 by default: a Latin
acronym in a sentence passes, a sentence half in another language fails."""


class LanguageError(ValueError):
    """An unknown language name or an invalid Unicode script name."""


@dataclass(frozen=True)
class Language:
    """A target language: a canonical name, its scripts, and accepted aliases."""

    name: str
    scripts: tuple[str, ...]
    aliases: tuple[str, ...] = ()


# Scripts are Unicode script property values; aliases include ISO 639 codes.
BUILTIN_LANGUAGES: tuple[Language, ...] = (
    Language("tibetan", ("Tibetan",), ("bo", "bod", "tib", "dz", "dzongkha")),
    Language("chinese", ("Han",), ("zh", "zho", "chi", "cmn", "yue")),
    Language("japanese", ("Han", "Hiragana", "Katakana"), ("ja", "jpn")),
    Language("korean", ("Hangul", "Han"), ("ko", "kor")),
    Language("english", ("Latin",), ("en", "eng")),
    Language("latin_script", ("Latin",), ("latn",)),
    Language("russian", ("Cyrillic",), ("ru", "rus")),
    Language("kazakh", ("Cyrillic",), ("kk", "kaz")),
    Language("mongolian", ("Mongolian",), ("mn_mong", "mon", "mvf")),
    Language("khalkha_mongolian", ("Cyrillic",), ("mn", "khk", "mn_cyrl")),
    Language("uyghur", ("Arabic",), ("ug", "uig")),
    Language("arabic", ("Arabic",), ("ar", "ara")),
    Language("persian", ("Arabic",), ("fa", "fas", "per")),
    Language("urdu", ("Arabic",), ("ur", "urd")),
    Language("yi", ("Yi",), ("ii", "iii", "nuosu")),
    Language("hindi", ("Devanagari",), ("hi", "hin")),
    Language("nepali", ("Devanagari",), ("ne", "nep")),
    Language("bengali", ("Bengali",), ("bn", "ben")),
    Language("thai", ("Thai",), ("th", "tha")),
    Language("lao", ("Lao",), ("lo", "lao")),
    Language("khmer", ("Khmer",), ("km", "khm")),
    Language("burmese", ("Myanmar",), ("my", "mya", "bur")),
    Language("georgian", ("Georgian",), ("ka", "kat", "geo")),
    Language("armenian", ("Armenian",), ("hy", "hye", "arm")),
    Language("greek", ("Greek",), ("el", "ell", "gre")),
    Language("hebrew", ("Hebrew",), ("he", "heb")),
    Language("amharic", ("Ethiopic",), ("am", "amh")),
    Language("tamil", ("Tamil",), ("ta", "tam")),
    Language("sinhala", ("Sinhala",), ("si", "sin")),
)


@functools.lru_cache(maxsize=None)
def _script_pattern(scripts: tuple[str, ...]) -> regex.Pattern:
    union = "".join(rf"\p{{Script={s}}}" for s in scripts)
    return regex.compile(rf"(?V1)[[\p{{L}}\p{{M}}]&&[{union}]]")


_LETTER = regex.compile(r"(?V1)[[\p{L}\p{M}]--[\p{Script=Inherited}\p{Script=Common}]]")


@functools.lru_cache(maxsize=None)
def is_valid_script(script: str) -> bool:
    """True when ``script`` is a Unicode script name the regex engine knows."""
    if not script or not regex.fullmatch(r"[A-Za-z_]+", script):
        return False
    try:
        regex.compile(rf"\p{{Script={script}}}")
    except regex.error:
        return False
    return True


def letter_count(text: str) -> int:
    """Letters that belong to a real script (digits, punctuation, spaces excluded)."""
    return len(_LETTER.findall(text))


@dataclass(frozen=True)
class ScriptShare:
    """How much of a text's letters are in the target scripts."""

    target_letters: int
    total_letters: int

    @property
    def share(self) -> float:
        return self.target_letters / self.total_letters if self.total_letters else 0.0


def script_share(text: str, scripts: Iterable[str]) -> ScriptShare:
    """Count the target-script letters among all script letters of ``text``."""
    key = tuple(scripts)
    return ScriptShare(len(_script_pattern(key).findall(text)), letter_count(text))


@dataclass(frozen=True)
class UnitShare:
    """How many of a text's letter-bearing units are in the target scripts."""

    target_units: int
    total_units: int

    @property
    def share(self) -> float:
        return self.target_units / self.total_units if self.total_units else 0.0


def unit_share(text: str, scripts: Iterable[str]) -> UnitShare:
    """Count the units (``text.text_units``) whose first letter is in ``scripts``, among units with a letter."""
    target_pattern = _script_pattern(tuple(scripts))
    target = total = 0
    for unit in text_units(text):
        letter = _LETTER.search(unit)
        if letter is None:  # a digit run
            continue
        total += 1
        if target_pattern.match(letter.group()):
            target += 1
    return UnitShare(target, total)


def passes_language(share: UnitShare, purity: float, min_units: int = 1) -> bool:
    """The language check: at least ``min_units`` letter units, ``purity`` of them in the target scripts."""
    return share.total_units >= min_units and share.share >= purity


class LanguageRegistry:
    """Name/alias -> Language lookup; extra languages come from configuration.

    Instances are cheap and immutable after construction: there is no global
    mutable registry, so two reward configs can define different extras.
    """

    def __init__(self, extra: Mapping[str, Iterable[str]] | None = None):
        self._by_key: dict[str, Language] = {}
        for lang in BUILTIN_LANGUAGES:
            self._add(lang)
        for name, scripts in (extra or {}).items():
            scripts_t = (scripts,) if isinstance(scripts, str) else tuple(scripts)
            bad = [s for s in scripts_t if not is_valid_script(s)]
            if not scripts_t or bad:
                raise LanguageError(
                    f"language {name!r}: invalid Unicode script name(s) {bad or '[] (none given)'}; "
                    "use script property values such as 'Tibetan', 'Han', 'Yi', 'Ol_Chiki'"
                )
            self._add(Language(str(name).lower(), scripts_t), replace=True)

    def _add(self, lang: Language, replace: bool = False) -> None:
        for key in (lang.name, *lang.aliases):
            key = key.lower()
            if key in self._by_key and not replace and self._by_key[key] != lang:
                raise LanguageError(f"language key {key!r} is defined twice")
            self._by_key[key] = lang

    def names(self) -> list[str]:
        return sorted({lang.name for lang in self._by_key.values()})

    def get(self, name: str) -> Language:
        """Look up by name or alias; a ``script:Name[+Name]`` form names scripts directly."""
        key = str(name).strip().lower()
        if key in self._by_key:
            return self._by_key[key]
        if key.startswith("script:"):
            scripts = tuple(s.strip() for s in str(name).strip()[7:].split("+") if s.strip())
            bad = [s for s in scripts if not is_valid_script(s)]
            if scripts and not bad:
                return Language(key, scripts)
            raise LanguageError(f"language {name!r}: invalid Unicode script name(s) {bad}")
        raise LanguageError(
            f"unknown language {name!r}; known: {', '.join(self.names())}; "
            "add one by naming its scripts (setting 'languages: {name: [Script, ...]}') "
            "or use 'script:<UnicodeScript>'"
        )


@functools.lru_cache(maxsize=256)
def canonical_language(name: str) -> str:
    """The built-in canonical name for a language name or code ('bo' -> 'tibetan'); unknown names pass through."""
    try:
        return LanguageRegistry().get(name).name
    except LanguageError:
        return str(name).strip().lower()
