#!/usr/bin/env bash
# A throw-away PostgreSQL 15 server for tests and benchmarks (the catalog of several mediagate nodes).
#
#   scripts/postgres.sh start DIR         fresh cluster under DIR on a free port; writes DIR/env; prints the URL
#   scripts/postgres.sh stop DIR          stops it at once (pg_ctl stop -m immediate; idempotent)
#   scripts/postgres.sh restart DIR       starts a stopped cluster again, on the same port, with its data
#   scripts/postgres.sh createdb DIR NAME a new empty database; prints its URL
#   scripts/postgres.sh psql DIR [ARGS]   psql on the cluster's database `mediagate`
#
# Everything lives under DIR (data, socket directory, log); it listens on 127.0.0.1 only, trusts local
# connections (no password) and starts nothing at boot. Needs Debian's postgresql-15. Run as root, the server
# runs as the `postgres` user (initdb refuses root), which owns DIR/data; run as another user, as that user.
#
# DIR/env holds MEDIAGATE_TEST_PG_URL=postgres://mediagate@127.0.0.1:PORT/mediagate and PG_PORT, PG_SOCKET.
#
# Environment knobs:
#   PG_PORT=N   the port (default: a free port picked at run time)
set -euo pipefail

readonly BIN=/usr/lib/postgresql/15/bin
readonly PY=/usr/bin/python3

die() {
  echo "postgres.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Small and fast: no fsync (a test cluster need not survive a machine crash), but every commit is written before
# it returns (synchronous_commit stays on), so `stop` (immediate) then `restart` loses nothing, as a crash of
# PostgreSQL alone would not.
pg_start() {
  local port=$1
  as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/run/postgres.log" -w -t 60 \
    -o "-p $port -k $DIR/run -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200" \
    start >"$DIR/pg_ctl.log" 2>&1 || die "pg_ctl start failed: $(tail -20 "$DIR/run/postgres.log" 2>/dev/null)"
}

cmd_start() {
  [[ -x $BIN/initdb ]] || die "$BIN/initdb not found: install postgresql-15 (scripts/install-deps.sh test)"
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  [[ ! -e $DIR/data ]] || die "$DIR/data exists: stop and remove it first"
  local port=${PG_PORT:-$(free_port)}
  mkdir -p "$DIR/data" "$DIR/run"
  if ((EUID == 0)); then
    # The server's user must reach DIR: the parents of a mktemp directory are usually world-traversable.
    chown postgres: "$DIR/data" "$DIR/run"
    chmod 755 "$DIR"
  fi
  as_owner "$BIN/initdb" -D "$DIR/data" -U mediagate --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    >"$DIR/initdb.log" 2>&1 || die "initdb failed: $(tail -20 "$DIR/initdb.log")"
  pg_start "$port"
  as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" -U mediagate mediagate ||
    die "createdb failed: $(tail -20 "$DIR/run/postgres.log")"
  cat >"$DIR/env" <<EOF
MEDIAGATE_TEST_PG_URL=postgres://mediagate@127.0.0.1:$port/mediagate
PG_PORT=$port
PG_SOCKET=$DIR/run
EOF
  echo "postgres://mediagate@127.0.0.1:$port/mediagate"
}

cmd_stop() {
  [[ -d $DIR/data ]] || return 0
  [[ -f $DIR/data/postmaster.pid ]] || return 0
  as_owner "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
}

port_of() {
  [[ -f $DIR/env ]] || die "$DIR/env not found: start the cluster first"
  sed -n 's/^PG_PORT=//p' "$DIR/env"
}

cmd_restart() {
  DIR=$(cd "$DIR" && pwd)
  pg_start "$(port_of)"
}

cmd_createdb() {
  local name=$1 port
  port=$(port_of)
  [[ $name =~ ^[a-z_][a-z0-9_]*$ ]] || die "database names here are [a-z_][a-z0-9_]*: $name"
  "$BIN/createdb" -h 127.0.0.1 -p "$port" -U mediagate "$name" || die "createdb $name failed"
  echo "postgres://mediagate@127.0.0.1:$port/$name"
}

[[ $# -ge 2 ]] || usage
command=$1
DIR=$2
shift 2
case "$command" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_restart ;;
  createdb)
    [[ $# -eq 1 ]] || usage
    cmd_createdb "$1"
    ;;
  psql) exec "$BIN/psql" -h 127.0.0.1 -p "$(port_of)" -U mediagate -d mediagate "$@" ;;
  *) usage ;;
esac
