"""Normalisation of dataset text: ``semantic_reward.text.normalize``, plus OpenCC.

The reward applies the same ``normalize`` to outputs, sources and references, so a
dataset written here and the reward's view of a model's output agree character for
character. Each step is switchable in ``NormalizeConfig`` (steps are documented in
``semantic_reward.text``); only the optional Traditional -> Simplified Chinese
conversion (OpenCC ``t2s``) lives here, since it needs a dictionary package.
"""

from __future__ import annotations

import functools

from semantic_reward.text import normalize

from .config import NormalizeConfig

__all__ = ["Normalizer"]


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
        text = normalize(
            text,
            nfc=cfg.nfc,
            tsheg=cfg.tsheg,
            strip_invisible=cfg.strip_invisible,
            collapse_whitespace=cfg.collapse_whitespace,
            shad_spacing=cfg.shad_spacing,
        )
        if chinese and cfg.traditional_to_simplified:
            text = _t2s().convert(text)
        return text
