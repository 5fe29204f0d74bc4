#!/usr/bin/env bash
# Start the Ray cluster for a multi-node run, then launch from the head node with RAY_ADDRESS set.
#   head:    scripts/ray_cluster.sh head            (prints the address to use)
#   workers: scripts/ray_cluster.sh worker HEAD_IP
set -euo pipefail
port=${RAY_PORT:-6379}
case "${1:-}" in
  head)   ray start --head --port="$port" 
          echo "export RAY_ADDRESS=$(hostname -I | awk '{print $1}'):$port" ;;
  worker) ray start --address="${2:?head IP}:$port"  ;;
  *)      echo "usage: $0 head | worker HEAD_IP" >&2; exit 2 ;;
esac
