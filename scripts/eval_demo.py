"""`make eval-demo`: evaluate two tiny CPU checkpoints end to end and write the comparison report.

The checkpoints are a tiny Qwen3 built from a config (tokenizer trained on the data),
briefly trained as a language model on Chinese and Tibetan text ("base"), and a copy
further fine-tuned on zh->bo translation chats ("sft"), standing in for a base model
and its supervised fine-tune. Both are evaluated on
the zh->bo news test pairs (BLEU, chrF++, ROUGE-L, embedding similarity, language
consistency, bootstrap intervals) and on CMRC 2018 questions (EM, F1), and the
fine-tune's drift from the base is measured on CMRC passages (out of domain). Output:
outputs/eval_demo/report.{json,md}, PNGs and each system's generations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "eval_demo")
    ap.add_argument("--mt-rows", type=int, default=40, help="news pairs from the dev+test splits")
    ap.add_argument("--cmrc-questions", type=int, default=24)
    ap.add_argument("--drift-passages", type=int, default=24)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--encoder", default=None,
                    help="encoder for the embedding-similarity column (default: the packaged English MiniLM)")
    ap.add_argument("--judge-url", help="OpenAI-compatible endpoint for the pairwise judge (optional)")
    ap.add_argument("--judge-model", default="judge")
    ap.add_argument("--bootstrap", type=int, default=500)
    ap.add_argument("--base-steps", type=int, default=300)
    ap.add_argument("--sft-steps", type=int, default=200)
    args = ap.parse_args(argv)
    if args.encoder is None:
        from tiny_models import packaged_minilm_path

        args.encoder = packaged_minilm_path()
    news, cmrc_file = args.data_dir / "bo_zh_news.jsonl", args.data_dir / "cmrc2018_dev_sample.jsonl"
    if not news.exists() or not cmrc_file.exists():
        print(f"skipped: {news} or {cmrc_file} is absent; this demo needs ../shared/data beside the project",
              file=sys.stderr)
        return 0

    from data_tools import BuildConfig, build
    from semantic_reward.evaluation.drift import drift_summary, token_drift
    from semantic_reward.evaluation.evaluate import cmrc_metrics, cmrc_prompts, task_metrics
    from semantic_reward.evaluation.generate import generate, write_generations
    from semantic_reward.evaluation.metrics import bleu, paired_bootstrap
    from semantic_reward.evaluation.report import write_report
    from tiny_models import build_tiny_policy, train_causal_lm

    start = time.perf_counter()
    result = build(BuildConfig.from_mapping({"direction": "zh-bo", "input": {"paths": [str(news)]}}), progress=False)
    mt_rows = (result.rl_rows("test") + result.rl_rows("dev"))[: args.mt_rows]
    with cmrc_file.open(encoding="utf-8") as fh:
        cmrc = [json.loads(line) for line in fh]
    questions = cmrc[: args.cmrc_questions]
    contexts = list(dict.fromkeys(r["context"] for r in cmrc))
    passages = contexts[: args.drift_passages]  # held out: never seen in training below

    models = args.out / "models"
    train_pairs = result.splits["cold_start"] + result.splits["rl"]
    general = contexts[args.drift_passages:] + [p.target for p in train_pairs] + [p.source for p in train_pairs]
    init = build_tiny_policy(general, models / "init")
    base = train_causal_lm(init, general, models / "base", steps=args.base_steps)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    chats = [tokenizer.apply_chat_template(row["messages"], tokenize=False) for row in result.sft_rows("rl", train_pairs)]
    tuned = train_causal_lm(base, chats, models / "sft", steps=args.sft_steps, max_length=192)
    systems = {"base": str(base), "sft": str(tuned)}
    print(f"built tiny checkpoints in {time.perf_counter() - start:.1f} s; evaluating {len(mt_rows)} MT rows, "
          f"{len(questions)} CMRC questions, drift on {len(passages)} passages", flush=True)

    report, drift_arrays, outputs, timings = {}, {}, {}, {}
    refs = [r["reward_model"]["ground_truth"] for r in mt_rows]
    for name, path in systems.items():
        t0 = time.perf_counter()
        hyps = generate(path, [r["prompt"] for r in mt_rows], backend="auto", batch_size=8,
                        max_new_tokens=args.max_new_tokens)
        write_generations([{"id": r["extra_info"]["id"], "source": r["extra_info"]["source"], "reference": ref}
                           for r, ref in zip(mt_rows, refs, strict=True)], hyps, args.out / f"generations_{name}.jsonl")
        metrics = task_metrics(hyps, refs, "bo", encoder=args.encoder, bootstrap=args.bootstrap)
        answers = generate(path, cmrc_prompts(questions), backend="auto", batch_size=8, max_new_tokens=16)
        metrics.update(cmrc_metrics(answers, questions))
        drift = token_drift(str(base), path, tokenizer, passages, max_length=512)
        drift_arrays[name] = drift["nll_increase"]
        metrics.update(drift_summary(drift))
        report[name] = metrics
        outputs[name] = hyps
        timings[name] = time.perf_counter() - t0
        print(f"{name}: BLEU {metrics['bleu']:.4f}, chrF++ {metrics['chrf']:.4f}, ROUGE-L {metrics['rouge_l']:.4f}, "
              f"CMRC F1 {metrics['cmrc_f1']:.2f}, NLL increase {metrics['nll_increase_mean']:+.3f} "
              f"({timings[name]:.1f} s)", flush=True)

    comparison = paired_bootstrap(lambda h, r: bleu(h, r, "bo"), outputs["base"], outputs["sft"], refs,
                                  n=args.bootstrap)
    report["sft"]["paired_bleu_vs_base"] = comparison
    if args.judge_url:
        from semantic_reward.evaluation.judge import JudgeConfig, judge_pairwise

        items = [{"source": r["extra_info"]["source"], "reference": ref, "x": a, "y": b}
                 for r, ref, a, b in zip(mt_rows, refs, outputs["sft"], outputs["base"], strict=True)]
        report["sft"]["judge_vs_base"] = judge_pairwise(JudgeConfig(args.judge_url, args.judge_model), items,
                                                        "sft", "base")
    files = write_report(report, args.out, drift={k: v for k, v in drift_arrays.items() if k != "base"},
                         task_metric="bleu", title="Evaluation demo: tiny base vs its SFT fine-tune")
    print(f"wrote {', '.join(files.values())} in {time.perf_counter() - start:.0f} s total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
