"""A GRPO-shaped step built from real parallel data, shared by the quickstart and the benchmark.

Each prompt is one Chinese->Tibetan pair; its group holds ``n`` candidate outputs of
the kinds a policy produces during training (a correct answer, a truncated one, a
syllable-shuffled one, another sentence, the untranslated source, a mixed-language
one, a looping one, an empty one), so the reward sees the variety it sees in RL.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from semantic_reward.text import text_units

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"

DATASETS = {
    "news": ("bo_zh_news.jsonl", "zh", "bo"),
    "classical": ("bo_zh_classical.jsonl", "zh", "bo"),
    "titles": ("bo_title_generation.jsonl", "text", "title"),
}

CANDIDATE_KINDS = ("correct", "truncated", "shuffled", "other_row", "source_copy", "mixed", "looping", "empty")


@dataclass(frozen=True)
class Sample:
    prompt_index: int
    kind: str
    response: str
    reference: str
    source: str


def load_pairs(dataset: str, data_dir: Path) -> list[tuple[str, str]]:
    """(source, reference) pairs; exits with a clear message when the data is absent."""
    name, src_key, ref_key = DATASETS[dataset]
    path = data_dir / name
    if not path.exists():
        print(
            f"skipped: {path} is absent. This job reads the real Tibetan-Chinese samples in "
            f"../shared/data beside the project; pass --data-dir to point at another copy.",
            file=sys.stderr,
        )
        raise SystemExit(0)
    pairs = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            for key in (src_key, ref_key):
                if not isinstance(row.get(key), str):
                    raise SystemExit(f"{path}:{line_no}: field {key!r} is missing or not a string")
            if row[src_key].strip() and row[ref_key].strip():
                pairs.append((row[src_key], row[ref_key]))
    return pairs


def candidate(kind: str, ref: str, src: str, other: str, rng: random.Random) -> str:
    sylls = text_units(ref) or [ref]
    if kind == "correct":
        return ref
    if kind == "truncated":
        return "་".join(sylls[: max(1, len(sylls) // 2)]) + "།"
    if kind == "shuffled":
        shuffled = sylls[:]
        rng.shuffle(shuffled)
        return "་".join(shuffled) + "།"
    if kind == "other_row":
        return other
    if kind == "source_copy":
        return src
    if kind == "mixed":
        return "་".join(sylls[: max(1, len(sylls) // 2)]) + src[: max(1, len(src) // 2)]
    if kind == "looping":
        return "་".join((sylls[:3] or [ref]) * 8) + "།"
    if kind == "empty":
        return ""
    raise ValueError(f"unknown candidate kind {kind!r}")


def build_step(pairs: list[tuple[str, str]], prompts: int, n: int, seed: int = 0) -> list[Sample]:
    """``prompts`` x ``n`` samples; kinds cycle through CANDIDATE_KINDS in each group."""
    rng = random.Random(seed)
    chosen = rng.sample(range(len(pairs)), k=min(prompts, len(pairs)))
    samples = []
    for p, idx in enumerate(chosen):
        src, ref = pairs[idx]
        other = pairs[(idx + 1) % len(pairs)][1]
        for j in range(n):
            kind = CANDIDATE_KINDS[j % len(CANDIDATE_KINDS)]
            samples.append(Sample(p, kind, candidate(kind, ref, src, other, rng), ref, src))
    return samples
