"""GPU check for a lent CUDA machine (torch, transformers, sentence-transformers, peft; no verl, vLLM or Ray).

What it measures, each part printed as a table and written to ``OUT/gpu_check.json``:

1. the embedding service on CUDA with an XLM-R-large-sized, randomly initialised encoder (24 layers,
   1024 wide, 250,002-token embedding table: ~560M parameters) in fp32, fp16 and bf16: one GRPO-shaped
   step (128 prompts x 8) three ways (naive per-call encode, the service, one encode call = the limit),
   peak GPU memory, and how far each dtype's rewards and similarities are from fp32's;
2. encoder placement for the cluster recipes: the same step's reward with the encoder on the machine's
   CPUs (the default, ENCODER_GPUS=0), on a GPU of its own, and on a GPU shared with a busy trainer
   (emulated by a process running bf16 matrix products on the same GPU); the reward's share of a step
   is printed for the step times given with --step-seconds (an assumption: no verl runs here);
3. a LoRA SFT step and the merge of the tiny policy on CUDA: loss finite and falling over a few steps,
   the merged model's logits against the adapter model's (experiment.handoff.merge_lora, PEFT);
4. the evaluation's engines in sequence: three systems, each through its own engine (vLLM when installed,
   else transformers) for two prompt sets, shut down, then drift from the base; the GPU memory PyTorch holds
   after each shutdown and each drift must be back at the level before the first engine opened.

The random encoder's similarities mean nothing semantically; they exercise the same arithmetic and the
same kernels as a trained XLM-R-large encoder. Run it through scripts/gpu_check.sh (at most 8 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

DTYPES = ("float32", "float16", "bfloat16")
# --smoke: the same code on the CPU with a small encoder, to check the script before spending GPU time
DEVICE = "cuda"
ENCODER_SIZE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096}


def sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build_large_encoder(texts: list[str], out: Path) -> Path:
    """An XLM-R-large-sized BERT (random weights) with a WordPiece vocabulary of the local text.

    The embedding table keeps XLM-R's 250,002 rows so memory matches; the tokenizer only uses the
    first few thousand ids, which changes nothing in the cost of a forward pass.
    """
    import torch
    from transformers import BertConfig, BertModel

    from tiny_models import build_tiny_encoder

    if (out / "config.json").is_file():
        return out
    build_tiny_encoder(texts, out, vocab_size=8000, hidden_size=64, num_layers=1, num_heads=4, max_length=256)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=250_002, max_position_embeddings=514, **ENCODER_SIZE)
    model = BertModel(config)
    model.save_pretrained(out)
    log(f"encoder: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters at {out}")
    return out


def reward_config(encoder: Path, device: str, dtype: str, batch_size: int, num_threads: int = 0):
    from semantic_reward.config import SemanticRewardConfig

    return SemanticRewardConfig.from_mapping({
        "language": "tibetan",
        "encoder": {"model": str(encoder), "device": device, "dtype": dtype, "batch_size": batch_size,
                    "max_length": 128, "num_threads": num_threads},
        "service": {"backend": "local"},
    })


def service_scores(config, samples) -> tuple[float, list[dict], dict]:
    """One step through the service, every trajectory its own concurrent call (as verl drives it)."""
    from semantic_reward.scorer import SemanticScorer
    from semantic_reward.service import LocalEmbeddingService

    service = LocalEmbeddingService(config.encoder, config.service)
    service.embed_sync(["warm-up"])
    scorer = SemanticScorer(config, service)

    async def run():
        return await asyncio.gather(*(scorer.score(s.response, reference=s.reference) for s in samples))

    start = time.perf_counter()
    results = asyncio.run(run())
    seconds = time.perf_counter() - start
    stats = service.stats()
    service.close()
    return seconds, results, stats


def measure_dtype(encoder: Path, dtype: str, samples, batch_size: int, repeats: int) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from bench_reward import limit_step, naive_step

    config = reward_config(encoder, DEVICE, dtype, batch_size)
    scripts = config.language_registry().get(config.language).scripts
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = SentenceTransformer(str(encoder), device=DEVICE, model_kwargs={"dtype": getattr(torch, dtype)})
    model.max_seq_length = config.encoder.max_length
    model.encode([s.response for s in samples[:64]], show_progress_bar=False)
    row: dict = {"dtype": dtype}
    naive, limit = [], []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        naive_step(model, samples, config, scripts)
        sync()
        naive.append(time.perf_counter() - t)
        t = time.perf_counter()
        limit_step(model, samples, batch_size)
        sync()
        limit.append(time.perf_counter() - t)
    del model
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    svc, results = [], None
    for _ in range(repeats):
        seconds, results, stats = service_scores(config, samples)
        svc.append(seconds)
    n = len(samples)
    row.update({
        "naive_s": statistics.median(naive), "service_s": statistics.median(svc), "limit_s": statistics.median(limit),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else float("nan"),
        "service_encode_calls": stats["encode_calls"] - 1, "responses": n,
        "scores": [r["score"] for r in results],
        "similarities": [r["semantic_similarity"] for r in results],
    })
    row["naive_rps"], row["service_rps"], row["limit_rps"] = (n / row["naive_s"], n / row["service_s"],
                                                             n / row["limit_s"])
    log(f"{dtype}: naive {row['naive_s']:.2f}s service {row['service_s']:.2f}s limit {row['limit_s']:.2f}s "
        f"peak {row['peak_gib']:.2f} GiB")
    return row


def _gpu_hog(stop, ready) -> None:
    """A busy trainer stand-in: bf16 matrix products on the same GPU until told to stop."""
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ready.set()
    while not stop.is_set():
        for _ in range(10):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()


def measure_placement(encoder: Path, samples, batch_size: int, cpu_threads: int) -> list[dict]:
    rows = []
    config = reward_config(encoder, DEVICE, "bfloat16", batch_size)
    seconds, _, _ = service_scores(config, samples)
    rows.append({"placement": "own GPU (bf16)", "reward_s": seconds})
    if DEVICE != "cuda":
        return rows
    ctx = mp.get_context("spawn")
    stop, ready = ctx.Event(), ctx.Event()
    hog = ctx.Process(target=_gpu_hog, args=(stop, ready), daemon=True)
    hog.start()
    ready.wait(120)
    try:
        seconds, _, _ = service_scores(config, samples)
        log(f"placement: shared GPU {seconds:.2f}s")
    finally:
        stop.set()
        hog.join(60)
    rows.append({"placement": "GPU shared with a busy trainer (bf16)", "reward_s": seconds})
    config = reward_config(encoder, "cpu", "float32", batch_size, cpu_threads)
    seconds, _, _ = service_scores(config, samples)
    rows.append({"placement": f"driver CPUs ({cpu_threads} threads, fp32)", "reward_s": seconds})
    log(f"placement: CPUs fp32 {seconds:.2f}s")
    config = reward_config(encoder, "cpu", "bfloat16", batch_size, cpu_threads)
    seconds, _, _ = service_scores(config, samples)
    rows.append({"placement": f"driver CPUs ({cpu_threads} threads, bf16)", "reward_s": seconds})
    return rows


def lora_sft_and_merge(texts: list[str], work: Path, steps: int) -> dict:
    """A few LoRA SFT steps of the tiny policy on CUDA (bf16 autocast), then the PEFT merge hand-off."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from semantic_reward.experiment.handoff import merge_lora
    from tiny_models import build_tiny_policy

    base_dir = build_tiny_policy(texts, work / "policy", vocab_size=2000, hidden_size=64, num_layers=2, num_heads=4)
    tok = AutoTokenizer.from_pretrained(base_dir)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(DEVICE)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, lora)
    chats = [tok.apply_chat_template([{"role": "user", "content": t[:60]}, {"role": "assistant", "content": t[:80]}],
                                     tokenize=False) for t in texts[:16]]
    batch = tok(chats, return_tensors="pt", padding=True, truncation=True, max_length=128).to(DEVICE)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    losses = []
    for _ in range(steps):
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    adapter = work / "adapter"
    model.save_pretrained(adapter)
    merged_dir = merge_lora(base_dir, adapter, work / "merged")
    probe = tok(chats[:4], return_tensors="pt", padding=True).to(DEVICE)
    model.eval()
    with torch.no_grad():
        adapter_logits = model(**probe).logits.float()
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).to(DEVICE).eval()
        merged_logits = merged(**probe).logits.float()
        # the merge itself on the GPU as well
        on_gpu = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(DEVICE), adapter
        ).merge_and_unload().eval()
        gpu_logits = on_gpu(**probe).logits.float()
    mask = probe["attention_mask"].bool()
    return {
        "losses": losses,
        "loss_finite": all(map(lambda v: v == v and abs(v) != float("inf"), losses)),
        "loss_fell": losses[-1] < losses[0],
        "merged_vs_adapter_max_abs": float((merged_logits - adapter_logits)[mask].abs().max()),
        "gpu_merge_vs_adapter_max_abs": float((gpu_logits - adapter_logits)[mask].abs().max()),
        "logit_scale": float(adapter_logits[mask].abs().max()),
    }


