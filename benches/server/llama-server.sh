#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` from the llama.cpp source inside the
# llama-cpp-python==0.3.36 source package (the same llama.cpp the compare harness uses), natively
# for this CPU, and caches it at $GEMMA_GRAPH_CACHE/llama-server/bin/llama-server (~11 minutes on
# 2 cores, once). Prints the binary's path.
#
# No network beyond the package registry: the web UI is not downloaded (LLAMA_USE_PREBUILT_UI=OFF),
# no curl/OpenSSL (the benchmark talks plain HTTP on loopback).
set -euo pipefail
version=0.3.36
cache="${GEMMA_GRAPH_CACHE:-$HOME/.cache/gemma-graph}"
out="$cache/llama-server"
bin="$out/bin/llama-server"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi
venv="$cache/venv-llama-build"
if ! "$venv/bin/python" -c "import scikit_build_core" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet scikit-build-core cmake ninja
fi
export PATH="$venv/bin:$PATH"
work="$out/src"
rm -rf "$work" && mkdir -p "$work"
"$venv/bin/pip" download --quiet --no-deps --no-binary llama-cpp-python --no-build-isolation \
  "llama-cpp-python==$version" -d "$work"
tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
[ -f "$src/tools/server/CMakeLists.txt" ] || { echo "no tools/server in $src" >&2; exit 1; }
echo "building llama-server from $src (~11 min once)..." >&2
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >&2
ninja -C "$work/build" llama-server >&2
mkdir -p "$out/bin"
cp "$work/build/bin/llama-server" "$bin"
rm -rf "$work"
echo "$bin"
