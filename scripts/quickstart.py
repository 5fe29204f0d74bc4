"""`make quickstart`: the paper's MT experiment (recipes/experiments/mt_zh_bo.yaml) at the cpu-tiny profile.

1. builds the tiny base policy (a Qwen3-shaped model from a config, tokenizer trained on the corpus,
   a short language-model pass over the monolingual text so the "base" model has seen both
   languages) and the tiny untrained reward encoder (a small BERT, tokenizer trained on the corpus);
2. runs `python -m semantic_reward.experiment run recipes/experiments/mt_zh_bo.yaml --profile cpu-tiny`:
   data_tools -> encoder training and audit -> cold-start SFT (verl's SFT trainer, LoRA) -> GRPO with
   the trained encoder as the reward (verl's main_ppo, LoRA) and strong SFT -> evaluation -> report;
3. prints the report table. Outputs: outputs/quickstart/stages.json and report.json (+ report.md, PNGs).
Rerunning skips finished stages; --force STAGE redoes one and everything after it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
EXPERIMENT = ROOT / "recipes" / "experiments" / "mt_zh_bo.yaml"


def _tiny_builders():
    """The demo builders (scripts/tiny_models.py): they stay outside the product package."""
    from tiny_models import build_tiny_encoder, build_tiny_policy, train_causal_lm

    return build_tiny_policy, train_causal_lm, build_tiny_encoder


def prepare(corpus: Path, prep: Path, lm_steps: int) -> tuple[Path, Path]:
    """Tiny base policy and tiny untrained encoder, built once (kept between runs) from the corpus rows outside
    the experiment's test split; each folder's training_data.json lists those rows (a stale one is rebuilt)."""
    from data_tools.manifest import MODEL_MANIFEST, manifest_part, pair_rows, same_rows, write_manifest
    from semantic_reward.experiment.splits import rows_outside_test

    build_tiny_policy, train_causal_lm, build_tiny_encoder = _tiny_builders()
    # the data stage's own split code and settings: the test rows never reach a tokenizer or the LM pass
    rows, where = rows_outside_test(EXPERIMENT, "cpu-tiny", [f"inputs.corpus={corpus}"])
    texts = [p.target for p in rows] + [p.source for p in rows]
    parts = [manifest_part("train", pair_rows(rows), **where, note="tokenizer and language-model pass")]
    policy, encoder = prep / "policy", prep / "encoder_untrained"
    if not (policy / "config.json").is_file() or not same_rows(policy / MODEL_MANIFEST, parts):
        init = build_tiny_policy(texts, prep / "policy_init", vocab_size=2000, hidden_size=64, num_layers=2,
                                 num_heads=4)
        train_causal_lm(init, texts, policy, steps=lm_steps, max_length=96)
        write_manifest(policy / MODEL_MANIFEST, parts, what="tiny base policy (scripts/quickstart.py prepare)")
    if not (encoder / "config.json").is_file() or not same_rows(encoder / MODEL_MANIFEST, parts):
        build_tiny_encoder(texts, encoder)
        write_manifest(encoder / MODEL_MANIFEST, [{**parts[0], "note": "tokenizer"}],
                       what="tiny untrained reward encoder (scripts/quickstart.py prepare)")
    return policy, encoder


def print_table(report: dict) -> None:
    systems = report.get("systems", {})
    cols = ["bleu", "chrf", "rouge_l", "semantic_similarity", "language_consistency", "cmrc_em", "cmrc_f1",
            "nll_increase_mean", "nll_increase_p90", "kl_p90"]
    print("\n| system | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for name, metrics in systems.items():
        cells = [f"{metrics[c]:.3f}" if isinstance(metrics.get(c), (int, float)) else "-" for c in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_reward_curve(stages_file: Path, report: dict) -> None:
    """GRPO's per-step reward and semantic term, and whether the curve rose (the report's fitted line)."""
    from semantic_reward.evaluation.trend import format_trend

    records = {r["name"]: r for r in json.loads(stages_file.read_text(encoding="utf-8"))}
    grpo = records.get("grpo", {})
    steps = grpo.get("steps") or []
    if not steps:
        return
    tau = grpo.get("tau")
    print(f"\nGRPO reward per step (tau {tau['value']:.3f}: {tau['label']})" if tau else "\nGRPO reward per step")
    sim_key = next((k for k in steps[0] if k.endswith("/semantic_reward/mean")), None)
    for s in steps:
        extra = f"  R_sim {s[sim_key]:.3f}" if sim_key else ""
        print(f"  step {s['step']:>3}: reward {s['reward_mean']:.3f}{extra}")
    trend = report.get("reward_trend")
    if trend:
        print("  " + format_trend(trend))
    for v in grpo.get("validation") or []:
        if v.get("score_mean") is not None:
            print(f"  validation at step {v['step']}: mean reward {v['score_mean']:.3f} on {v['rows']} dev prompts "
                  f"({v['file']})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "quickstart")
    ap.add_argument("--lm-steps", type=int, default=120, help="language-model steps that make the tiny base policy")
    ap.add_argument("--force", metavar="STAGE")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    corpus, cmrc = args.data_dir / "bo_zh_news.jsonl", args.data_dir / "cmrc2018_dev_sample.jsonl"
    if not corpus.exists():
        print(f"skipped: {corpus} is absent; the quickstart needs ../shared/data beside the project", file=sys.stderr)
        return 0
    for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                       "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "disabled"}.items():
        os.environ.setdefault(key, value)
    start = time.perf_counter()
    out = args.out.resolve()
    print("[prep] tiny base policy and tiny untrained reward encoder", flush=True)
    policy, encoder = prepare(corpus, out / "prep", args.lm_steps)
    print(f"[prep] done in {time.perf_counter() - start:.0f} s", flush=True)

    from semantic_reward.experiment.__main__ import main as experiment_main

    rc = experiment_main(["run", str(ROOT / "recipes" / "experiments" / "mt_zh_bo.yaml"), "--profile", "cpu-tiny",
                          "--runs-root", str(out.parent), "--run-name", out.name,
                          "--set", f"profile.model={policy}", "--set", f"profile.encoder.init={encoder}",
                          "--set", f"inputs.corpus={corpus}", "--set", f"inputs.encoder_corpus={corpus}",
                          "--set", f"inputs.cmrc={cmrc}", *sum((["--set", s] for s in args.sets), []),
                          *(["--force", args.force] if args.force else [])])
    if rc != 0:
        return rc
    report = out / "report.json"
    loaded = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
    if loaded:
        print_table(loaded)
    if (out / "stages.json").is_file():
        print_reward_curve(out / "stages.json", loaded)
    print(f"\nwrote {out / 'stages.json'} and {report} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
