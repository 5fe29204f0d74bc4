#!/usr/bin/env bash
# GPU check for a lent CUDA machine (torch, transformers, sentence-transformers, peft there; no verl, vLLM, Ray):
# the embedding service on CUDA with an XLM-R-large-sized random encoder in fp32/fp16/bf16 (naive vs service vs
# one-call limit, peak memory, rewards' agreement across dtypes), the encoder placement options, and a LoRA SFT
# step + merge of the tiny policy on CUDA, and the evaluation's engines for three systems in sequence (memory back
# after each shutdown and drift). At most 8 minutes; prints tables, writes OUT/gpu_check.json.
#   scripts/gpu_check.sh [DATA_DIR] [OUT]
# DATA_DIR holds bo_zh_classical.jsonl (default ../shared/data). Pure-Python packages missing on the machine
# (omegaconf, antlr4) can be put in SITE_DIR (default .devsite/) and are added to PYTHONPATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${1:-$ROOT/../shared/data}"
OUT="${2:-$ROOT/outputs/gpu_check}"
SITE_DIR="${SITE_DIR:-$ROOT/.devsite}"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${SITE_DIR:+:$SITE_DIR}${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c "import torch, transformers, sentence_transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'sentence-transformers', sentence_transformers.__version__, 'peft', peft.__version__)"
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PYTHON" "$ROOT/scripts/gpu_check.py" --data-dir "$DATA_DIR" --out "$OUT" \
  --work "${WORK_DIR:-/tmp/gpu_check_work}" "${@:3}"
