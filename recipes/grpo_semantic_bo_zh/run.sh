#!/usr/bin/env bash
# Launch this recipe (see scripts/launch.sh for MODEL, GPUS_PER_NODE, NNODES, ENCODER_GPUS).
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../../scripts/launch.sh" "$here" "$@"
