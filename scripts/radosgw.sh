#!/usr/bin/env bash
# A one-host Ceph cluster (one monitor, one memstore OSD, one RADOS Gateway) for tests and benchmarks.
#
#   scripts/radosgw.sh start DIR        fresh cluster under DIR; writes DIR/env; prints the endpoint
#   scripts/radosgw.sh stop DIR         stops every daemon of DIR (idempotent)
#   scripts/radosgw.sh restart-rgw DIR  restarts radosgw only, on the same port (data stays: the OSD runs on)
#   scripts/radosgw.sh kill-rgw DIR     kills radosgw only (SIGKILL), to test an endpoint that went away
#   scripts/radosgw.sh status DIR       prints which daemons are alive
#
# Everything lives under DIR: ceph.conf, keyring, mon and osd data, admin sockets, pid files and logs
# (DIR/log/*.log, DIR/log/*.out). No mgr, no systemd, nothing outside DIR, only 127.0.0.1.
# Needs: ceph-mon ceph-osd radosgw ceph-common (Debian 12); runs as root.
#
# Environment knobs:
#   RGW_PORT=N            radosgw port (default: a free port picked at run time)
#   RGW_MEMSTORE_BYTES=N  capacity the memstore OSD reports (default 8 GiB; RAM is used only for stored data)
#   RGW_DEBUG=N           radosgw log level (default 1: one line per request; 0 for benchmarks)
#   RGW_START_TIMEOUT=N   seconds to wait for each step (default 60)
#   RGW_SSL_CERT=PEM RGW_SSL_KEY=PEM  also serve HTTPS with this certificate (a test CA's: tests/integration/
#                         tlsutil.py) on RGW_SSL_PORT (default: a free port); DIR/env then has RGW_HTTPS_URL
#   RGW_DNS_NAME=NAME     `rgw dns name`: virtual-hosted addressing (BUCKET.NAME) beside path style
set -euo pipefail

readonly ACCESS_KEY=mediagateaccess
readonly SECRET_KEY=mediagatesecret0123456789
readonly RGW_NAME=client.rgw.gw
readonly PY=/usr/bin/python3

