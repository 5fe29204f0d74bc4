"""Responses per second for one GRPO-shaped step, three ways, side by side in one run.

1. naive:   what a user writes first: ``model.encode([response, reference])`` per call;
2. service: this package's path driven as verl drives it: every trajectory is its
            own concurrent ``score`` call into the embedding service (fresh cache);
3. limit:   one encode call over the unique non-empty texts of the step.

All three use the same encoder, device and dtype, and the naive and service rewards
are checked to agree. Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpo_step import DATASETS, DEFAULT_DATA, build_step, load_pairs  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one step of 128 prompts x 8, one repeat")
    ap.add_argument("--prompts", type=int, default=None, help="prompts per step (default 128)")
    ap.add_argument("--n", type=int, default=8, help="GRPO group size")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default 1 quick, 3 full)")
    ap.add_argument("--dataset", default="classical", choices=sorted(DATASETS))
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--encoder", default=None, help="default: the packaged English MiniLM")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--batch-size", type=int, default=32, help="encoder mini-batch inside one encode call")
    ap.add_argument("--ray", action="store_true", help="also measure through the shared Ray actor")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.encoder is None:
        from tiny_models import packaged_minilm_path

        args.encoder = packaged_minilm_path()
    args.prompts = args.prompts or 128
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def naive_step(model, samples, config, scripts):
    """The per-call encode a user writes first, with the same reward arithmetic."""
    from semantic_reward.reward_math import reward_components
    from semantic_reward.text import normalize, strip_reasoning, text_units

    scores = []
    for s in samples:
        # the same text the scorer sees: reasoning block cut off, both sides normalised
        response, reference = normalize(strip_reasoning(s.response)[0]), normalize(s.reference)
        emb = model.encode([response, reference], normalize_embeddings=True, show_progress_bar=False)
        sim = float(emb[0] @ emb[1])
        res = reward_components(response, scripts=scripts, config=config, sim_reference=sim,
                                length_basis=len(text_units(reference)))
        scores.append(res["score"])
    return scores, len(samples)


def service_step(config, samples, service):
    from semantic_reward.scorer import SemanticScorer

    scorer = SemanticScorer(config, service)

    async def run():
        return await asyncio.gather(*(scorer.score(s.response, reference=s.reference) for s in samples))

    results = asyncio.run(run())
    return [r["score"] for r in results]


def limit_step(model, samples, batch_size):
    from semantic_reward.reward_math import is_empty_output

    unique = list(dict.fromkeys([s.reference for s in samples] +
                                [s.response for s in samples if not is_empty_output(s.response)]))
    model.encode(unique, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    return len(unique)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from sentence_transformers import SentenceTransformer

    from semantic_reward.config import SemanticRewardConfig, resolve_model_path
    from semantic_reward.service import LocalEmbeddingService, RayEmbeddingService

    settings = {
        "language": "tibetan",
        "encoder": {"model": args.encoder, "device": args.device, "dtype": args.dtype, "batch_size": args.batch_size},
        "service": {"backend": "local"},
    }
    config = SemanticRewardConfig.from_mapping(settings)
    scripts = config.language_registry().get(config.language).scripts
    pairs = load_pairs(args.dataset, args.data_dir)
    samples = build_step(pairs, args.prompts, args.n, seed=args.seed)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"step: {len(samples)} responses ({args.prompts} prompts x n={args.n}) from {DATASETS[args.dataset][0]}; "
          f"encoder {args.encoder} on {device} ({args.dtype}); torch threads {torch.get_num_threads()}", flush=True)

    model = SentenceTransformer(resolve_model_path(args.encoder), device=device,
                                model_kwargs={"dtype": getattr(torch, args.dtype)})
    model.max_seq_length = min(config.encoder.max_length, model.max_seq_length or config.encoder.max_length)
    model.encode([s.response for s in samples[:64]], show_progress_bar=False)  # warm-up

    rows: dict[str, dict] = {"naive": [], "service": [], "limit": []}
    extra: dict[str, object] = {}
    naive_scores = service_scores = None
    for rep in range(args.repeats):
        # Interleaved so that machine noise hits every variant alike.
        t, (naive_scores, calls) = timed(lambda: naive_step(model, samples, config, scripts))
        rows["naive"].append({"seconds": t, "encode_calls": calls, "texts_encoded": 2 * calls})
        service = LocalEmbeddingService(config.encoder, config.service)
        service.embed_sync(["warm-up"])
        t, service_scores = timed(lambda: service_step(config, samples, service))
        st = service.stats()
        rows["service"].append({"seconds": t, "encode_calls": st["encode_calls"] - 1,
                                "texts_encoded": st["encoded_texts"] - 1, "requests": st["requests"] - 1,
                                "largest_flush": st["largest_flush"]})
        service.close()
        t, unique = timed(lambda: limit_step(model, samples, args.batch_size))
        rows["limit"].append({"seconds": t, "encode_calls": 1, "texts_encoded": unique})
        print(f"  repeat {rep + 1}/{args.repeats}: naive {rows['naive'][-1]['seconds']:.2f}s, "
              f"service {rows['service'][-1]['seconds']:.2f}s, limit {rows['limit'][-1]['seconds']:.2f}s", flush=True)

    if args.ray:
        import ray

        cores = os.cpu_count() or 1
        ray.init(num_cpus=cores + 2, include_dashboard=False, log_to_driver=False)
        # The actor gets every core: Ray limits an actor's torch threads to its num_cpus.
        ray_cfg = SemanticRewardConfig.from_mapping(
            {**settings, "service": {"backend": "ray", "actor_name": "bench_embedding", "num_cpus": cores}}
        )
        client = RayEmbeddingService(ray_cfg.encoder, ray_cfg.service)
        client.embed_sync(["warm-up"])
        t, _ = timed(lambda: service_step(ray_cfg, samples, client))
        rows["service_ray"] = [{"seconds": t, **{k: client.stats()[k] for k in ("encode_calls", "requests")}}]
        ray.shutdown()

    diff = max(abs(a - b) for a, b in zip(naive_scores, service_scores, strict=True))
    n = len(samples)
    summary = {}
    for name, reps in rows.items():
        secs = statistics.median(r["seconds"] for r in reps)
        summary[name] = {"seconds": secs, "rps": n / secs, **{k: v for k, v in reps[-1].items() if k != "seconds"}}
    naive_rps, limit_rps = summary["naive"]["rps"], summary["limit"]["rps"]

    print(f"\n{'variant':<12}{'seconds':>10}{'resp/s':>10}{'encode calls':>14}{'texts enc.':>12}"
          f"{'x naive':>9}{'x limit':>9}")
    for name, row in summary.items():
        print(f"{name:<12}{row['seconds']:>10.2f}{row['rps']:>10.1f}{row['encode_calls']:>14}"
              f"{row.get('texts_encoded', ''):>12}{row['rps'] / naive_rps:>9.2f}{row['rps'] / limit_rps:>9.2f}")
    print(f"\nmax |naive - service| reward difference: {diff:.2e}")

    result = {
        "naive_rps": naive_rps,
        "service_rps": summary["service"]["rps"],
        "limit_rps": limit_rps,
        "service_over_naive": summary["service"]["rps"] / naive_rps,
        "service_over_limit": summary["service"]["rps"] / limit_rps,
        "max_reward_difference": diff,
        "responses": n,
        "variants": summary,
        "runs": rows,
        "settings": {**vars(args), "json": str(args.json), "data_dir": str(args.data_dir), "device": device,
                     "torch_threads": torch.get_num_threads(), "machine": platform.platform(),
                     "processor": platform.processor()},
        **extra,
    }
    if "service_ray" in summary:
        result["service_ray_rps"] = summary["service_ray"]["rps"]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
