#!/usr/bin/env bash
# Launch one recipe the way verl users do: the exact command, checked first (semantic_reward/launch.py composes it).
#   scripts/launch.sh RECIPE [--dry-run] [hydra overrides...]      RECIPE: grpo_semantic_zh_bo or recipes/X.yaml
# Environment (each is a flag of python -m semantic_reward.launch):
#   PROFILE        scale profile in recipes/profile/ (default paper)
#   MODEL          policy checkpoint (default: the profile's)
#   NNODES, GPUS_PER_NODE
#                  cluster shape (default: what Ray detects on the cluster; --dry-run: the profile's)
#   ENCODER_GPUS   GPUs per node kept OUT of verl's pools for the reward encoder (default 0: the encoder
#                  runs on the driver's CPUs inside the shared reward-service actor; see recipes/README.md)
#   RAY_ADDRESS    Ray job server (http://HEAD:8265). Several nodes, or any address, submit a Ray Job
#                  (`ray job submit`); default for several nodes: http://127.0.0.1:8265 (run on the head)
#   SHARED_ROOT    this project's folder on storage every node mounts: relative data, checkpoint and
#                  model paths become absolute under it (several nodes refuse relative paths)
# Nodes join a cluster with Ray's own commands: `ray start --head` on one, `ray start --address=HEAD:6379`
# on the others. --dry-run prints the command and runs the pre-flight check only: no GPU, Ray or cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
args=()
[ -n "${PROFILE:-}" ] && args+=(--profile "$PROFILE")
[ -n "${MODEL:-}" ] && args+=(--model "$MODEL")
[ -n "${NNODES:-}" ] && args+=(--nnodes "$NNODES")
[ -n "${GPUS_PER_NODE:-}" ] && args+=(--gpus-per-node "$GPUS_PER_NODE")
[ -n "${ENCODER_GPUS:-}" ] && args+=(--encoder-gpus "$ENCODER_GPUS")
[ -n "${RAY_ADDRESS:-}" ] && args+=(--address "$RAY_ADDRESS")
[ -n "${SHARED_ROOT:-}" ] && args+=(--shared-root "$SHARED_ROOT")
exec "${PYTHON:-python}" -m semantic_reward.launch "${args[@]}" "$@"