def engines_in_sequence(texts: list[str], work: Path, backend: str = "auto") -> dict:
    """Three systems through evaluation.generate's engines, one at a time, as run_evaluation drives them."""
    import torch
    from transformers import AutoTokenizer

    from semantic_reward.evaluation.drift import token_drift
    from semantic_reward.evaluation.generate import EngineSpec, SystemEngine, pick_backend
    from tiny_models import build_tiny_policy, perturbed_copy

    base = build_tiny_policy(texts, work / "eval_base", vocab_size=2000, hidden_size=64, num_layers=2, num_heads=4)
    systems = {"base": base, **{name: perturbed_copy(base, work / f"eval_{name}", scale=0.2, seed=i)
                                for i, name in enumerate(("cold_start", "grpo"), 1)}}
    tok = AutoTokenizer.from_pretrained(base)
    prompts = [[{"role": "user", "content": t[:60]}] for t in texts[:16]]
    cuda = DEVICE == "cuda"

    def held() -> int:
        """Bytes PyTorch holds in this process (an HF engine's weights, drift models)."""
        return torch.cuda.memory_allocated() if cuda else 0

    def used() -> int:
        """Bytes in use on the device by every process (a vLLM engine core runs in its own)."""
        if not cuda:
            return 0
        free, total = torch.cuda.mem_get_info()
        return total - free

    before, before_used = held(), used()
    rows = []
    backend = pick_backend(backend)
    for name, path in systems.items():
        spec = EngineSpec(model=str(path), dtype="float32", device=DEVICE, progress=False, batch_size=8,
                          gpu_memory_utilization=0.3)
        engine = SystemEngine(backend, spec)
        t = time.perf_counter()
        test = engine.generate(prompts, 24)
        cmrc = engine.generate(prompts[:4], 8)
        open_bytes, open_used = held(), used()
        engine.close()
        row = {"system": name, "backend": backend, "outputs": len(test) + len(cmrc),
               "seconds": time.perf_counter() - t, "held_open_mib": open_bytes / 2**20,
               "held_after_shutdown_mib": held() / 2**20, "device_used_open_mib": open_used / 2**20,
               "device_used_after_shutdown_mib": used() / 2**20}
        if name != "base":
            token_drift(str(base), str(path), tok, texts[:4], device=DEVICE, progress=False, dtype="float32")
            row["held_after_drift_mib"] = held() / 2**20
        rows.append(row)
        log(f"engines: {name} ({backend}) held {row['held_open_mib']:.1f} MiB open, "
            f"{row['held_after_shutdown_mib']:.1f} MiB after shutdown")
    leftover = max(max(r["held_after_shutdown_mib"], r.get("held_after_drift_mib", 0.0)) for r in rows)
    # released: PyTorch's own memory back within 1 MiB, the device's within 256 MiB (a vLLM engine takes GiBs)
    released = all(r["held_after_shutdown_mib"] <= before / 2**20 + 1
                   and r.get("held_after_drift_mib", 0.0) <= before / 2**20 + 1
                   and r["device_used_after_shutdown_mib"] <= before_used / 2**20 + 256 for r in rows)
    return {"systems": rows, "held_before_mib": before / 2**20, "device_used_before_mib": before_used / 2**20,
            "released": released, "max_held_after_release_mib": leftover}


