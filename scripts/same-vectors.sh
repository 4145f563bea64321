#!/usr/bin/env bash
# Two builds give the same vectors, byte for byte: the golden texts through `run --format npy`
# of OLD and NEW, for every backend this CPU runs and every precision it has there (the scalar
# backend, the specification and slow, on the first SCALAR_TEXTS texts). For refactors that must
# not change a single bit; prints one line per (backend, precision) and exits 1 on a difference.
#
#   scripts/same-vectors.sh OLD_BINARY NEW_BINARY [MODEL.gguf]
#   SCALAR_TEXTS=8 BACKENDS="avx2 avx512" scripts/same-vectors.sh old/gemma-graph target/release/gemma-graph
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

old=$1
new=$2
model_args=()
[[ $# -ge 3 ]] && model_args=(--model "$3")
golden="${GOLDEN:-../shared/golden/embeddings.jsonl}"
backends="${BACKENDS:-scalar avx2 avx512 neon}"
scalar_texts="${SCALAR_TEXTS:-24}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -n "$scalar_texts" "$golden" >"$work/scalar.jsonl"

status=0
for b in $backends; do
  input="$golden"
  [[ $b == scalar ]] && input="$work/scalar.jsonl"
  for p in exact fast int8; do
    args=(run --quiet --backend "$b" --precision "$p" --input "$input" --format npy "${model_args[@]}")
    if ! "$new" "${args[@]}" -o "$work/new.npy" 2>"$work/err"; then
      if grep -qE "lacks|no int8|exists only on|needs" "$work/err"; then
        echo "$b $p: skipped ($(head -c 160 "$work/err" | tr '\n' ' '))"
        continue
      fi
      cat "$work/err" >&2
      exit 1
    fi
    "$old" "${args[@]}" -o "$work/old.npy"
    rows=$(($(wc -l <"$input")))
    if cmp -s "$work/old.npy" "$work/new.npy"; then
      echo "$b $p: $rows texts, identical ($(sha256sum <"$work/new.npy" | cut -c1-16))"
    else
      echo "$b $p: $rows texts, DIFFERENT"
      status=1
    fi
  done
done
exit $status
