#!/usr/bin/env bash
# Sets up the environment (first run only), then runs the whole test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup_env.sh"
cd "$root"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 KERAS_BACKEND=torch
exec "$root/.venv/bin/python" -m pytest -n 2 "$@"