def save(out: Path, result: dict) -> None:
    """Written after each part, so a run cut short still leaves what it measured."""
    tmp = out / "gpu_check.json.tmp"
    tmp.write_text(json.dumps(result, indent=2), encoding="utf-8")
    tmp.replace(out / "gpu_check.json")


def share_table(placement: list[dict], step_seconds: list[float]) -> list[str]:
    head = f"{'placement':<42}{'reward s/step':>14}" + "".join(f"{'share @' + str(int(s)) + 's':>14}"
                                                            for s in step_seconds)
    lines = [head]
    for row in placement:
        cells = "".join(f"{row['reward_s'] / (s + row['reward_s']):>14.1%}" for s in step_seconds)
        lines.append(f"{row['placement']:<42}{row['reward_s']:>14.2f}{cells}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=None, help="models built here (default OUT/work)")
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--sft-steps", type=int, default=8)
    ap.add_argument("--step-seconds", type=float, nargs="+", default=[30.0, 60.0, 120.0],
                    help="assumed GRPO step times (without the reward) for the share column")
    ap.add_argument("--skip", nargs="*", default=[], choices=["dtypes", "placement", "lora", "engines"])
    ap.add_argument("--smoke", action="store_true", help="CPU, small encoder, few prompts: checks the script only")
    args = ap.parse_args(argv)
    import torch

    global DEVICE
    if args.smoke:
        DEVICE = "cpu"
        ENCODER_SIZE.update(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256)
        args.prompts, args.repeats, args.sft_steps = 8, 1, 3
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device; this script is for a GPU machine", file=sys.stderr)
        return 2
    from grpo_step import build_step, load_pairs

    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or args.out / "work"
    pairs = load_pairs("classical", args.data_dir)
    texts = [t for pair in pairs for t in pair]
    samples = build_step(pairs, args.prompts, args.n, seed=0)
    result: dict = {"device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu (smoke)", "torch": torch.__version__,
                    "cuda": torch.version.cuda, "cpu_count": os.cpu_count(), "machine": platform.platform(),
                    "responses": len(samples)}
    log(f"{result['device']}, torch {torch.__version__}, {len(samples)} responses per step")
    encoder = build_large_encoder(texts, work / "encoder_xlmr_large_size")

    if "dtypes" not in args.skip:
        rows = [measure_dtype(encoder, d, samples, args.batch_size, args.repeats) for d in DTYPES]
        ref = rows[0]
        for row in rows:
            row["max_abs_score_diff_vs_fp32"] = max(abs(a - b) for a, b in zip(row["scores"], ref["scores"]))
            row["max_abs_sim_diff_vs_fp32"] = max(abs(a - b) for a, b in zip(row["similarities"],
                                                                              ref["similarities"]))
        print(f"\n{'dtype':<10}{'naive r/s':>11}{'service r/s':>13}{'limit r/s':>11}{'svc/naive':>11}"
              f"{'svc/limit':>11}{'peak GiB':>10}{'max|dsim|':>11}{'max|dR|':>10}")
        for r in rows:
            print(f"{r['dtype']:<10}{r['naive_rps']:>11.1f}{r['service_rps']:>13.1f}{r['limit_rps']:>11.1f}"
                  f"{r['service_rps'] / r['naive_rps']:>11.2f}{r['service_rps'] / r['limit_rps']:>11.2f}"
                  f"{r['peak_gib']:>10.2f}{r['max_abs_sim_diff_vs_fp32']:>11.2e}{r['max_abs_score_diff_vs_fp32']:>10.2e}")
        for r in rows:
            r.pop("scores")
            r.pop("similarities")
        result["dtypes"] = rows
        save(args.out, result)

    if "lora" not in args.skip:
        lora = lora_sft_and_merge(texts, work / "lora", args.sft_steps)
        print(f"\nLoRA SFT on CUDA: losses {', '.join(f'{v:.3f}' for v in lora['losses'])}; "
              f"merged vs adapter logits max |diff| {lora['merged_vs_adapter_max_abs']:.2e} "
              f"(GPU merge {lora['gpu_merge_vs_adapter_max_abs']:.2e}; logits up to {lora['logit_scale']:.1f})")
        result["lora"] = lora
        save(args.out, result)

    if "engines" not in args.skip:
        engines = engines_in_sequence(texts, work / "engines")
        print(f"\nevaluation engines in sequence: released after every shutdown and drift: {engines['released']} "
              f"(held before {engines['held_before_mib']:.1f} MiB, at most {engines['max_held_after_release_mib']:.1f}"
              " MiB after a release)")
        result["engines"] = engines
        save(args.out, result)

    if "placement" not in args.skip:
        placement = measure_placement(encoder, samples, args.batch_size, os.cpu_count() or 1)
        print("\nreward per step by encoder placement (share = reward / (step + reward), step times assumed):")
        print("\n".join(share_table(placement, args.step_seconds)))
        result["placement"] = placement
        result["assumed_step_seconds"] = args.step_seconds

    save(args.out, result)
    log(f"wrote {args.out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
