#!/usr/bin/env bash
# The NEON tier on an x86_64 machine: cross-compiled for aarch64-unknown-linux-gnu and run under
# qemu-aarch64 (Debian: gcc-aarch64-linux-gnu, qemu-user; rustup target aarch64-unknown-linux-gnu).
# Runs every kernel parity test (NEON against the scalar specification, bit for bit for the fast
# precision) and the golden test on the first GEMMA_GRAPH_GOLDEN_LIMIT texts (default 8: the
# emulated forward pass is ~50× slower than native). Also `cargo check` for Apple Silicon
# (aarch64-apple-darwin), so macOS builds keep compiling.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export GEMMA_GRAPH_GOLDEN_LIMIT="${GEMMA_GRAPH_GOLDEN_LIMIT:-8}"

cargo clippy --target aarch64-unknown-linux-gnu --workspace --all-targets --quiet -- -D warnings
cargo test --release --target aarch64-unknown-linux-gnu -p gg-backends --quiet
cargo test --release --target aarch64-unknown-linux-gnu --test embeddings_golden --quiet -- neon --nocapture
cargo check --target aarch64-apple-darwin --workspace --quiet
