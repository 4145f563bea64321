#!/usr/bin/env bash
# Corpus throughput of examples/ray_embed.py on a local Ray cluster (head on 127.0.0.1 with this
# machine's cores; the actors are its workers), next to the single-process CLI on the same texts.
#
#   benches/python/ray_bench.sh [REPEAT] [SHARDS]
#   ROWS="ray1 rayN" benches/python/ray_bench.sh 4 4     # only some rows (default: cli ray1 rayN)
#
# The corpus is ../shared/bench/docs.jsonl (512 documents, ~53k tokens) repeated REPEAT times
# (default 100: 51,200 texts) in SHARDS files (default 8). Rows: the CLI (`gemma-graph run`, all
# cores), 1 actor × all cores, N actors × 1 thread. Each row prints texts/s and peak RSS
# (per actor for Ray, from each actor's getrusage). On two cores a full 51k-text run takes
# about 3.5 hours per row; REPEAT=4 (2,048 texts) takes ~10 minutes per row.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repeat="${1:-100}"
shards="${2:-8}"
cores=$(nproc)
cache="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}"
docs="${GEMMA_GRAPH_BENCH:-../shared/bench}/docs.jsonl"
py=$(scripts/python-env.sh)
cargo build --release --quiet -p gemma-graph-cli
export RAY_USAGE_STATS_ENABLED=0
# Ray ≥ 2.5x starts clusters with token authentication; the driver must use the token too.
export RAY_AUTH_MODE=token

work="$cache/ray-bench-$repeat-$shards"
corpus="$work/corpus"
if [[ ! -f "$corpus/.complete" ]]; then
  rm -rf "$corpus" && mkdir -p "$corpus"
  "$py" - "$docs" "$corpus" "$repeat" "$shards" <<'PY'
import json, sys
src, out, repeat, shards = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
texts = [json.loads(l)["text"] for l in open(src, encoding="utf-8")]
rows = [t for _ in range(repeat) for t in texts]
per = -(-len(rows) // shards)
for s in range(shards):
    with open(f"{out}/shard-{s:03d}.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(rows[s * per:(s + 1) * per], start=s * per):
            f.write(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n")
PY
  cat "$corpus"/shard-*.jsonl > "$work/all.jsonl"
  touch "$corpus/.complete"
fi
texts=$(wc -l < "$work/all.jsonl")
echo "corpus: $texts texts in $shards shards ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $cores cores)" >&2

results="$work/results.tsv"
printf 'setup\ttexts\tseconds\ttexts/s\tpeak RSS (MB)\n' > "$results"

rows="${ROWS:-cli ray1 rayN}"
# The CLI: one process, every core.
if [[ " $rows " == *" cli "* ]]; then
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/cli.rss" target/release/gemma-graph run --quiet --threads "$cores" \
  --input "$work/all.jsonl" --output "$work/cli.npy"
end=$(date +%s.%N)
"$py" - "$results" "$texts" "$start" "$end" "$(cat "$work/cli.rss")" <<'PY'
import sys
res, n, s, e, kib = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
open(res, "a").write(f"gemma-graph run (1 process)\t{n}\t{e - s:.1f}\t{n / (e - s):.2f}\t{kib / 1024:.0f}\n")
PY
fi

ray_row() {  # actors threads-per-actor
  local actors=$1 threads=$2 out="$work/out-$1x$2" stats="$work/stats-$1x$2"
  rm -rf "$out" "$stats"
  "$py" examples/ray_embed.py "$corpus" -o "$out" --address auto --actors "$actors" \
    --threads-per-actor "$threads" --batch-size 64 --stats-dir "$stats" > "$work/summary-$1x$2.json"
  "$py" - "$results" "$work/summary-$1x$2.json" "$stats" "$actors" "$threads" <<'PY'
import glob, json, sys
res, summary, stats, actors, threads = sys.argv[1:6]
s = json.load(open(summary))
peaks = [json.load(open(f))["peak_rss_bytes"] / 2**20 for f in glob.glob(f"{stats}/*.json")]
peak = f"{max(peaks):.0f} per actor" if peaks else "?"
open(res, "a").write(f"Ray Data: {actors} actor(s) × {threads} thread(s)\t{s['texts']}\t{s['seconds']:.1f}\t{s['texts_per_second']:.2f}\t{peak}\n")
PY
}

rayc="$(dirname "$py")/ray"
"$rayc" stop --force >/dev/null 2>&1 || true
"$rayc" start --head --node-ip-address=127.0.0.1 --port=6390 --num-cpus="$cores" \
  --include-dashboard=false --disable-usage-stats >/dev/null
trap '"$rayc" stop --force >/dev/null 2>&1 || true' EXIT
export RAY_ADDRESS=127.0.0.1:6390
[[ " $rows " == *" ray1 "* ]] && ray_row 1 "$cores"
[[ " $rows " == *" rayN "* ]] && ray_row "$cores" 1

column -t -s $'\t' "$results"
