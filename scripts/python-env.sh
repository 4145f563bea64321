#!/usr/bin/env bash
# The Python package's venv in the cache (made once): maturin to build the wheel, pytest,
# numpy, tqdm, and Ray Data with pyarrow for examples/ray_embed.py. Then builds the abi3 wheel
# (release profile, into target/wheels) and installs it there. Prints the venv's python.
#
#   PY=$(scripts/python-env.sh)      # then: $PY -c 'import gemma_graph'
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cache="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}"
venv="$cache/venv-py"
if ! "$venv/bin/python" -c "import maturin, pytest, numpy, tqdm, pyarrow, ray.data" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "maturin==1.16.0" pytest numpy tqdm pyarrow pandas "ray[data]==2.60.0" >&2
fi
rm -rf target/wheels
"$venv/bin/maturin" build --quiet --release -m python/Cargo.toml -o target/wheels -i "$venv/bin/python" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps target/wheels/gemma_graph-*.whl >&2
echo "$venv/bin/python"
