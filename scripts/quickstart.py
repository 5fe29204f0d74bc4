"""`make quickstart`: verl's real GRPO loop on this CPU, with the semantic reward, on built-in defaults.

1. data_tools turns the zh->bo news pairs of ../shared/data into verl parquet;
2. a tiny Qwen3 policy is built from a config (tokenizer trained on the data) and given
   a short cold start (next-token training on the cold-start translation chats);
3. `python -m verl.trainer.main_ppo` runs the `recipes/quickstart_cpu` recipe: GRPO, our
   reward manager, the reference model with KL loss, verl's FSDP2 actor, and this
   package's CPU platform and HF rollout;
4. the per-step reward mean and seconds per step go to outputs/quickstart/summary.json,
   the training curve to outputs/quickstart/reward_curve.png.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP_LINE = re.compile(r"step:(\d+) - (.*)$")
# CPU settings the recipe does not carry yet: fp32 training (verl's FSDP default autocasts to bf16), the hf
# rollout's dtype and threads, and the thinking choice of the Qwen3-like template (off) for RL prompts.
CPU_OVERRIDES = [
    "+actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=fp32",
    "+actor_rollout_ref.ref.fsdp_config.mixed_precision.param_dtype=fp32",
    "actor_rollout_ref.rollout.dtype=float32",
    "+actor_rollout_ref.rollout.engine_kwargs.hf.num_threads=2",
    "+data.apply_chat_template_kwargs.enable_thinking=false",
]


def parse_metrics(line: str) -> tuple[int, dict[str, float]] | None:
    """One console-logger line of verl -> (step, {metric: value})."""
    m = STEP_LINE.search(line)
    if not m:
        return None
    metrics = {}
    for key, value in re.findall(r"([\w/@.\-]+):(?:np\.float64\()?(-?[0-9.eE+-]+|nan|inf)\)?", m.group(2)):
        try:
            metrics[key] = float(value)
        except ValueError:
            continue
    return int(m.group(1)), metrics


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = list(range(1, len(summary["reward_mean"]) + 1))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(steps, summary["reward_mean"], marker="o", label="reward mean (1.5 R_sim + R_lang)")
    if summary.get("language_reward_mean"):
        ax.plot(steps, summary["language_reward_mean"], marker=".", linestyle="--", label="R_lang mean")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("reward")
    ax.set_title("Quickstart: verl GRPO on CPU, tiny policy, semantic reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "quickstart")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--cold-start-steps", type=int, default=150)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for main_ppo")
    args = ap.parse_args(argv)
    news = args.data_dir / "bo_zh_news.jsonl"
    if not news.exists():
        print(f"skipped: {news} is absent; the quickstart needs ../shared/data beside the project", file=sys.stderr)
        return 0
    env = {**os.environ, "VERL_PLATFORM": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "WANDB_MODE": "disabled", "RAY_AUTH_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false",
           "RAY_DEDUP_LOGS": "0"}
    os.environ.update({k: env[k] for k in ("HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM")})
    start = time.perf_counter()
    out = args.out.resolve()

    from data_tools import BuildConfig, build
    from data_tools.writers import write_build
    from tiny_models import build_tiny_policy, packaged_minilm_path, train_causal_lm

    print("[1/3] data: zh->bo news pairs -> verl parquet", flush=True)
    result = build(BuildConfig.from_mapping({"direction": "zh-bo", "input": {"paths": [str(news)]}}), progress=False)
    write_build(result, out / "data")
    print("[2/3] policy: tiny Qwen3 from a config + a short cold start on the translation chats", flush=True)
    pairs = [p for split in result.splits.values() for p in split]
    init = build_tiny_policy([p.source for p in pairs] + [p.target for p in pairs], out / "policy_init")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(init)
    chats = [tok.apply_chat_template(r["messages"], tokenize=False, enable_thinking=False)
             for r in result.sft_rows("cold_start")]
    policy = train_causal_lm(init, chats, out / "policy", steps=args.cold_start_steps, max_length=192)

    print(f"[3/3] verl GRPO: {args.steps} steps of python -m verl.trainer.main_ppo (recipes/quickstart_cpu)",
          flush=True)
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={ROOT / 'recipes' / 'quickstart_cpu'}",
           "--config-name=config", f"data.train_files={out / 'data' / 'rl' / 'rl.parquet'}",
           f"data.val_files={out / 'data' / 'rl' / 'dev.parquet'}", f"actor_rollout_ref.model.path={policy}",
           f"trainer.total_training_steps={args.steps}", f"trainer.default_local_dir={out / 'checkpoints'}",
           f"reward.reward_kwargs.encoder.model={packaged_minilm_path()}", "+ray_kwargs.ray_init.num_gpus=1",
           *CPU_OVERRIDES, *args.overrides]
    log_path = out / "main_ppo.log"
    per_step: dict[int, dict[str, float]] = {}
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            parsed = parse_metrics(line)
            if parsed:
                step, metrics = parsed
                per_step[step] = metrics
                print(f"  step {step:>3}: reward mean {metrics.get('critic/score/mean', float('nan')):.3f}, "
                      f"{metrics.get('timing_s/step', float('nan')):.1f} s", flush=True)
        rc = proc.wait()
    if rc != 0 or not per_step:
        print(f"main_ppo failed (exit {rc}); see {log_path}", file=sys.stderr)
        return rc or 1
    steps = sorted(per_step)
    lang_key = next((k for k in per_step[steps[0]] if k.endswith("language_reward/mean")), None)
    summary = {
        "steps": steps,
        "reward_mean": [per_step[s].get("critic/score/mean") for s in steps],
        "seconds_per_step": [per_step[s].get("timing_s/step") for s in steps],
        "language_reward_mean": [per_step[s].get(lang_key) for s in steps] if lang_key else [],
        "kl_loss": [per_step[s].get("actor/kl_loss") for s in steps],
        "rollout_probs_diff_max": [per_step[s].get("training/rollout_probs_diff_max") for s in steps],
        "total_seconds": time.perf_counter() - start,
        "command": cmd,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    plot(summary, out / "reward_curve.png")
    first, last = summary["reward_mean"][0], summary["reward_mean"][-1]
    print(f"\nreward mean: step 1 {first:.3f} -> step {steps[-1]} {last:.3f}; "
          f"seconds per step after the first: {sum(summary['seconds_per_step'][1:]) / max(1, len(steps) - 1):.1f}; "
          f"total {summary['total_seconds']:.0f} s")
    print(f"wrote {out / 'summary.json'} and {out / 'reward_curve.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
