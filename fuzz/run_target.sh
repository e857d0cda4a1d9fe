#!/usr/bin/env bash
# Runs one libFuzzer target for a fixed time. Usage: run_target.sh BINARY SEEDS ARTIFACTS SECONDS [CORPUS]
# New inputs go to CORPUS (kept), or to a scratch directory removed afterwards; SEEDS is only read. A crash,
# leak, timeout or failed invariant leaves its input in ARTIFACTS and makes the exit status non-zero.
set -euo pipefail
binary=$1 seeds=$2 artifacts=$3 seconds=$4 corpus=${5:-}
name=$(basename "$binary")
if [ -z "$corpus" ]; then
  corpus=$(mktemp -d)
  trap 'rm -rf "$corpus"' EXIT
fi
mkdir -p "$corpus" "$artifacts"
extra=()
# The request head needs room past the 16 KiB header limit to reach it.
[ "$name" = fuzz_request_head ] && extra=(-max_len=20000)
# Stack traces name functions and lines: the symbolizer of the same LLVM.
export PATH="/usr/lib/llvm-16/bin:$PATH"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "${extra[@]}" "$corpus" "$seeds"