# Messages go to fd 3, a copy of the real stderr, so that they show even from inside a silenced wait_for.
exec 3>&2
die() {
  echo "radosgw.sh: $*" >&3
  exit 1
}

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Prints a TCP port that is free on 127.0.0.1 right now. The kernel picks it, so parallel runs do not collide
# (a small window remains between this call and the daemon's bind; cmd_start checks the daemons came up).
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Fails if something listens on 127.0.0.1:PORT already: radosgw would exit, and the other server would answer
# our readiness probe in its place.
port_is_free() {
  "$PY" -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

# Is PID alive and one of our ceph daemons (guards against a recycled pid)?
is_our_daemon() {
  local pid=$1
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  [[ $cmdline =~ ^(ceph-mon|ceph-osd|radosgw)\  && $cmdline == *" -c $DIR/ceph.conf "* ]]
}

# Is PID a live process (not a zombie)? Unlike is_our_daemon, this also holds for a child of ours that has
# not reached its exec yet.
is_running() {
  local state
  state=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

# Stops the daemon whose pid file is DIR/run/NAME.pid: SIGTERM, then SIGKILL after 10 s.
stop_daemon() {
  local name=$1 signal=${2:-TERM} pidfile="$DIR/run/$1.pid" pid
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if is_our_daemon "$pid"; then
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      is_our_daemon "$pid" || break
      sleep 0.1
    done
    if is_our_daemon "$pid"; then
      echo "radosgw.sh: $name ($pid) ignored SIG$signal for 10 s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      while is_our_daemon "$pid"; do sleep 0.05; done
    fi
  fi
  rm -f "$pidfile"
}

# Runs a daemon in the foreground of its own session, in the background of this script, so that its pid is
# known exactly and it survives this script. stdout/stderr go to DIR/log/NAME.out.
launch() {
  local name=$1
  shift
  # Close every inherited descriptor above stderr first: a daemon holding the caller's pipe open would keep
  # `$(scripts/radosgw.sh start ...)` or a captured subprocess waiting after this script has finished.
  setsid bash -c 'for fd in /proc/self/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null
exec "$@"' bash "$@" -f -c "$DIR/ceph.conf" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  echo $! >"$DIR/run/$name.pid"
}

ceph_cli() {
  timeout "$TIMEOUT" ceph -c "$DIR/ceph.conf" -n client.admin --connect-timeout "$TIMEOUT" "$@"
}

# Retries COMMAND every 50 ms until it succeeds or TIMEOUT seconds pass; DESCRIPTION names it in the error.
wait_for() {
  local description=$1
  shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $description (logs: $DIR/log)"
    sleep 0.05
  done
}

# Succeeds once radosgw answers HTTP on PORT; gives up at once if radosgw has exited (e.g. the port was taken).
rgw_ready() {
  local port=$1
  is_running "$(<"$DIR/run/rgw.pid")" || die "radosgw exited during start-up: see $DIR/log/client.rgw.gw.log"
  rgw_answers "http://127.0.0.1:$port/"
}

rgw_answers() {
  "$PY" - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1).read()
except urllib.error.HTTPError:
    pass  # any HTTP answer means the gateway is serving
EOF
}

write_conf() {
  local fsid=$1 mon_port=$2 rgw_port=$3 ssl_port=${4:-}
  local frontends="beast endpoint=127.0.0.1:$rgw_port"
  [[ -z $ssl_port ]] ||
    frontends+=" ssl_endpoint=127.0.0.1:$ssl_port ssl_certificate=$RGW_SSL_CERT ssl_private_key=$RGW_SSL_KEY"
  cat >"$DIR/ceph.conf" <<EOF
# Generated by scripts/radosgw.sh: a throwaway one-host cluster.
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
mon initial members = a
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$cluster-\$name.asok
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
log to stderr = false
err to stderr = true
# Single-OSD pools.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
# radosgw creates its pools one by one, each waiting for a monitor commit: the default 1 s interval
# makes start-up take ~16 s.
paxos propose interval = 0.05
# A nearly full disk must not stop a test cluster.
mon data avail warn = 2
mon data avail crit = 1
auth allow insecure global id reclaim = false

[mon]
mon data = $DIR/mon/\$cluster-\$id

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${RGW_MEMSTORE_BYTES:-8589934592}
osd crush update on start = true

[$RGW_NAME]
rgw frontends = $frontends
rgw data = $DIR/rgw
debug rgw = ${RGW_DEBUG:-1}
EOF
  if [[ -n ${RGW_DNS_NAME:-} ]]; then echo "rgw dns name = $RGW_DNS_NAME" >>"$DIR/ceph.conf"; fi
}

make_keyring() {
  local keyring="$DIR/keyring"
  ceph-authtool --create-keyring "$keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$keyring" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
  ceph-authtool "$keyring" --gen-key -n "$RGW_NAME" --cap mon 'allow rw' --cap osd 'allow rwx' >/dev/null
  chmod 600 "$keyring"
}

start_rgw() {
  local port=$1
  port_is_free "$port" || die "port 127.0.0.1:$port is taken: radosgw cannot listen there"
  local ssl_port
  ssl_port=$(rgw_ssl_port)
  [[ -z $ssl_port ]] || port_is_free "$ssl_port" || die "port 127.0.0.1:$ssl_port is taken: radosgw cannot serve HTTPS there"
  launch rgw radosgw -n "$RGW_NAME"
}

write_env() {
  local port=$1
  cat >"$DIR/env.tmp" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export RGW_PID=$(<"$DIR/run/rgw.pid")
export MON_PID=$(<"$DIR/run/mon.pid")
export OSD_PID=$(<"$DIR/run/osd.pid")
export CEPH_CONF=$DIR/ceph.conf
EOF
  local ssl_port dns_name
  ssl_port=$(rgw_ssl_port)
  dns_name=$(sed -n 's/^rgw dns name = //p' "$DIR/ceph.conf")
  if [[ -n $ssl_port ]]; then
    printf 'export RGW_SSL_PORT=%s\nexport RGW_HTTPS_URL=https://127.0.0.1:%s\n' "$ssl_port" "$ssl_port" >>"$DIR/env.tmp"
  fi
  if [[ -n $dns_name ]]; then printf 'export RGW_DNS_NAME=%s\n' "$dns_name" >>"$DIR/env.tmp"; fi
  mv "$DIR/env.tmp" "$DIR/env"
}

rgw_port() {
  sed -n 's/^rgw frontends = beast endpoint=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/ceph.conf"
}

rgw_ssl_port() {
  sed -n 's/^rgw frontends = .* ssl_endpoint=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/ceph.conf"
}

cmd_stop() {
  [[ -d $DIR ]] || return 0
  # radosgw first, the OSD next, the monitor last, so no daemon waits on one that is gone.
  stop_daemon rgw
  stop_daemon osd
  stop_daemon mon
}

cmd_start() {
  local t0=${EPOCHREALTIME/[.,]/}
  [[ $(id -u) == 0 ]] || echo "radosgw.sh: warning: not root; ceph daemons may fail to start" >&2
  for tool in ceph-authtool monmaptool ceph-mon ceph-osd radosgw radosgw-admin ceph "$PY"; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common"
  done

  # Safe to run twice: stop what an earlier run left, then start from scratch. Only our own sub-paths are
  # removed, never DIR itself, which may hold other files.
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  cmd_stop
  rm -rf "$DIR/mon" "$DIR/osd" "$DIR/rgw" "$DIR/run" "$DIR/log" "$DIR/keyring" "$DIR/monmap" "$DIR/ceph.conf" "$DIR/env"
  mkdir -p "$DIR/mon/ceph-a" "$DIR/osd/ceph-0" "$DIR/rgw" "$DIR/run" "$DIR/log"
  # A failed start leaves no daemon behind (the logs stay).
  trap cmd_stop EXIT

  local fsid osd_uuid mon_port port
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  mon_port=$(free_port)
  port=${RGW_PORT:-$(free_port)}
  while [[ $port == "$mon_port" ]]; do port=$(free_port); done
  local ssl_port=""
  if [[ -n ${RGW_SSL_CERT:-} ]]; then
    [[ -r $RGW_SSL_CERT && -r ${RGW_SSL_KEY:-} ]] || die "RGW_SSL_CERT and RGW_SSL_KEY must name readable PEM files"
    ssl_port=${RGW_SSL_PORT:-$(free_port)}
    while [[ $ssl_port == "$mon_port" || $ssl_port == "$port" ]]; do ssl_port=$(free_port); done
  fi
  write_conf "$fsid" "$mon_port" "$port" "$ssl_port"
  make_keyring

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$DIR/ceph.conf" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
    >>"$DIR/log/mkfs.out" 2>&1 || die "ceph-mon --mkfs failed: $DIR/log/mkfs.out"
  launch mon ceph-mon -i a

  # Registers osd.0 (its key is already in the monitor's auth database from the keyring).
  ceph_cli osd new "$osd_uuid" 0 >/dev/null 2>>"$DIR/log/ceph-cli.out" ||
    die "monitor did not accept 'osd new' (logs: $DIR/log)"
  ceph-osd -c "$DIR/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.out" 2>&1 ||
    die "ceph-osd --mkfs failed: $DIR/log/mkfs.out"
  launch osd ceph-osd -i 0

  # The user is created before radosgw starts: with a radosgw running, radosgw-admin also notifies it of the
  # change, and waits ~10 s per attempt if that radosgw died (e.g. its port was taken).
  timeout "$TIMEOUT" radosgw-admin -c "$DIR/ceph.conf" -n client.admin user create --uid=mediagate \
    --display-name=mediagate --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
    >>"$DIR/log/radosgw-admin.out" 2>&1 || die "radosgw-admin user create failed: $DIR/log/radosgw-admin.out"
  start_rgw "$port"
  wait_for "radosgw on 127.0.0.1:$port" rgw_ready "$port"
  for name in mon osd rgw; do
    is_our_daemon "$(<"$DIR/run/$name.pid")" || die "$name exited during start-up (logs: $DIR/log)"
  done

  trap - EXIT
  write_env "$port"
  local ms=$(((${EPOCHREALTIME/[.,]/} - t0) / 1000))
  printf 'radosgw.sh: ready in %d.%03d s; source %s/env\n' $((ms / 1000)) $((ms % 1000)) "$DIR" >&2
  echo "http://127.0.0.1:$port"
}

cmd_restart_rgw() {
  [[ -f $DIR/ceph.conf ]] || die "no cluster in $DIR (run start first)"
  local port
  port=$(rgw_port)
  stop_daemon rgw
  start_rgw "$port"
  wait_for "radosgw on 127.0.0.1:$port" rgw_ready "$port"
  write_env "$port"
  echo "http://127.0.0.1:$port"
}

cmd_kill_rgw() {
  [[ -f $DIR/ceph.conf ]] || die "no cluster in $DIR"
  stop_daemon rgw KILL
}

cmd_status() {
  local rc=0
  for name in mon osd rgw; do
    local pid=""
    [[ -f $DIR/run/$name.pid ]] && pid=$(<"$DIR/run/$name.pid")
    if is_our_daemon "$pid"; then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=1; fi
  done
  return $rc
}

[[ $# == 2 ]] || usage
# Only our ceph.conf counts, whatever the caller's environment says.
unset CEPH_ARGS CEPH_CONF
DIR=$2
TIMEOUT=${RGW_START_TIMEOUT:-60}
if [[ -d $DIR ]]; then DIR=$(cd "$DIR" && pwd); fi
case $1 in
start) cmd_start ;;
stop) cmd_stop ;;
restart-rgw) cmd_restart_rgw ;;
kill-rgw) cmd_kill_rgw ;;
status) cmd_status ;;
*) usage ;;
esac
