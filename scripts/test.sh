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
# CI keeps only the end of the output: each tree's failed tests are listed again there, with a total.
summary=()
failed_logs=()
passed=0
failed=0
# record DIR NAME: adds the last ctest run in DIR to the summary.
record() {
  local log="$1/Testing/Temporary/LastTest.log" failures="$1/Testing/Temporary/LastTestsFailed.log" n_fail=0 n_all
  n_all=$(grep -c '^[0-9]*/[0-9]* Testing: ' "$log" 2>/dev/null || true)
  [ -s "$failures" ] && n_fail=$(wc -l <"$failures")
  passed=$((passed + n_all - n_fail))
  failed=$((failed + n_fail))
  summary+=("$2: $((n_all - n_fail)) passed, $n_fail failed")
  if [ -s "$failures" ]; then
    while read -r line; do
      summary+=("  failed: ${line#*:}")
      failed_logs+=("$log" "${line#*:}")
    done <"$failures"
  fi
}
# run_tests DIR NAME [CTEST ARGS...]: the tests of build DIR, recorded as NAME.
run_tests() {
  local dir=$1 name=$2
  shift 2
  rm -f "$dir/Testing/Temporary/LastTestsFailed.log"  # (ctest leaves an earlier run's list when all pass)
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" "$@" || status=1
  record "$dir" "$name"
}
# tail_of LOG NAME: the end of what test NAME printed, from ctest's log.
tail_of() {
  awk -v name="$2" '/^[0-9]+\/[0-9]+ Testing: / && substr($0, index($0, " Testing: ") + 10) == name {on = 1; next}
                    on && /^<end of output>/ {exit}
                    on {print}' "$1" | tail -n 40
}
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
    run_tests "$dir" "$variant" "${exclude[@]}"
done
# The libFuzzer targets (fuzz/, clang-16, ASan+UBSan), 15 s each on their seed corpus: a crash fails the run.
echo "== fuzz build"
cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++-16 >/dev/null
cmake --build build-fuzz -j"$jobs"
echo "== fuzz tests"
run_tests build-fuzz fuzz
for ((i = 0; i < ${#failed_logs[@]}; i += 2)); do
  echo "== the end of ${failed_logs[i + 1]}'s output"
  tail_of "${failed_logs[i]}" "${failed_logs[i + 1]}"
done
echo "== summary"
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
exit $status
