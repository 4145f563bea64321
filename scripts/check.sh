#!/usr/bin/env bash
# The whole test suite, as CI runs it: fetch the real model if it is not cached yet, then
# formatting, lints, the README's quick start, and every test (unit, golden parity on the real
# model, CLI, bad input, the README's common tasks, the examples).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Cargo probes rustc with standard input from /dev/null; where /dev/null is a regular file (seen on
# these machines; .ci/run repairs it as root) that probe reads whatever was last written there.
if [ ! -c /dev/null ]; then
  echo "warning: /dev/null is not a character device; cargo's rustc probe may fail at random" >&2
fi

scripts/fetch-model.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# A venv in the cache (made once) with what the Python-side tests use: numpy (numpy.load reads
# what `run --format npy` writes), scikit-learn, pyyaml and safetensors (the classifier head
# example trains on our embeddings and must agree with predict_proba), gguf (llama.cpp's
# reference dequantization, which tests/dequant_reference.rs compares ours with).
cache="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}"
venv="$cache/venv-tools"
if ! "$venv/bin/python" -c "import numpy, sklearn, yaml, safetensors, gguf" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet numpy scikit-learn pyyaml safetensors gguf==0.19.0
fi
export GEMMA_GRAPH_PYTHON="$venv/bin/python"

# The README's "Start here", as written.
cargo build --release --quiet
PATH="$PWD/target/release:$PATH" gemma-graph run --prompt query "How do I bake bread?"

cargo test --workspace --quiet

# The Python package: wheel built with maturin, installed into a cache venv, pytest.
scripts/check-python.sh
# The HTTP server with curl and the official openai client.
scripts/check-server.sh

# The NEON tier under qemu, and the Apple Silicon build.
scripts/check-neon.sh
