"""Scoring model outputs: the embedding service plus the pure reward math.

One ``SemanticScorer`` per reward configuration. ``score`` is the async
per-trajectory call verl's reward loop makes; ``score_batch`` is the offline
form (evaluation, benchmarks). Both give identical numbers for identical inputs, except
the batch-median length penalty: ``score`` cannot see the batch, so it leaves that
penalty at 0 and ``finish_batch`` applies it to one complete batch.

Outputs, references and sources are normalised with ``text.normalize``, exactly as
``data_tools`` normalises the references it writes, before anything is measured or
encoded: an output written with the non-breaking tsheg scores as the ordinary one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from .config import SemanticRewardConfig
from .diagnostics import DECOY_KEYS
from .languages import LanguageRegistry
from .reward_math import (
    apply_batch_median_length_penalty,
    cosine_similarity,
    empty_components,
    is_empty_output,
    reward_components,
)
from .text import normalize, pretokenize, strip_reasoning, text_units

__all__ = ["SemanticScorer", "DataError"]


class DataError(ValueError):
    """A dataset row lacks what the configured reward mode needs."""


def lexical_similarity(metric: str, output: str, reference: str) -> float:
    """Sentence chrF++ or BLEU in [0, 1] over the project's units (the lexical similarity terms).

    Both sides become space-separated units (``text.pretokenize``), so BLEU runs with
    sacrebleu's ``none`` tokeniser and counts the same units as every other measure,
    exactly as ``evaluation.metrics`` does for the corpus scores.
    """
    import sacrebleu

    hyp, ref = pretokenize(output), pretokenize(reference)
    if metric == "chrf":
        return sacrebleu.sentence_chrf(hyp, [ref], word_order=2).score / 100.0
    return sacrebleu.sentence_bleu(hyp, [ref], tokenize="none").score / 100.0


class SemanticScorer:
    """Turns (output, reference/source, language) into the reward and its components."""

    def __init__(self, config: SemanticRewardConfig, service: Any | None = None):
        self.config = config
        self.languages: LanguageRegistry = config.language_registry()
        self.weights = config.similarity.weights()
        self.embeds = config.similarity.uses_encoder
        if service is None and self.embeds:  # the encoder is loaded only when its term is used
            from .service import shared_embedding_service

            service = shared_embedding_service(config)
        self.service = service
        self.batch_median = config.length_penalty.relative_to == "batch_median"

    # -- inputs ---------------------------------------------------------------------
    def _texts(self, response: str, reference: Any, source: Any) -> tuple[list[str], list[bool]]:
        mode = self.config.mode
        texts, flags = [response], [False]
        if mode in ("reference", "hybrid"):
            if not isinstance(reference, str):
                raise DataError(
                    f"reward mode {mode!r} needs the reference text in reward_model.ground_truth, "
                    f"got {type(reference).__name__}"
                )
            texts.append(reference)
            flags.append(True)
        if mode in ("source", "hybrid"):
            if not isinstance(source, str):
                raise DataError(
                    f"reward mode {mode!r} needs the source text in extra_info['source'], got {type(source).__name__}"
                )
            texts.append(source)
            flags.append(True)
        return texts, flags

    def _length_basis(self, reference: Any, source: Any) -> float | None:
        """The reference's length in units; None for the batch median, set once the batch is complete."""
        if self.batch_median:
            return None
        anchor = reference if isinstance(reference, str) else source
        return float(len(text_units(anchor))) if isinstance(anchor, str) else 0.0

    def _lexical(self, texts: list[str]) -> dict[str, float]:
        """Sentence BLEU / chrF++ of the output against the reference (texts[1]) for the used terms."""
        return {metric: lexical_similarity(metric, texts[0], texts[1])
                for metric in ("bleu", "chrf") if self.weights[metric] > 0}

    @staticmethod
    def _cosines(vectors: np.ndarray) -> list[float]:
        return [cosine_similarity(vectors[0], v) for v in vectors[1:]]

    def _finish(
        self, response: str, texts: list[str], cosines: list[float] | None, reference: Any, source: Any,
        language: str | None,
    ) -> dict[str, float]:
        scripts = self.languages.get(language or self.config.language).scripts
        sim_ref = sim_src = 0.0
        if cosines is not None:
            sim_ref = cosines[0] if self.config.mode in ("reference", "hybrid") else 0.0
            sim_src = cosines[-1] if self.config.mode in ("source", "hybrid") else 0.0
        lexical = self._lexical(texts) if self.config.similarity.lexical else {}
        return reward_components(
            response,
            scripts=scripts,
            config=self.config,
            sim_reference=sim_ref,
            sim_source=sim_src,
            length_basis=self._length_basis(reference, source),
            **lexical,
        )

    def _as_text(self, response: Any) -> tuple[str, int]:
        """The normalised answer (None is empty; other objects are formatted) and its reasoning's length.

        A leading reasoning block is cut off first when ``reasoning.strip`` is on, so
        neither term sees it; an unclosed block leaves no answer (scored as empty).
        """
        if not isinstance(response, str):
            response = "" if response is None else str(response)
        reasoning = 0
        cfg = self.config.reasoning
        if cfg.strip:
            response, reasoning = strip_reasoning(response, cfg.open_tag, cfg.close_tag)
        return normalize(response), reasoning

    @staticmethod
    def _with_reasoning(result: dict[str, float], reasoning: int) -> dict[str, float]:
        result["reasoning_length"] = float(reasoning)
        return result

    @staticmethod
    def _normalized(text: Any) -> Any:
        """References and sources are normalised like outputs; non-strings are left for ``_texts`` to report."""
        return normalize(text) if isinstance(text, str) else text

    # -- scoring --------------------------------------------------------------------
    async def score(
        self, response: Any, reference: Any = None, source: Any = None, language: str | None = None,
        decoy_reference: Any = None, decoy_source: Any = None,
    ) -> dict[str, float]:
        """Score one output (the per-trajectory path verl drives concurrently).

        With a decoy (another row's reference and source), the result also holds
        ``decoy_similarity`` and ``decoy_semantic_reward``: the same output measured against
        the decoy, a diagnostic of reference specificity (``semantic_reward.diagnostics``)
        that never enters ``score``. The output is encoded once; the decoy anchors go in a
        request of their own, cacheable like every reference, so the reward's own request
        is the one it would be without a decoy.
        """
        response, reasoning = self._as_text(response)
        reference, source = self._normalized(reference), self._normalized(source)
        texts, flags = self._texts(response, reference, source)
        if language is not None:
            self.languages.get(language)  # unknown per-row language: fail with the list of known ones
        decoy = self._decoy_texts(response, decoy_reference, decoy_source)
        if is_empty_output(response):
            result = self._with_reasoning(empty_components(self.config), reasoning)
            return self._with_decoy(result, dict.fromkeys(DECOY_KEYS, 0.0)) if decoy is not None else result
        cosines = decoy_cosines = None
        if self.embeds and decoy is not None:
            own, anchors = await asyncio.gather(self.service.embed(texts, flags),
                                                self.service.embed(decoy[1:], [True] * (len(decoy) - 1)))
            cosines = self._cosines(own)
            decoy_cosines = [cosine_similarity(own[0], v) for v in anchors]
        elif self.embeds:
            cosines = self._cosines(await self.service.embed(texts, flags))
        result = self._with_reasoning(self._finish(response, texts, cosines, reference, source, language), reasoning)
        if decoy is None:
            return result
        against = self._finish(response, decoy, decoy_cosines, decoy[1] if self.config.mode != "source" else None,
                               decoy[-1] if self.config.mode != "reference" else None, language)
        return self._with_decoy(result, {"decoy_similarity": against["semantic_similarity"],
                                         "decoy_semantic_reward": against["semantic_reward"]})

    def _decoy_texts(self, response: str, decoy_reference: Any, decoy_source: Any) -> list[str] | None:
        """``[output, decoy anchors...]`` laid out as ``_texts`` does; None unless the mode's anchors are all texts."""
        if decoy_reference is None and decoy_source is None:
            return None
        try:
            texts, _ = self._texts(response, self._normalized(decoy_reference), self._normalized(decoy_source))
        except DataError:
            return None  # a decoy is a diagnostic: a row without a usable one just has none
        return texts

    @staticmethod
    def _with_decoy(result: dict[str, float], decoy: dict[str, float]) -> dict[str, float]:
        result.update({k: float(decoy[k]) for k in DECOY_KEYS})
        return result

    def score_batch(
        self,
        responses: Sequence[Any],
        references: Sequence[Any] | None = None,
        sources: Sequence[Any] | None = None,
        languages: Sequence[str | None] | None = None,
    ) -> list[dict[str, float]]:
        """Score many outputs with one merged encode request."""
        n = len(responses)
        references = [self._normalized(r) for r in references] if references is not None else [None] * n
        sources = [self._normalized(s) for s in sources] if sources is not None else [None] * n
        languages = list(languages) if languages is not None else [None] * n
        if not len(references) == len(sources) == len(languages) == n:
            raise ValueError("responses, references, sources and languages must have the same length")
        plans, all_texts, all_flags = [], [], []
        for response, reference, source in zip(responses, references, sources, strict=True):
            response, reasoning = self._as_text(response)
            texts, flags = self._texts(response, reference, source)
            if is_empty_output(response):
                plans.append((response, reasoning, None))
                continue
            plans.append((response, reasoning, (len(all_texts), len(texts))))
            all_texts.extend(texts)
            all_flags.extend(flags)
        vectors = self.service.embed_sync(all_texts, all_flags) if all_texts and self.embeds else None
        results = []
        for (response, reasoning, span), reference, source, language in zip(
            plans, references, sources, languages, strict=True
        ):
            if span is None:
                results.append(self._with_reasoning(empty_components(self.config), reasoning))
                continue
            start, count = span
            pair = all_texts[start : start + count]
            cosines = self._cosines(vectors[start : start + count]) if vectors is not None else None
            results.append(
                self._with_reasoning(self._finish(response, pair, cosines, reference, source, language), reasoning)
            )
        return self.finish_batch(results)

    def finish_batch(self, results: Sequence[dict[str, float]]) -> list[dict[str, float]]:
        """Batch-level terms over ONE batch's results (the length penalty against its median length).

        ``score_batch`` calls it; the verl glue calls it once per training step on that
        step's outputs. Without a batch-level term the results are returned unchanged.
        """
        if not self.batch_median:
            return list(results)
        return apply_batch_median_length_penalty(results, self.config)
