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

# Cargo learns each target's facts by running `rustc -` and caches the answer in
# target/.rustc_info.json. On this CI's machines that probe has failed at random points of this
# script (rustc reporting stray text as its input; the same command passed when rerun by hand in
# the same clone), and a cached failure then fails every later cargo call. So: drop the cache
# before each command, and retry a command (up to 3 times) when, and only when, that probe is
# what failed. Any other failure fails at once.
cargo_() {
  local log attempt
  log=$(mktemp)
  for attempt in 1 2 3; do
    rm -f target/.rustc_info.json
    if cargo "$@" 2>"$log"; then
      cat "$log" >&2
      rm -f "$log"
      return 0
    fi
    cat "$log" >&2
    if ! grep -q "failed to run \`rustc\` to learn about target-specific information" "$log"; then
      rm -f "$log"
      return 1
    fi
    echo "check-neon: cargo's rustc probe failed (attempt $attempt): cargo $*" >&2
    sleep 3
  done
  rm -f "$log"
  return 1
}

cargo_ clippy --target aarch64-unknown-linux-gnu --workspace --all-targets --quiet -- -D warnings
cargo_ test --release --target aarch64-unknown-linux-gnu -p gg-backends --quiet
cargo_ test --release --target aarch64-unknown-linux-gnu --test embeddings_golden --quiet -- neon --nocapture
cargo_ check --target aarch64-apple-darwin --workspace --quiet
