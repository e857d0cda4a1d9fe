#!/usr/bin/env bash
# Runs a command with a fresh PostgreSQL 15 (scripts/postgres.sh) whose URL is in MEDIAGATE_TEST_PG_URL, and
# MEDIAGATE_TEST_PG_REQUIRED=1 so that the tests fail rather than skip without it; stops and removes the server
# afterwards, whatever the command did. Its exit status is the command's.
#
#   tests/unit/with_postgres.sh COMMAND [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pg=$here/../../scripts/postgres.sh
dir=$(mktemp -d /tmp/mediagate-pg.XXXXXX)
cleanup() {
  "$pg" stop "$dir" || true
  rm -rf "$dir"
}
trap cleanup EXIT
MEDIAGATE_TEST_PG_URL=$("$pg" start "$dir")
export MEDIAGATE_TEST_PG_URL MEDIAGATE_TEST_PG_REQUIRED=1
set +e
"$@"
status=$?
set -e
exit $status
