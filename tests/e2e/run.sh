#!/usr/bin/env bash
# Runs the browser tests: installs the pinned npm packages (npm ci, from package-lock.json) into WORKDIR,
# copies the tests and their helpers.mjs there and runs them with node's test runner. Usage: run.sh WORKDIR
# Needs MEDIAGATE_BIN; screenshots go to WORKDIR (or MEDIAGATE_E2E_OUT).
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
work=${1:?usage: run.sh WORKDIR}
mkdir -p "$work"
command -v node >/dev/null || { echo "node is not installed: scripts/install-deps.sh test" >&2; exit 1; }
# npm ci only when the lock file changed since the last install: reruns start at once.
if ! cmp -s "$src/package-lock.json" "$work/node_modules/.mediagate-lock.json" 2>/dev/null; then
  cp "$src/package.json" "$src/package-lock.json" "$work/"
  (cd "$work" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp "$src/package-lock.json" "$work/node_modules/.mediagate-lock.json"
fi
cp "$src"/*.mjs "$work/"
export MEDIAGATE_E2E_OUT=${MEDIAGATE_E2E_OUT:-$work}
# s3.test.mjs starts its own radosgw with this script (needs the ceph packages and root, as the radosgw suites).
export MEDIAGATE_RADOSGW_SH=${MEDIAGATE_RADOSGW_SH:-$(cd "$src/../../scripts" && pwd)/radosgw.sh}
cd "$work"
exec node --test ./*.test.mjs
