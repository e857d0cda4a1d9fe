#!/usr/bin/env bash
# Sets up and runs every test: a Release build and an ASan+UBSan build, each through CTest, then the fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
# Never let a test fall back to the EC2 metadata address: tests run on loopback only.
export AWS_EC2_METADATA_DISABLED=true
# A skipped test fails its suite here (tests/integration/run_suite.py): every server a test needs is started by
# the test itself, so a skip means a suite stopped running.
export MEDIAGATE_NO_SKIP=1
jobs=$(nproc)
status=0
for variant in release asan; do
  dir=build-test-$variant
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
  [ "$variant" = asan ] && flags=(-DCMAKE_BUILD_TYPE=Debug -DMEDIAGATE_SANITIZE=ON -DMEDIAGATE_BENCH=OFF)
  echo "== $variant build"
  cmake -S . -B "$dir" "${flags[@]}" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== $variant tests"
  # Sanitizer runs skip the browser and benchmark-sized tests (label slow); they exercise the same code paths.
  exclude=()
  [ "$variant" = asan ] && exclude=(-LE browser)
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" "${exclude[@]}" || status=1
done
# The libFuzzer targets (fuzz/, clang-16, ASan+UBSan), 15 s each on their seed corpus: a crash fails the run.
echo "== fuzz build"
cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++-16 >/dev/null
cmake --build build-fuzz -j"$jobs"
echo "== fuzz tests"
ctest --test-dir build-fuzz --output-on-failure -j"$jobs" || status=1
exit $status
