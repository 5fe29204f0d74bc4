#!/usr/bin/env bash
# Launch one recipe the way verl users do: the exact command, checked first.
#   scripts/launch.sh RECIPE [--dry-run] [hydra overrides...]      RECIPE: grpo_semantic_zh_bo or recipes/X.yaml
# Environment:
#   PROFILE            scale profile in recipes/profile/ (default paper)
#   MODEL              policy checkpoint (default: the profile's)
#   GPUS_PER_NODE      GPUs per node (default: nvidia-smi's count)
#   NNODES             nodes (default 1). For several nodes start Ray first
#                      (scripts/ray_cluster.sh head|worker) and set RAY_ADDRESS.
#   ENCODER_GPUS       GPUs per node left OUTSIDE verl's pools for the shared reward-encoder actor
#                      (default 0: the encoder runs on CPU inside the service actor)
# recipe_check validates the very command (profile + every override) before anything starts; --dry-run
# prints the command and runs only that check. For a whole experiment use python -m semantic_reward.experiment.
set -euo pipefail
recipe=${1:?usage: scripts/launch.sh RECIPE [--dry-run] [overrides...]}
shift
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
root=$(cd "$(dirname "$0")/.." && pwd)
name=$(basename "$recipe" .yaml)
cd "$root"
profile=${PROFILE:-paper}
gpus=${GPUS_PER_NODE:-$( (nvidia-smi -L 2>/dev/null || true) | wc -l)}
nnodes=${NNODES:-1}
encoder_gpus=${ENCODER_GPUS:-0}
overrides=("profile=$profile" "profile.nnodes=$nnodes" "profile.n_gpus_per_node=$((gpus - encoder_gpus))"
           "profile.encoder.num_gpus=$encoder_gpus")
[ -n "${MODEL:-}" ] && overrides+=("profile.model=$MODEL")
overrides+=("$@")
if grep -q "sft_trainer_engine" "recipes/$name.yaml"; then
  cmd=(torchrun --nnodes="$nnodes" --nproc_per_node="$gpus" ${MASTER_ADDR:+--master_addr=$MASTER_ADDR}
       ${NODE_RANK:+--node_rank=$NODE_RANK} -m verl.trainer.sft_trainer)
else
  cmd=(python -m verl.trainer.main_ppo)
fi
cmd+=(--config-path="$root/recipes" --config-name="$name" "${overrides[@]}")
check=(python -m semantic_reward.recipe_check "$name")
for o in "${overrides[@]}"; do check+=(--set "$o"); done
echo "${cmd[*]}"
"${check[@]}"
[ "$dry" = 1 ] && exit 0
mkdir -p "logs/$name"
log="logs/$name/$(date +%Y%m%d-%H%M%S).log"
echo "log: $log"
"${cmd[@]}" 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
