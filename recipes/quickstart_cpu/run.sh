#!/usr/bin/env bash
# The quickstart recipe needs its data and tiny policy prepared first: scripts/quickstart.py does both and runs it.
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.." && exec "${PYTHON:-python}" scripts/quickstart.py "$@"
