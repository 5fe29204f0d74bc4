"""Contrastive training of the reward encoder on parallel pairs (the paper's recipe).

Any transformers encoder (CINO, XLM-R, LaBSE, ... by hub name or local path) is
wrapped as a SentenceTransformer (mean pooling) unless it already is one, then
fine-tuned with multiple-negatives ranking loss on (anchor, positive) pairs with
sentence-transformers' own trainer: in-batch negatives, optional mined hard
negatives, a bitext-retrieval dev evaluator, checkpoints and a fixed seed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EncoderTrainConfig", "load_as_sentence_transformer", "train_encoder"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderTrainConfig:
    """Defaults follow the paper: Chinese as the anchor, max length 128."""

    model: str
    output_dir: str
    anchor: str = "source"  # "source" or "target": which side of each pair is the anchor
    max_length: int = 128
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    seed: int = 42
    hard_negatives: bool = False
    save_steps: int = 500
    eval_steps: int = 500
    device: str | None = None

    def __post_init__(self) -> None:
        if self.anchor not in ("source", "target"):
            raise ValueError(f"encoder training setting 'anchor': {self.anchor!r} is not 'source' or 'target'")
        if self.batch_size < 2:
            raise ValueError("encoder training setting 'batch_size': in-batch negatives need a batch of at least 2")


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
) -> Path:
    """Fine-tune and save; returns the folder of the final model."""
    import datasets
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.evaluation import TranslationEvaluator
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
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
    evaluator = None
    if dev_sources:
        evaluator = TranslationEvaluator(list(dev_sources), list(dev_targets), name="dev",
                                         batch_size=config.batch_size, write_csv=False)
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
        logging_steps=max(1, min(50, config.eval_steps)),
        report_to="none",
        use_cpu=config.device == "cpu",
        disable_tqdm=False,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train, loss=MultipleNegativesRankingLoss(model), evaluator=evaluator
    )
    trainer.train()
    final = out / "final"
    model.save(str(final))
    logger.info("saved the trained encoder to %s", final)
    return final
