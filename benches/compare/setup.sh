#!/usr/bin/env bash
# The peers for benches/compare/compare.py, in venvs under the cache (made once):
# llama.cpp through llama-cpp-python 0.3.36 (pip builds llama.cpp from source, natively for
# this CPU: about 12 minutes the first time). With --st, also sentence-transformers (float32,
# CPU torch) for the `docs` and `queries` rows.
set -euo pipefail
cache="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}"
llama="$cache/venv-llama"
if ! "$llama/bin/python" -c "import llama_cpp" >/dev/null 2>&1; then
  python3 -m venv "$llama"
  echo "building llama-cpp-python 0.3.36 (llama.cpp from source, ~12 min once)..." >&2
  "$llama/bin/pip" install --quiet llama-cpp-python==0.3.36
fi
if [ "${1:-}" = "--st" ]; then
  st="$cache/venv-st"
  if ! "$st/bin/python" -c "import sentence_transformers" >/dev/null 2>&1; then
    python3 -m venv "$st"
    "$st/bin/pip" install --quiet torch --index-url https://download.pytorch.org/whl/cpu || "$st/bin/pip" install --quiet torch
    "$st/bin/pip" install --quiet sentence-transformers
  fi
fi
echo "peers ready in $cache" >&2
