"""`make encoder-demo`: build, train and audit a tiny Tibetan-Chinese reward encoder on this CPU.

1. splits real pairs from ../shared/data with data_tools (classical verse, Traditional
   Chinese converted; modern news), training on cold_start + rl, holding out dev + test;
2. builds a tiny BERT (tokenizer trained on the training text, model from a config);
3. fine-tunes it contrastively with sentence-transformers' trainer (MNRL, Chinese anchor), scoring
   checkpoints on the dev pairs with the audit itself (AuditEvaluator) and keeping the best;
4. audits the trained encoder, its untrained copy and the packaged English MiniLM on the
   held-out pairs: outputs/encoder_demo/audit.{json,md} and similarity_histograms.png.
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
DATA = ROOT.parent / "shared" / "data"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "encoder_demo")
    ap.add_argument("--epochs", type=float, default=12)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    files = [args.data_dir / "bo_zh_classical.jsonl", args.data_dir / "bo_zh_news.jsonl"]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        print(f"skipped: {', '.join(missing)} absent; this demo needs ../shared/data beside the project",
              file=sys.stderr)
        return 0

    from sentence_transformers import SentenceTransformer

    from semantic_reward.encoder_tools.__main__ import pairs_from_corpus
    from semantic_reward.encoder_tools.audit import audit_encoder, verdict_line, write_reports
    from tiny_models import build_tiny_encoder, packaged_minilm_path
    from semantic_reward.encoder_tools.train import EncoderTrainConfig, load_as_sentence_transformer, train_encoder

    start = time.perf_counter()
    train_src, train_tgt, held_src, held_tgt, dev_src, dev_tgt = [], [], [], [], [], []
    for path in files:
        t2s = "classical" in path.name
        s, t = pairs_from_corpus([str(path)], "zh-bo", ("cold_start", "rl"), t2s=t2s)
        train_src += s
        train_tgt += t
        s, t = pairs_from_corpus([str(path)], "zh-bo", ("dev", "test"), t2s=t2s)
        held_src += s
        held_tgt += t
        s, t = pairs_from_corpus([str(path)], "zh-bo", ("dev",), t2s=t2s)
        dev_src += s
        dev_tgt += t
    print(f"{len(train_src)} training pairs, {len(held_src)} held-out pairs (dev + test)", flush=True)

    base = build_tiny_encoder(train_src + train_tgt, args.out / "tiny_untrained", seed=args.seed)
    config = EncoderTrainConfig(model=str(base), output_dir=str(args.out / "tiny_trained"), anchor="source",
                                epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                                seed=args.seed, save_steps=100, eval_steps=100, device="cpu")
    trained = train_encoder(config, train_src, train_tgt, dev_src, dev_tgt)
    selection = json.loads((args.out / "tiny_trained" / "selection.json").read_text(encoding="utf-8"))
    print(f"trained in {time.perf_counter() - start:.0f} s; kept {selection['best_checkpoint']} "
          f"({selection['metric']} = {selection['best_metric']:.3f})", flush=True)

    encoders = {
        "tiny-trained": SentenceTransformer(str(trained), device="cpu"),
        "tiny-untrained": load_as_sentence_transformer(str(base), device="cpu"),
        "minilm-english": SentenceTransformer(packaged_minilm_path(), device="cpu"),
    }
    results = {name: audit_encoder(model, held_src, held_tgt, "tibetan") for name, model in encoders.items()}
    for name, metrics in results.items():
        print(verdict_line(name, metrics))
    written = write_reports(results, args.out, title="Reward-encoder audit (held-out zh-bo pairs)")
    print(f"wrote {', '.join(written.values())} in {time.perf_counter() - start:.0f} s total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
