"""Score real Tibetan/Chinese candidates through the reward (`make reward-table`).

Reads zh->bo pairs from ../shared/data, builds GRPO-style groups of candidate
outputs (correct, truncated, shuffled, another sentence, untranslated source,
mixed language, looping, empty), scores every one through the same async
``compute_score`` verl calls, concurrently, and prints the mean of each reward
component per candidate kind. Writes outputs/reward_table/reward_table.{json,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpo_step import CANDIDATE_KINDS, DATASETS, DEFAULT_DATA, ROOT, build_step, load_pairs  # noqa: E402

FOLLOW_UP = {"combine": "gated", "semantic_weight": 1.0,
             "length_penalty": {"weight": 0.20}, "repetition_penalty": {"weight": 0.05}}
"""The source-grounded follow-up's gated reward with its anti-hacking penalties, shown beside the paper's."""

COLUMNS = ("score", "gated_score", "semantic_similarity", "semantic_reward", "language_reward", "target_script_share",
           "length_penalty", "repetition_penalty")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--dataset", default="news", choices=["news", "classical"])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--encoder", default=None,
                    help="sentence-transformers model (hub name or path); default: the offline English MiniLM")
    ap.add_argument("--settings", type=json.loads, default={},
                    help='extra reward settings as JSON, e.g. \'{"combine": "gated", "semantic_weight": 1.0}\'')
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "reward_table")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


async def score_all(samples, settings):
    from semantic_reward.verl_adapter.compute_score import compute_score

    return await asyncio.gather(
        *(
            compute_score("bo_zh_news", s.response, s.reference, {"source": s.source}, **settings)
            for s in samples
        )
    )


def merge_settings(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge_settings(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def summarise(samples, results) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for kind in CANDIDATE_KINDS:
        rows = [r for s, r in zip(samples, results, strict=True) if s.kind == kind]
        if rows:
            table[kind] = {c: sum(r[c] for r in rows) / len(rows) for c in COLUMNS} | {"count": len(rows)}
    return table


def print_table(table: dict[str, dict[str, float]]) -> None:
    header = f"{'candidate':<12}" + "".join(f"{c[:13]:>14}" for c in COLUMNS)
    print(header)
    print("-" * len(header))
    for kind, row in table.items():
        print(f"{kind:<12}" + "".join(f"{row[c]:>14.3f}" for c in COLUMNS))


def plot(table: dict[str, dict[str, float]], path: Path, reward_max: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(table)
    gated = [table[k]["gated_score"] for k in kinds]
    sem = [table[k]["semantic_reward"] for k in kinds]
    lang = [table[k]["language_reward"] for k in kinds]
    total = [table[k]["score"] for k in kinds]
    fig, ax = plt.subplots(figsize=(9, 4))
    x = range(len(kinds))
    ax.bar([i - 0.3 for i in x], total, width=0.2, label="paper total (1.5 R_sim + R_lang)")
    ax.bar([i - 0.1 for i in x], gated, width=0.2, label="follow-up gated total")
    ax.bar([i + 0.1 for i in x], sem, width=0.2, label="R_sim")
    ax.bar([i + 0.3 for i in x], lang, width=0.2, label="R_lang")
    ax.set_xticks(list(x), kinds, rotation=20)
    ax.set_ylim(0, reward_max * 1.05)
    ax.set_ylabel("mean over candidates")
    ax.set_title("Semantic reward by candidate kind (zh->bo, real pairs)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    from semantic_reward.config import SemanticRewardConfig

    minilm = args.encoder is None
    if minilm:
        from tiny_models import packaged_minilm_path

        args.encoder = packaged_minilm_path()
    settings = {"language": "tibetan", "encoder": {"model": args.encoder}, "service": {"backend": "local"}}
    settings = merge_settings(settings, args.settings)
    config = SemanticRewardConfig.from_mapping(settings)  # fail fast on a bad setting

    pairs = load_pairs(args.dataset, args.data_dir)
    samples = build_step(pairs, args.prompts, len(CANDIDATE_KINDS), seed=args.seed)
    print(f"scoring {len(samples)} candidates for {args.prompts} zh->bo pairs from {args.data_dir / DATASETS[args.dataset][0]}"
          f" with encoder {args.encoder!r} ...", flush=True)
    if minilm:
        print("note: the packaged MiniLM is English-only (Tibetan becomes [UNK]); its similarities exercise the "
              "plumbing, not Tibetan meaning. R_lang below is meaningful; use a trained encoder for R_sim.")
    start = time.perf_counter()
    results = asyncio.run(score_all(samples, settings))
    seconds = time.perf_counter() - start
    from semantic_reward.verl_adapter.compute_score import get_scorer

    stats = get_scorer(settings).service.stats()  # the paper-reward pass alone
    gated = asyncio.run(score_all(samples, merge_settings(settings, FOLLOW_UP)))
    for res, other in zip(results, gated, strict=True):
        res["gated_score"] = other["score"]

    table = summarise(samples, results)
    print("\nmean per candidate kind; score = paper (1.5 R_sim + 1.0 R_lang), gated_score = follow-up "
          "(R_lang * max(R_sim - 0.20 p_len - 0.05 p_rep, 0))")
    print_table(table)
    print(f"\n{len(samples)} rewards in {seconds:.2f} s ({len(samples) / seconds:.0f}/s); "
          f"{stats['requests']} requests merged into {stats['encode_calls']} encode calls, "
          f"{stats['cache_hits']} reference-cache hits")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"settings": config.to_dict(), "seconds": seconds, "samples": len(samples),
              "service_stats": stats, "by_candidate": table}
    (args.out / "reward_table.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    plot(table, args.out / "reward_table.png", config.reward_range[1])
    print(f"wrote {args.out / 'reward_table.json'} and {args.out / 'reward_table.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
