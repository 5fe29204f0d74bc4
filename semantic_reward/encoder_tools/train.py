"""Contrastive training of the reward encoder on parallel pairs (the paper's recipe).

Any transformers encoder (CINO, XLM-R, LaBSE, ... by hub name or local path) is
wrapped as a SentenceTransformer (mean pooling) unless it already is one, then
fine-tuned with multiple-negatives ranking loss on (anchor, positive) pairs with
sentence-transformers' own trainer: in-batch negatives, optional mined hard
negatives, optional degenerate negatives (a frequent syllable repeated, tsheg runs,
syllable salad, a reference's own units shuffled: ``degenerate``, built from the
training targets), checkpoints and a fixed seed. The dev pairs are scored during training by
the audit itself (``audit.AuditEvaluator``, or any evaluator you pass), and the best
checkpoint by its primary metric (retrieval P@1, worse direction) becomes the final
model; ``selection.json`` and the dev audit report say which and why.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import device_problem
from ..settings import Choice, Settings, setting

__all__ = ["Anchor", "EncoderTrainConfig", "load_as_sentence_transformer", "train_encoder"]

logger = logging.getLogger(__name__)


class Anchor(Choice):
    """Which side of each pair is the anchor of the contrastive loss."""

    source = "source"
    target = "target"


@dataclass(frozen=True)
class EncoderTrainConfig(Settings):
    """Defaults follow the paper: Chinese as the anchor, max length 128."""

    WHAT = "encoder training setting"

    model: str = setting(help="transformers encoder or sentence-transformers model")
    output_dir: str = setting(help="output folder")
    anchor: Anchor = setting(Anchor.source, help="source or target: which side of each pair is the anchor")
    max_length: int = setting(128, ge=1)
    epochs: float = setting(1.0, gt=0)
    batch_size: int = setting(32, ge=2, help="in-batch negatives need a batch of at least 2")
    learning_rate: float = setting(2e-5, gt=0)
    warmup_ratio: float = setting(0.1, ge=0, lt=1, help="share of the steps that warm the learning rate up")
    seed: int = setting(42, ge=0)
    hard_negatives: bool = setting(False, help="add one mined hard negative (another pair's target) per pair")
    # The reward compares an output with its reference; a policy that finds a string the encoder puts close
    # to every reference stops translating (the tiny run's GRPO collapsed to one syllable repeated). These
    # negatives teach the encoder that such strings, and a reference's own units out of order, are not it:
    # as an extra negative of the pair loss, and in a ranking (CoSENT) of target-target similarities that
    # puts them below an unrelated reference, the floor the audit and the tiny runs' tau use.
    degenerate_negatives: bool = setting(False, help="train degenerate target-language strings (built from the "
                                                     "training targets) below unrelated references")
    save_steps: int = setting(500, ge=1)
    eval_steps: int = setting(500, ge=1)
    device: str | None = None
    target_language: str = setting("tibetan", help="the targets' language: the audit's unknown-token share "
                                                   "counts its letters")
    select_best: bool = setting(True, help="keep the checkpoint the dev evaluator scores best, not the last one")

    def validate(self) -> None:
        if self.device is not None:
            problem = device_problem(self.device)
            if problem:
                self.fail("device", problem)
        if self.select_best and self.save_steps % self.eval_steps:
            self.fail("save_steps", f"{self.save_steps} must be a multiple of 'eval_steps' ({self.eval_steps}) "
                                    "to keep the best evaluated checkpoint")


def load_as_sentence_transformer(model: str, max_length: int = 128, device: str | None = None):
    """A SentenceTransformer from a sentence-transformers model or a plain transformers encoder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    is_st = os.path.exists(os.path.join(model, "modules.json"))
    if is_st:
        st = SentenceTransformer(model, device=device)
    else:  # a bare encoder: add mean pooling, as the paper did for CINO/XLM-R
        word = Transformer(model, max_seq_length=max_length)
        st = SentenceTransformer(modules=[word, Pooling(word.get_embedding_dimension(), "mean")], device=device)
    st.max_seq_length = max_length
    return st


