#!/usr/bin/env bash
# The Python package as CI tests it: build the wheel, install it into the cache venv, run
# python/tests (API, bit-for-bit parity with `gemma-graph run`, golden cosines in both
# precisions, GIL release, Ctrl-C, bad arguments, the Ray job on a small corpus).
# Needs the release CLI (cargo build --release) and the model (scripts/fetch-model.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=$(scripts/python-env.sh)
export RAY_USAGE_STATS_ENABLED=0
(cd python && "$py" -m pytest -q -p no:cacheprovider tests "$@")
