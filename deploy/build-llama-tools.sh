#!/usr/bin/env bash
# Builds llama.cpp's own tools (llama-completion, the old `main`; llama-bench; llama-batched-bench)
# from the llama.cpp source node-llama-cpp ships, against the very prebuilt libraries the agent
# loads, so `bench --llama-completion/--llama-bench/--llama-batched-bench` compare like with like.
# Only the tools are compiled, not llama.cpp: a few seconds each on 2 cores. linux-x64 only.
# Usage: deploy/build-llama-tools.sh [out-dir] (default: ./llama-tools)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-llama-tools}" && cd "${1:-llama-tools}" && pwd)"
libs="$root/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
bundle="$root/node_modules/node-llama-cpp/llama/gitRelease.bundle"
for need in git g++; do
  command -v "$need" >/dev/null || { echo "build-llama-tools: $need not found; install it (Debian: apt-get install $need)" >&2; exit 1; }
done
[ -d "$libs" ] || { echo "build-llama-tools: no prebuilt libraries at $libs; run npm ci first" >&2; exit 1; }
src="$out/llama-src"
[ -d "$src/tools" ] || git clone -q "$bundle" "$src" 2>/dev/null
build() { # build <tools/ folder> <binary>
  echo "building $2" >&2
  g++ -O2 -DNDEBUG -std=c++17 -I"$src/include" -I"$src/ggml/include" -I"$src/common" -I"$src/vendor" \
    "$src"/tools/"$1"/*.cpp -o "$out/$2" \
    -L"$libs" -l:libllama-common.so -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so \
    -Wl,-rpath,"$libs" -pthread
}
build completion llama-completion
build llama-bench llama-bench
build batched-bench llama-batched-bench
# The tools look for the CPU variants (libggml-cpu-haswell.so, ...) beside themselves.
ln -sf "$libs"/libggml-cpu-*.so "$out/"
echo "$out: llama-completion llama-bench llama-batched-bench" >&2
