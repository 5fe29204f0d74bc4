"""``RawCorpusDataset``: verl's ``data.custom_cls`` that reads raw corpora directly.

A recipe points ``data.train_files`` at raw JSONL/JSON/TSV/CSV/text files and sets

    data:
      custom_cls: {path: pkg://data_tools.verl_dataset, name: RawCorpusDataset}
      raw_corpus:                 # the same settings as the command line (BuildConfig)
        task: mt
        direction: zh-bo
        split: rl                 # which split of the corpus this dataset serves
        splits: {seed: 0}

and verl gets exactly the rows ``python -m data_tools`` would have written to
``rl/<split>.parquet`` (same readers, normalisation, filters, splits and prompts),
without a preprocessing step. ``input.paths`` comes from ``data_files``.
"""

from __future__ import annotations

from typing import Any

import datasets
from omegaconf import OmegaConf
from verl.utils.dataset.rl_dataset import RLHFDataset

from .config import WHAT, BuildConfig, ConfigError
from .pipeline import build
from .splits import SPLITS

__all__ = ["RawCorpusDataset", "build_config_from_verl"]


def build_config_from_verl(data_files: list[str], data_config: Any) -> tuple[BuildConfig, str]:
    """The BuildConfig and split name from verl's ``data`` config node (task defaults as on the command line)."""
    raw = data_config.get("raw_corpus") if hasattr(data_config, "get") else None
    raw = OmegaConf.to_container(raw, resolve=True) if OmegaConf.is_config(raw) else dict(raw or {})
    split = str(raw.pop("split", "rl"))
    if split not in SPLITS and not split.startswith("few_shot_"):
        raise ConfigError.at("raw_corpus.split", f"{split!r} is not one of {SPLITS} or few_shot_K", WHAT)
    inputs = dict(raw.pop("input", {}) or {})
    inputs["paths"] = [str(f) for f in data_files]
    return BuildConfig.from_mapping({**raw, "input": inputs}, prefix="raw_corpus."), split


class RawCorpusDataset(RLHFDataset):
    """RLHFDataset whose rows come from the data_tools pipeline instead of parquet."""

    def _read_files_and_tokenize(self):
        config, split = build_config_from_verl(list(self.data_files), self.config)
        # verl's tokenizer is the policy's: the source budget (tokens.source_tokens) is counted in it
        result = build(config, progress=False, tokenizer=self.tokenizer)
        if split.startswith("few_shot_"):
            size = int(split.split("_")[-1])
            if size not in result.few_shot:
                raise ConfigError.at("raw_corpus.split", f"{split} needs splits.few_shot: [{size}]", WHAT)
            rows = result.rl_rows("rl", result.few_shot[size])
        else:
            rows = result.rl_rows(split)
        if not rows:
            raise ConfigError(f"split {split!r} of {config.input.paths} is empty after filtering: {result.stats['filtered']}")
        self.build_stats = result.stats
        self.dataframe = datasets.Dataset.from_list(rows)
        if self.max_samples > 0 and self.max_samples < len(self.dataframe):
            self.dataframe = self.dataframe.select(range(self.max_samples))
        self.dataframe = self.maybe_filter_out_long_prompts(self.dataframe)
