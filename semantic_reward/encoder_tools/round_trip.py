"""Which characters of the target script survive an encoder's tokenizer: a round trip, not a count of [UNK].

A tokenizer can lose a character three ways, and only the first shows as an unknown token:
- ``unknown``: the character lies inside a token that is the unknown token;
- ``deleted``: no token's offsets cover it (a normalizer removed it: BERT's accent stripping deletes
  every Tibetan vowel sign and subjoined letter, which Unicode calls combining marks);
- ``altered``: a token covers it but the tokens, decoded, do not give it back (lowercased, or replaced).

The decoded tokens are aligned with the text character by character (``difflib``, spaces ignored on
both sides, since decoders put spaces between tokens). A change to a compatibility-equivalent form
(NFKC: XLM-R's normalizer writes the non-breaking tsheg U+0F0C as the tsheg U+0F0B) loses nothing and
is not counted. Only characters of the target scripts are counted (letters, marks, the script's own
punctuation and digits), so a lowercased Latin acronym in a Tibetan sentence does not count.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import regex

__all__ = ["script_characters", "round_trip"]

LOSSES = ("unknown", "deleted", "altered")


def script_characters(scripts: Sequence[str]) -> regex.Pattern:
    """One character of any of ``scripts`` (Unicode Script property: ``Common`` punctuation is not included)."""
    return regex.compile("[" + "".join(rf"\p{{Script={s}}}" for s in scripts) + "]")


def _spans(enc: dict[str, Any], unk_id: int | None, special: set[int]) -> tuple[set[int], set[int]]:
    covered, unknown = set(), set()
    for token_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
        if token_id in special and token_id != unk_id:
            continue
        span = range(start, end)
        covered.update(span)
        if token_id == unk_id:
            unknown.update(span)
    return covered, unknown


def _kept_positions(text: str, decoded: str) -> set[int]:
    """Positions of ``text`` whose characters the decoded string gives back (NFKC-equal counts, spaces ignored)."""
    pieces, owner = [], []
    for i, ch in enumerate(text):
        for piece in unicodedata.normalize("NFKC", ch):
            if not piece.isspace():
                pieces.append(piece)
                owner.append(i)
    back = [c for c in unicodedata.normalize("NFKC", decoded) if not c.isspace()]
    matched: Counter[int] = Counter()
    for block in difflib.SequenceMatcher(None, pieces, back, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            matched[owner[block.a + k]] += 1
    need = Counter(owner)
    return {i for i, n in need.items() if matched[i] == n}


def round_trip(tokenizer: Any, texts: Sequence[str], scripts: Sequence[str], examples: int = 5) -> dict[str, Any]:
    """Share of the target-script characters of ``texts`` that ``tokenizer`` loses, by way of loss.

    Returns ``characters`` (counted), ``lost``, ``lost_share``, a count per loss (``unknown``, ``deleted``,
    ``altered``; ``deleted`` and ``unknown`` need offsets: without them every loss is ``altered``),
    ``top_lost`` (the most often lost characters, with code point and name) and ``checked`` (False for an
    encoder without a tokenizer, whose share is then 0).
    """
    pattern = script_characters(scripts)
    counts = dict.fromkeys(LOSSES, 0)
    lost_chars: Counter[str] = Counter()
    total = 0
    for text in texts:
        positions = [i for i, ch in enumerate(text) if pattern.match(ch)]
        total += len(positions)
        if tokenizer is None or not positions:
            continue
        try:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
            covered, unknown = _spans(enc, getattr(tokenizer, "unk_token_id", None),
                                      set(getattr(tokenizer, "all_special_ids", [])))
        except NotImplementedError:  # a slow (Python) tokenizer gives no offsets
            enc = tokenizer(text, add_special_tokens=False, truncation=False)
            covered, unknown = set(range(len(text))), set()
        decoded = tokenizer.decode(enc["input_ids"], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        kept = _kept_positions(text, decoded)
        for i in positions:
            way = ("unknown" if i in unknown else None if i in kept else "deleted" if i not in covered
                   else "altered")
            if way:
                counts[way] += 1
                lost_chars[text[i]] += 1
    lost = sum(counts.values())
    top = [{"char": ch, "codepoint": f"U+{ord(ch):04X}", "name": unicodedata.name(ch, "?"), "count": n}
           for ch, n in lost_chars.most_common(examples)]
    return {"characters": total, "lost": lost, "lost_share": lost / total if total else 0.0, **counts,
            "top_lost": top, "checked": tokenizer is not None}
