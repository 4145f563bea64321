#!/usr/bin/env bash
# `gemma-graph serve` with real clients: starts the release binary on a free loopback port
# with an API key, checks the TEI routes with curl, runs the official `openai` Python client
# LangChain's `OpenAIEmbeddings`, the `ollama` package and grpcio on the gRPC port
# (server/clients/, in a venv in the cache), then stops the
# server with SIGTERM and requires a clean exit and one log line per request. Needs
# `cargo build --release` and the model.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cache="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}"
venv="$cache/venv-clients"
if ! "$venv/bin/python" -c "import openai, langchain_openai, ollama, grpc, grpc_tools, numpy, pytest" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai>=1.40" "langchain-openai>=0.3" "ollama>=0.4" grpcio grpcio-tools numpy pytest
fi
bin="$PWD/target/release/gemma-graph"
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
grpc_port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
key="check-$RANDOM$RANDOM"
log=$(mktemp)
GEMMA_GRAPH_API_KEY="$key" "$bin" serve --port "$port" --grpc-port "$grpc_port" > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 600); do
  curl -sf "$url/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "check-server: the server exited" >&2; exit 1; }
  sleep 0.1
done
curl -sf "$url/health" >/dev/null

fail() { echo "check-server: $*" >&2; cat "$log" >&2; exit 1; }
auth=(-H "Authorization: Bearer $key" -H "Content-Type: application/json")
py() { "$venv/bin/python" -c "$1"; }

curl -sf "${auth[@]}" -d '{"inputs": ["first text", "second text"]}' "$url/embed" |
  py 'import json,sys; v=json.load(sys.stdin); assert len(v) == 2 and len(v[0]) == 768, v' || fail "/embed"
curl -sf "${auth[@]}" -d '{"inputs": "a text", "dimensions": 256, "prompt_name": "query"}' "$url/embed" |
  py 'import json,sys,math; v=json.load(sys.stdin)[0]; assert len(v) == 256 and abs(math.hypot(*v) - 1) < 1e-5' || fail "/embed dims"
curl -sf "${auth[@]}" -d '{"inputs": "hello world"}' "$url/tokenize" |
  py 'import json,sys; t=json.load(sys.stdin)[0]; assert t[0]["id"] == 2 and t[-1]["id"] == 1, t' || fail "/tokenize"
curl -sf "${auth[@]}" "$url/info" | py 'import json,sys; i=json.load(sys.stdin); assert i["dimensions"] == 768, i' || fail "/info"
# Read the whole body first: `curl | grep -q` fails under pipefail whenever grep exits on its
# match before curl has written the rest (curl then dies of SIGPIPE, exit 23).
metrics=$(curl -sf "${auth[@]}" "$url/metrics") || fail "/metrics: request failed"
grep -qF 'gemma_graph_requests_total{route="/embed",status="200"} 2' <<<"$metrics" ||
  fail "/metrics: no count of 2 for /embed 200 in: $metrics"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Content-Type: application/json" -d '{"inputs": "a"}' "$url/embed")
[[ "$code" == 401 ]] || fail "no key gave $code, not 401"
code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" -d '{"inputs": "a", "truncate": "maybe"}' "$url/embed")
[[ "$code" == 400 ]] || fail "a bad field gave $code, not 400"

GG_SERVER_URL="$url" GG_GRPC_ADDR="127.0.0.1:$grpc_port" GG_API_KEY="$key" GEMMA_GRAPH_BIN="$bin" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider server/clients

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[[ "$status" == 0 ]] || fail "exit status $status after SIGTERM"
grep -q 'stopped' "$log" || fail "no 'stopped' line"
lines=$(grep -c ' request ' "$log" || true)
(( lines >= 8 )) || fail "only $lines request log lines"
echo "check-server: ok ($lines requests logged)" >&2
