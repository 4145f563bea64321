#!/usr/bin/env bash
# The whole test suite, as CI runs it: fetch the real model if it is not cached yet, then
# formatting, lints, and every test (unit, golden parity on the real model, CLI, bad input).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/fetch-model.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --quiet
