#!/usr/bin/env bash
# Builds the documentation site offline into doc/_build/html, warnings as errors; safe to rerun
# (the set-up is skipped when nothing changed, as in scripts/setup_env.sh).
#   SKMLL_DOCS_GALLERY=fast  runs only the gallery's fast examples (what CI builds)
#   SKMLL_DOCS_GALLERY=off   renders the examples without running them
# Extra arguments go to sphinx-build (e.g. -E to rebuild every page).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup_env.sh"
venv="$root/.venv"
stamp="$venv/.skmll-docs-stamp"
key=$(cat "$0" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$key" ]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[docs]"
    echo "$key" > "$stamp"
fi
cd "$root"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 KERAS_BACKEND=torch
# Examples train tiny models, which run fastest on one thread per process.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# The build's own extensions are tested first (offline inventories, the API coverage check).
"$venv/bin/python" -m pytest -q -p no:cacheprovider doc/sphinxext
exec "$venv/bin/python" -m sphinx -b html -W --keep-going -j 1 doc doc/_build/html "$@"
