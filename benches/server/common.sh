# Sourced by the server benches (compare.sh, grpc_cache.sh): the release CLI and the load
# generator built (their paths in $gg and $load), and stop_server for the server in $pid.
cargo build --release --quiet -p gemma-graph-cli
gg="$root/target/release/gemma-graph"
load="$(cargo bench -p gg-server --bench load --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="load" and m.get("executable"):
        print(m["executable"])')"
[ -x "$load" ] || { echo "could not build the load generator" >&2; exit 1; }

pid=""
stop_server() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap stop_server EXIT
