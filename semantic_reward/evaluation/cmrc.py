"""CMRC 2018 scoring, the standard way for Chinese extractive reading comprehension.

Text is segmented "mixed": every CJK character is a token, runs of Latin letters or
digits are one token; punctuation (Chinese and ASCII) is removed and letters are
lower-cased. EM: the segmented prediction equals a segmented answer. F1: from the
longest common (contiguous) substring of the two segment lists, as the official
CMRC 2018 evaluation does: precision = common / len(prediction), recall =
common / len(answer). Both take the best over the references, in [0, 100].
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence

__all__ = ["segment", "cmrc_em", "cmrc_f1", "cmrc_scores", "QA_PROMPT"]

QA_PROMPT = "阅读下面的文章，回答问题。答案必须是文章中的一段原文，只输出答案。\n\n文章：{context}\n\n问题：{question}"

_CN_PUNCT = set("－：_*^/\\~`+=，。：？！“”；’《》……·、「」（）－～『』【】〔〕〈〉﹏＿．｛｝［］")


def _is_punct(ch: str) -> bool:
    return ch in string.punctuation or ch in _CN_PUNCT or unicodedata.category(ch).startswith("P")


def segment(text: str) -> list[str]:
    """Mixed segmentation without punctuation: CJK characters alone, other runs together."""
    tokens: list[str] = []
    run = ""
    for ch in text.lower().strip():
        if _is_punct(ch) or ch.isspace():
            if run:
                tokens.append(run)
                run = ""
            continue
        if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff":
            if run:
                tokens.append(run)
                run = ""
            tokens.append(ch)
        else:
            run += ch
    if run:
        tokens.append(run)
    return tokens


def _longest_common_substring(a: list[str], b: list[str]) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def cmrc_em(prediction: str, answers: Sequence[str]) -> float:
    pred = segment(prediction)
    return 100.0 if any(pred == segment(a) for a in answers) else 0.0


def cmrc_f1(prediction: str, answers: Sequence[str]) -> float:
    pred = segment(prediction)
    best = 0.0
    for answer in answers:
        ref = segment(answer)
        common = _longest_common_substring(pred, ref)
        if common == 0:
            continue
        precision, recall = common / len(pred), common / len(ref)
        best = max(best, 2 * precision * recall / (precision + recall))
    return 100.0 * best


def cmrc_scores(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """Corpus EM, F1 and their average (the paper's "CMRC Avg"), in [0, 100]."""
    if not predictions:
        return {"em": 0.0, "f1": 0.0, "avg": 0.0, "questions": 0}
    em = sum(cmrc_em(p, a) for p, a in zip(predictions, answers, strict=True)) / len(predictions)
    f1 = sum(cmrc_f1(p, a) for p, a in zip(predictions, answers, strict=True)) / len(predictions)
    return {"em": em, "f1": f1, "avg": (em + f1) / 2, "questions": len(predictions)}
