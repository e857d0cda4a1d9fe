#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang-16, ASan+UBSan) and runs each for as long as asked, one after the
# other. Usage: scripts/fuzz.sh [seconds per target, default 600] [target...]   (default: every target)
# The corpus each run grows is kept in $FUZZ_WORK/<target> (default build-fuzz/work) and reused next time;
# crashes are written to build-fuzz/artifacts/<target>/. Exit status 1 when any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
work=${FUZZ_WORK:-build-fuzz/work}
cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++-16 >/dev/null
cmake --build build-fuzz -j"$(nproc)"
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(ctest --test-dir build-fuzz -N -L fuzz | sed -n 's/^ *Test *#[0-9]*: //p')
fi
status=0
for t in "${targets[@]}"; do
  echo "== $t: ${seconds}s, corpus $work/$t"
  if fuzz/run_target.sh "build-fuzz/$t" "fuzz/corpus/$t" "build-fuzz/artifacts/$t" "$seconds" "$work/$t"; then
    echo "== $t: passed"
  else
    echo "== $t: FAILED (inputs in build-fuzz/artifacts/$t/)"
    status=1
  fi
done
exit $status
