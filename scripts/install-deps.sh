#!/usr/bin/env bash
# Installs the Debian 12 packages mediagate needs. Usage: scripts/install-deps.sh [run|test|bench]...
# Safe to run again: it only calls apt-get when a package is missing.
set -euo pipefail

build=(cmake g++ make pkg-config help2man dpkg-dev libboost1.81-dev libboost-json1.81-dev libcli11-dev libspdlog-dev
       libfmt-dev libpugixml-dev libmagic-dev zlib1g-dev libsqlite3-dev libpq-dev libssl-dev libnghttp2-dev libgoogle-perftools-dev ca-certificates ffmpeg curl)
test=(clang-format openssl haproxy libgtest-dev libgmock-dev googletest libbenchmark-dev python3 python3-botocore
      ceph-mon ceph-osd radosgw ceph-common chromium firefox-esr libavcodec59 procps psmisc
      clang-16 libfuzzer-16-dev libclang-rt-16-dev llvm-16 postgresql-15 python3-h2)
bench=(nginx-light libnginx-mod-http-lua haproxy wrk nghttp2-client libbenchmark-dev python3 valgrind linux-perf)

wanted=("${build[@]}")
for group in "$@"; do
  case "$group" in
    run) ;;
    test) wanted+=("${test[@]}") ;;
    bench) wanted+=("${bench[@]}" "${test[@]}") ;;
    *) echo "unknown group: $group" >&2; exit 2 ;;
  esac
done

# The build installs the page's npm packages (src/ui/npm) and the browser tests theirs (tests/e2e) with npm ci:
# Debian's nodejs and npm, unless a node and npm are on PATH.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  wanted+=(nodejs npm)
fi

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
