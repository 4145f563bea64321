#!/usr/bin/env bash
# Side-by-side load benchmark: `gemma-graph serve` and llama.cpp's `llama-server --embeddings` on
# the same GGUF, same thread count, same loopback load generator (server/benches/load.rs:
# N keep-alive clients, one text per request, OpenAI /v1/embeddings), on ../shared/bench
# queries.jsonl and docs.jsonl at 1, 8 and 64 clients. Each (workload, server) pair runs in a
# fresh server process, the two servers alternating, so the peak RSS (VmHWM) is per workload.
#
#   benches/server/compare.sh [QUERY_SECONDS=30] [DOC_SECONDS=60]
#
# Env: THREADS (2), MODEL (the fetched Q8_0 file), LLAMA_SLOTS (64: llama-server's -np, so every
# client has a slot), CONCURRENCY (1,8,64), OUT (a directory for the raw JSON lines and logs).
# llama-server is built once by benches/server/llama-server.sh; it gets its best settings: flash
# attention on, -b = -ub = 2048, a unified KV cache, one slot per client.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
qsec="${1:-30}"
dsec="${2:-60}"
threads="${THREADS:-2}"
cache="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}"
model="${MODEL:-$cache/embeddinggemma-300m-Q8_0.gguf}"
slots="${LLAMA_SLOTS:-64}"
levels="${CONCURRENCY:-1,8,64}"
bench="${BENCH_DIR:-$root/../shared/bench}"
out="${OUT:-$root/target/server-compare}"
mkdir -p "$out"
: >"$out/results.jsonl"

[ -f "$model" ] || { echo "no model at $model (scripts/fetch-model.sh)" >&2; exit 1; }
llama_server="$(benches/server/llama-server.sh)"
source benches/server/common.sh
port=18631

start_server() { # name workload
  port=$((port + 1))
  case "$1" in
    gemma-graph)
      "$gg" serve --model "$model" --threads "$threads" --port "$port" >"$out/$1-$2.log" 2>&1 &
      ;;
    llama-server)
      "$llama_server" -m "$model" --embeddings -t "$threads" -tb "$threads" -fa on -b 2048 -ub 2048 \
        -np "$slots" -kvu -c $((slots * 2048)) --host 127.0.0.1 --port "$port" --no-webui \
        >"$out/$1-$2.log" 2>&1 &
      ;;
  esac
  pid=$!
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "$1 exited; see $out/$1-$2.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "$1 did not become healthy; see $out/$1-$2.log" >&2
  exit 1
}

for workload in queries docs; do
  seconds=$qsec
  [ "$workload" = docs ] && seconds=$dsec
  for server in gemma-graph llama-server; do
    start_server "$server" "$workload"
    echo "== $workload on $server ($threads threads, ${seconds}s per level)" >&2
    "$load" --url "http://127.0.0.1:$port" --input "$bench/$workload.jsonl" \
      --concurrency "$levels" --seconds "$seconds" |
      while read -r line; do
        echo "{\"server\":\"$server\",\"workload\":\"$workload\",\"result\":$line}"
      done >>"$out/results.jsonl"
    hwm_kb="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
    echo "{\"server\":\"$server\",\"workload\":\"$workload\",\"peak_rss_kb\":$hwm_kb}" >>"$out/results.jsonl"
    stop_server
  done
done

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
flags="$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_vnni|avx_vnni|avx512_bf16|avx512_fp16)$' | tr '\n' ' ')"
python3 - "$out/results.jsonl" "$cpu" "$flags" "$threads" <<'PY'
import json, sys
rows, rss = {}, {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "peak_rss_kb" in r:
        rss[(r["server"], r["workload"])] = r["peak_rss_kb"] / 1024  # MiB
    else:
        rows[(r["server"], r["workload"], r["result"]["concurrency"])] = r["result"]
print(f"CPU: {sys.argv[2]}; flags: {sys.argv[3]}; threads: {sys.argv[4]}")
print("| workload | clients | gemma-graph texts/s | llama-server texts/s | ratio | gemma-graph p50 / p99 ms | llama-server p50 / p99 ms | 429s (gg / llama) | errors (gg / llama) |")
print("|---|---|---|---|---|---|---|---|---|")
for (server, workload, c), g in sorted(rows.items(), key=lambda k: (k[0][1] != "queries", k[0][2])):
    if server != "gemma-graph":
        continue
    l = rows.get(("llama-server", workload, c))
    if l is None:
        continue
    ratio = g["texts_per_s"] / l["texts_per_s"] if l["texts_per_s"] else float("inf")
    print(f"| {workload} | {c} | {g['texts_per_s']:.2f} ({g['tokens_per_s']:.0f} tok/s) | "
          f"{l['texts_per_s']:.2f} ({l['tokens_per_s']:.0f} tok/s) | {ratio:.2f}× | "
          f"{g['p50_ms']:.0f} / {g['p99_ms']:.0f} | {l['p50_ms']:.0f} / {l['p99_ms']:.0f} | "
          f"{g['status_429']} / {l['status_429']} | {g['errors']} / {l['errors']} |")
for workload in ("queries", "docs"):
    g, l = rss.get(("gemma-graph", workload)), rss.get(("llama-server", workload))
    if g and l:
        print(f"peak RSS on {workload}: gemma-graph {g:.0f} MiB, llama-server {l:.0f} MiB ({g / l:.2f}×)")
PY