def train_encoder(
    config: EncoderTrainConfig,
    sources: Sequence[str],
    targets: Sequence[str],
    dev_sources: Sequence[str] = (),
    dev_targets: Sequence[str] = (),
    evaluator: Any = None,
) -> Path:
    """Fine-tune and save; returns the folder of the final model.

    ``evaluator`` (a sentence-transformers evaluator) scores checkpoints; by default the
    audit on the dev pairs. With ``select_best`` the best-scoring checkpoint is the final model.
    """
    import datasets
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss, MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from transformers import set_seed

    if len(sources) != len(targets) or not sources:
        raise ValueError(f"need aligned training pairs, got {len(sources)} sources and {len(targets)} targets")
    set_seed(config.seed)
    model = load_as_sentence_transformer(config.model, config.max_length, config.device)
    anchors, positives = (sources, targets) if config.anchor == "source" else (targets, sources)
    train = datasets.Dataset.from_dict({"anchor": list(anchors), "positive": list(positives)})
    if config.hard_negatives:
        from sentence_transformers.util import mine_hard_negatives

        train = mine_hard_negatives(train, model, num_negatives=1, sampling_strategy="top",
                                    use_faiss=False, batch_size=config.batch_size, output_format="triplet")
    loss: Any = MultipleNegativesRankingLoss(model)
    if config.degenerate_negatives:
        train = {"pairs": with_degenerate_negatives(train, config.anchor == "source", targets, config.seed),
                 "floor": floor_ranking(sources, targets, config.seed)}
        loss = {"pairs": loss, "floor": CoSENTLoss(model)}
    if evaluator is None and dev_sources:
        from .audit import AuditEvaluator

        evaluator = AuditEvaluator(dev_sources, dev_targets, config.target_language, name="dev",
                                   batch_size=config.batch_size)
    select = evaluator is not None and config.select_best
    out = Path(config.output_dir)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the total steps (transformers v5)
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if evaluator else "no",
        eval_steps=config.eval_steps if evaluator else None,
        load_best_model_at_end=select,
        metric_for_best_model=f"eval_{evaluator.primary_metric}" if select else None,
        greater_is_better=evaluator.greater_is_better if select else None,
        logging_steps=max(1, min(50, config.eval_steps)),
        report_to="none",
        use_cpu=config.device == "cpu",
        disable_tqdm=False,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train, loss=loss, evaluator=evaluator
    )
    trainer.train()
    final = out / "final"
    model.save(str(final))
    logger.info("saved the trained encoder to %s", final)
    if evaluator is not None:
        _record_selection(trainer, evaluator, model, out, select)
    return final


def with_degenerate_negatives(train: Any, anchor_is_source: bool, targets: Sequence[str], seed: int) -> Any:
    """``train`` with a last column of degenerate target-language strings, one per row (a hard negative).

    Each pair's string is built from the training targets (``degenerate.degenerate_negatives``) and found
    by the pair's target, since mining may have reordered the rows.
    """
    from .degenerate import degenerate_negatives

    negatives = dict(zip(targets, degenerate_negatives(targets, seed), strict=True))
    target_column = "positive" if anchor_is_source else "anchor"
    column = [negatives[text] for text in train[target_column]]
    return train.add_column("negative_degenerate" if "negative" in train.column_names else "negative", column)


def floor_ranking(sources: Sequence[str], targets: Sequence[str], seed: int) -> Any:
    """Scored pairs for CoSENT: a true pair (1) above a target and its own units shuffled (0.75), above a target
    and an unrelated target (0.5), above a target and a degenerate string built from the targets (0): what the
    audit's shuffle sensitivity, floor and probes check (CoSENT reads only the order of the scores)."""
    import random

    import datasets

    from ..text import text_units
    from .degenerate import degenerate_negatives, join_units

    rng = random.Random(seed)
    negatives = degenerate_negatives(targets, seed + 1)
    rows: dict[str, list[Any]] = {"sentence1": [], "sentence2": [], "score": []}

    def add(a: str, b: str, score: float) -> None:
        rows["sentence1"].append(a)
        rows["sentence2"].append(b)
        rows["score"].append(score)

    for i, (source, target) in enumerate(zip(sources, targets, strict=True)):
        add(source, target, 1.0)
        others = [j for j in (rng.randrange(len(targets)) for _ in range(4)) if targets[j] != target]
        if others:
            add(target, targets[others[0]], 0.5)
        add(target, negatives[i], 0.0)
        units = text_units(target)
        if len(set(units)) > 1:  # a mean-pooled encoder barely sees order unless it is taught to
            shuffled = units[:]
            while shuffled == units:
                rng.shuffle(shuffled)
            add(target, join_units(shuffled, target), 0.75)
    return datasets.Dataset.from_dict(rows)


def _record_selection(trainer: Any, evaluator: Any, model: Any, out: Path, select: bool) -> None:
    """selection.json (which checkpoint, by which metric, every evaluation) and, for the audit, its report."""
    evals = [{k: v for k, v in e.items() if k == "step" or k.startswith("eval_")}
             for e in trainer.state.log_history if any(k.startswith("eval_") for k in e)]
    final_metrics = evaluator(model)
    record = {"metric": evaluator.primary_metric, "selected_best": select,
              "best_checkpoint": trainer.state.best_model_checkpoint, "best_metric": trainer.state.best_metric,
              "final_metrics": final_metrics, "evaluations": evals}
    (out / "selection.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    logger.info("final model: %s = %.4f (best checkpoint %s)", evaluator.primary_metric,
                final_metrics[evaluator.primary_metric], trainer.state.best_model_checkpoint)
    audit = getattr(evaluator, "last_audit", None)
    if audit is not None:
        from .audit import write_reports

        write_reports({"final": audit}, out / "dev_audit", title="Dev audit of the selected encoder")
