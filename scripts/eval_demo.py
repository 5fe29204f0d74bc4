"""`make eval-demo`: two tiny CPU checkpoints through `python -m semantic_reward.evaluation run`.

Builds a tiny Qwen3 (tokenizer trained on the data), briefly trained as a language model on
Chinese and Tibetan text ("base"), and a copy further fine-tuned on zh->bo translation chats
("sft"), then hands both to the evaluation command (``run_evaluation``) with a config it
writes next to the report: zh->bo news test pairs (BLEU, chrF++, ROUGE-L, embedding
similarity, language consistency, sacrebleu intervals and paired tests), CMRC 2018
questions (EM, F1), and the fine-tune's drift from the base on the CMRC passages, which
the base never saw. Output: outputs/eval_demo/report/ (report.{json,md}, PNGs, generations).

The checkpoints are built with the demo helpers in scripts/tiny_models.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "eval_demo")
    ap.add_argument("--mt-rows", type=int, default=40, help="news pairs from the test+dev splits")
    ap.add_argument("--cmrc-questions", type=int, default=24)
    ap.add_argument("--drift-passages", type=int, default=24)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--encoder", default=None,
                    help="encoder for the embedding-similarity column (the demo's default: the packaged English "
                         "MiniLM, which cannot read Tibetan; pass your trained encoder for a meaningful column)")
    ap.add_argument("--bootstrap", type=int, default=500)
    ap.add_argument("--base-steps", type=int, default=300)
    ap.add_argument("--sft-steps", type=int, default=200)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("sacrebleu").setLevel(logging.WARNING)
    if args.encoder is None:
        from tiny_models import packaged_minilm_path

        args.encoder = packaged_minilm_path()
    news, cmrc_file = args.data_dir / "bo_zh_news.jsonl", args.data_dir / "cmrc2018_dev_sample.jsonl"
    if not news.exists() or not cmrc_file.exists():
        print(f"skipped: {news} or {cmrc_file} is absent; this demo needs ../shared/data beside the project",
              file=sys.stderr)
        return 0

    from transformers import AutoTokenizer

    from data_tools import BuildConfig, build
    from semantic_reward.config import build_dataclass
    from semantic_reward.evaluation.run import run_evaluation
    from semantic_reward.evaluation.run_config import WHAT, EvalRunConfig
    from tiny_models import build_tiny_policy, train_causal_lm

    start = time.perf_counter()
    result = build(BuildConfig.from_mapping({"direction": "zh-bo", "input": {"paths": [str(news)]}}), progress=False)
    mt_rows = (result.rl_rows("test") + result.rl_rows("dev"))[: args.mt_rows]
    with cmrc_file.open(encoding="utf-8") as fh:
        cmrc = [json.loads(line) for line in fh]
    questions = cmrc[: args.cmrc_questions]
    held_out = list(dict.fromkeys(q["context"] for q in questions))  # CMRC and drift passages: never trained on
    contexts = [c for c in dict.fromkeys(r["context"] for r in cmrc) if c not in held_out]

    models = args.out / "models"
    train_pairs = result.splits["cold_start"] + result.splits["rl"]
    general = contexts + [p.target for p in train_pairs] + [p.source for p in train_pairs]
    base = train_causal_lm(build_tiny_policy(general, models / "init"), general, models / "base",
                           steps=args.base_steps)
    tokenizer = AutoTokenizer.from_pretrained(base)
    chats = [tokenizer.apply_chat_template(row["messages"], tokenize=False)
             for row in result.sft_rows("rl", train_pairs)]
    tuned = train_causal_lm(base, chats, models / "sft", steps=args.sft_steps, max_length=192)
    logging.info("built tiny checkpoints in %.1f s", time.perf_counter() - start)

    inputs = args.out / "inputs"
    settings = {
        "output_dir": str(args.out / "report"),
        "test_file": _write_jsonl(inputs / "test.jsonl", [
            {"id": r["extra_info"]["id"], "source": r["extra_info"]["source"],
             "reference": r["reward_model"]["ground_truth"], "prompt": r["prompt"]} for r in mt_rows]),
        "source_language": "zh", "target_language": "bo",
        "encoder": args.encoder,
        "cmrc_file": _write_jsonl(inputs / "cmrc.jsonl", questions),
        "drift_max_texts": args.drift_passages,
        "base_model": str(base),
        "generation": {"max_new_tokens": args.max_new_tokens, "cmrc_max_new_tokens": 16, "batch_size": 8,
                       "backend": "auto"},
        "n_bootstrap": args.bootstrap,
        "paired_reference": "base",
        "systems": {"base": {"model": str(base)}, "sft": {"model": str(tuned)}},
        "title": "Evaluation demo: tiny base vs its SFT fine-tune",
    }
    (args.out / "eval.json").write_text(json.dumps(settings, indent=2, ensure_ascii=False), encoding="utf-8")
    report = run_evaluation(build_dataclass(EvalRunConfig, settings, what=WHAT))
    print((Path(settings["output_dir"]) / "report.md").read_text(encoding="utf-8"))
    print(f"wrote {settings['output_dir']} ({len(report['systems'])} systems) in {time.perf_counter() - start:.0f} s; "
          f"the same run: python -m semantic_reward.evaluation run {args.out / 'eval.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
