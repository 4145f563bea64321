#!/usr/bin/env bash
# The whole test suite, as CI runs it: fetch the real model if it is not cached yet, then
# formatting, lints, the README's quick start, and every test (unit, golden parity on the real
# model, CLI, bad input, the README's common tasks, the examples).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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
# GEMMA_GRAPH_PYTHON unset: with it in the environment, cargo's cross-target rustc probe failed
# every time in CI (and never without it); the NEON tests do not use it.
env -u GEMMA_GRAPH_PYTHON scripts/check-neon.sh
