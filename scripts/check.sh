#!/usr/bin/env bash
# The whole test suite, as CI runs it: fetch the real model if it is not cached yet, then
# formatting, lints, the README's quick start, and every test (unit, golden parity on the real
# model, CLI, bad input, the README's and docs' commands, the examples, Python, the server, the
# NEON tier under qemu). Tests are built once, then run in groups; each stage's wall time is
# printed at the end (docs/testing.md says what each runs and how long it takes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/stages.sh

# Cargo probes rustc with standard input from /dev/null; where /dev/null is a regular file (seen on
# these machines; .ci/run repairs it as root) that probe reads whatever was last written there.
if [ ! -c /dev/null ]; then
  echo "warning: /dev/null is not a character device; cargo's rustc probe may fail at random" >&2
fi

stage "fetch model" scripts/fetch-model.sh
stage "fmt" cargo fmt --all --check
stage "clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings

# A venv in the cache (made once) with what the Python-side tests use: numpy (numpy.load reads
# what `run --format npy` writes), scikit-learn, pyyaml and safetensors (the classifier head
# example trains on our embeddings and must agree with predict_proba), gguf (llama.cpp's
# reference dequantization, which tests/dequant_reference.rs compares ours with).
tools_venv() {
  local cache="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}"
  local venv="$cache/venv-tools"
  if ! "$venv/bin/python" -c "import numpy, sklearn, yaml, safetensors, gguf" >/dev/null 2>&1; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet numpy scikit-learn pyyaml safetensors gguf==0.19.0
  fi
}
stage "tools venv" tools_venv
export GEMMA_GRAPH_PYTHON="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}/venv-tools/bin/python"

# The README's "Start here", as written.
stage "release build" cargo build --release --quiet
stage "quick start" env PATH="$PWD/target/release:$PATH" gemma-graph run --prompt query "How do I bake bread?"

# Build every test once, then run them in groups (the groups' times show where CI goes).
stage "test build" cargo test --workspace --quiet --no-run
stage "tests: kernels (gg-backends)" cargo test -p gg-backends --quiet
stage "tests: ops, graph, loader" cargo test -p gg-ops -p gg-graph -p gg-loader --quiet
stage "tests: library + golden" cargo test -p gemma-graph --quiet
stage "tests: cli" cargo test -p gemma-graph-cli --quiet
stage "tests: server" cargo test -p gg-server --quiet
stage "tests: python crate" cargo test -p gemma-graph-python -p gg-testing --quiet

# The Python package: wheel built with maturin, installed into a cache venv, pytest.
stage "python package" scripts/check-python.sh
# The HTTP server with curl and the official openai client.
stage "server clients" scripts/check-server.sh

# The NEON tier under qemu, and the Apple Silicon build.
stage "neon (qemu) + apple check" scripts/check-neon.sh
