#!/usr/bin/env bash
# Two measurements on `gemma-graph serve` with the loopback load generator
# (server/benches/load.rs), on ../shared/bench/queries.jsonl:
#  1. gRPC against HTTP: TEI's gRPC `Embed` (--grpc-port) and OpenAI's /v1/embeddings on the same
#     server process, one text per call, alternating per level, at 1, 8 and 64 clients.
#  2. The vector cache: a workload with repeats (--distinct N: the first N texts, drawn in turn)
#     on a server without the cache and one with --cache-entries, 8 clients; the hit rate comes
#     from the server's /metrics.
#
#   benches/server/grpc_cache.sh [SECONDS=20] [DISTINCT=64]
#
# Env: THREADS (2), MODEL (the fetched Q8_0 file), OUT (raw JSON lines and logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
secs="${1:-20}"
distinct="${2:-64}"
threads="${THREADS:-2}"
cache="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}"
model="${MODEL:-$cache/embeddinggemma-300m-Q8_0.gguf}"
bench="${BENCH_DIR:-$root/../shared/bench}"
out="${OUT:-$root/target/server-grpc-cache}"
mkdir -p "$out"
: >"$out/results.jsonl"
[ -f "$model" ] || { echo "no model at $model (scripts/fetch-model.sh)" >&2; exit 1; }
source benches/server/common.sh
port=18731
start_server() { # name extra-args...
  local name=$1
  shift
  port=$((port + 2))
  "$gg" serve --model "$model" --threads "$threads" --port "$port" --grpc-port $((port + 1)) "$@" >"$out/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { echo "the server exited; see $out/$name.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "the server did not become healthy; see $out/$name.log" >&2
  exit 1
}
tag() { while read -r line; do echo "{\"run\":\"$1\",\"result\":$line}"; done >>"$out/results.jsonl"; }
metric() { curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

start_server protocols
for c in 1 8 64; do
  "$load" --url "http://127.0.0.1:$port" --input "$bench/queries.jsonl" --concurrency "$c" --seconds "$secs" | tag http
  "$load" --grpc "127.0.0.1:$((port + 1))" --input "$bench/queries.jsonl" --concurrency "$c" --seconds "$secs" | tag grpc
done
stop_server

for entries in 0 4096; do
  start_server "cache-$entries" --cache-entries "$entries"
  "$load" --url "http://127.0.0.1:$port" --input "$bench/queries.jsonl" --distinct "$distinct" \
    --concurrency 8 --seconds "$secs" | tag "cache-$entries"
  if [ "$entries" -gt 0 ]; then
    echo "{\"run\":\"cache-$entries\",\"hits\":$(metric gemma_graph_cache_hits_total),\"misses\":$(metric gemma_graph_cache_misses_total)}" >>"$out/results.jsonl"
  fi
  stop_server
done

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
python3 - "$out/results.jsonl" "$cpu" "$threads" "$distinct" <<'PY'
import json, sys
rows, hits = {}, {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "hits" in r:
        hits[r["run"]] = (r["hits"], r["misses"])
    else:
        rows[(r["run"], r["result"]["concurrency"])] = r["result"]
print(f"CPU: {sys.argv[2]}; threads: {sys.argv[3]}; queries.jsonl, one text per call")
print("| clients | HTTP texts/s | gRPC texts/s | gRPC / HTTP | HTTP p50 / p99 ms | gRPC p50 / p99 ms | errors (HTTP / gRPC) |")
print("|---|---|---|---|---|---|---|")
for c in (1, 8, 64):
    h, g = rows.get(("http", c)), rows.get(("grpc", c))
    if h and g:
        print(f"| {c} | {h['texts_per_s']:.2f} | {g['texts_per_s']:.2f} | {g['texts_per_s'] / h['texts_per_s']:.2f}× | "
              f"{h['p50_ms']:.0f} / {h['p99_ms']:.0f} | {g['p50_ms']:.0f} / {g['p99_ms']:.0f} | {h['errors']} / {g['errors']} |")
off, on = rows.get(("cache-0", 8)), rows.get(("cache-4096", 8))
if off and on:
    h, m = hits.get("cache-4096", (0, 0))
    rate = h / (h + m) if h + m else 0.0
    print(f"\ncache, {sys.argv[4]} distinct texts drawn in turn, 8 clients: without {off['texts_per_s']:.2f} texts/s "
          f"(p50 {off['p50_ms']:.0f} ms), with --cache-entries 4096 {on['texts_per_s']:.2f} texts/s "
          f"(p50 {on['p50_ms']:.1f} ms): {on['texts_per_s'] / off['texts_per_s']:.1f}×, hit rate {rate:.1%} ({h} hits, {m} misses)")
PY
