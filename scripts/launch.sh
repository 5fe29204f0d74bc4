#!/usr/bin/env bash
# Launch a recipe the way verl users do.
#   scripts/launch.sh recipes/grpo_semantic_zh_bo [hydra overrides...]
# Environment:
#   MODEL              policy checkpoint (default: the recipe's, Qwen/Qwen3-4B)
#   GPUS_PER_NODE      GPUs per node (default: nvidia-smi's count)
#   NNODES             nodes (default 1). For several nodes start Ray first
#                      (scripts/ray_cluster.sh head|worker) and set RAY_ADDRESS.
#   ENCODER_GPUS       GPUs per cluster left OUTSIDE verl's pools for the shared reward-encoder
#                      actor (default 1 when a node has more than one GPU, else 0 = encoder on CPU)
#   REWARD_ENCODER     sentence-transformers model for the reward (default: the recipe's)
# Logs go to logs/<recipe>/<time>.log; checkpoints to checkpoints/semantic-reward/<recipe>/.
set -euo pipefail
recipe_dir=$(cd "${1:?usage: scripts/launch.sh RECIPE_DIR [overrides...]}" && pwd)
shift
name=$(basename "$recipe_dir")
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
gpus=${GPUS_PER_NODE:-$( (nvidia-smi -L 2>/dev/null || true) | wc -l)}
nnodes=${NNODES:-1}
mkdir -p "logs/$name"
log="logs/$name/$(date +%Y%m%d-%H%M%S).log"
overrides=("trainer.nnodes=$nnodes")
[ -n "${MODEL:-}" ] && model_key=1 || model_key=0

if grep -q "sft_trainer_engine" "$recipe_dir/config.yaml"; then
  [ "$model_key" = 1 ] && overrides+=("model.path=$MODEL")
  overrides+=("trainer.n_gpus_per_node=$gpus")
  echo "SFT recipe $name on $nnodes x $gpus GPUs; log: $log"
  torchrun --nnodes="$nnodes" --nproc_per_node="$gpus" ${MASTER_ADDR:+--master_addr=$MASTER_ADDR} \
    ${NODE_RANK:+--node_rank=$NODE_RANK} -m verl.trainer.sft_trainer \
    --config-path="$recipe_dir" --config-name=config "${overrides[@]}" "$@" 2>&1 | tee "$log"
  exit "${PIPESTATUS[0]}"
fi

encoder_gpus=${ENCODER_GPUS:-$([ "$gpus" -gt 1 ] && echo 1 || echo 0)}
export REWARD_ENCODER_GPUS=$encoder_gpus
[ "$model_key" = 1 ] && overrides+=("actor_rollout_ref.model.path=$MODEL")
# The encoder's GPU stays outside verl's resource pools (every pool bundle reserves a GPU).
overrides+=("trainer.n_gpus_per_node=$((gpus - encoder_gpus))")
python -m semantic_reward.recipe_check "$recipe_dir/config.yaml"
echo "GRPO recipe $name on $nnodes x $((gpus - encoder_gpus)) GPUs, reward encoder on ${encoder_gpus} GPU(s); log: $log"
python -m verl.trainer.main_ppo --config-path="$recipe_dir" --config-name=config "${overrides[@]}" "$@" 2>&1 \
  | tee "$log"
exit "${PIPESTATUS[0]}"
