#!/usr/bin/env bash
# The Debian package, built and installed for real (CTest `package`):
#
#   tests/package/test_package.sh BUILD_DIR VERSION [CPACK]
#
# cpack -G DEB from BUILD_DIR, then dpkg -i: the files, the mediagate user and its directories, the unit
# (systemd-analyze verify, and the hardening options), /usr/bin/mediagate --version; then the unit's ExecStart
# line run by hand as the unit would run it (its User, its EnvironmentFile) — systemd does not run here — until
# /healthz, a media file, the catalog and SIGHUP's log reopening have been checked; then dpkg --purge.
# Needs root (or sudo). It installs into the real system, so runs are serialised with a lock, and a package
# left by an earlier run is purged first: safe to run twice.
set -euo pipefail

build=$(realpath "$1") version=$2 cpack=${3:-cpack}
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

exec 9>/tmp/mediagate-package-test.lock
flock -w 300 9 || fail "another package test holds /tmp/mediagate-package-test.lock"

work=$(mktemp -d /tmp/mediagate-package-XXXXXX)
chmod 755 "$work"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  $sudo dpkg --purge mediagate >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if dpkg-query -W -f='${Status}' mediagate 2>/dev/null | grep -q installed; then
  step "purging a mediagate package left by an earlier run"
  $sudo dpkg --purge mediagate >/dev/null
fi

step "cpack -G DEB"
(cd "$build" && "$cpack" -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack failed"; }
deb=$work/pkg/mediagate_${version}_amd64.deb
[ -f "$deb" ] || fail "no $deb; cpack made: $(ls "$work/pkg")"

step "control fields"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for dep in ffmpeg adduser libc6 libssl3 libsqlite3-0 libstdc++6; do
  [[ ", $depends," == *", $dep"[\ ,]* ]] || fail "Depends lacks $dep"
done
[ "$(dpkg-deb -f "$deb" Package)" = mediagate ] || fail "Package is not mediagate"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Version is not $version"
[ "$(dpkg-deb -f "$deb" Architecture)" = amd64 ] || fail "Architecture is not amd64"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/mediagate/mediagate.conf ||
  fail "/etc/mediagate/mediagate.conf is not a conffile"

step "dpkg -i"
$sudo dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i failed"; }
for f in /usr/bin/mediagate /lib/systemd/system/mediagate.service /etc/mediagate/mediagate.conf \
  /usr/share/man/man1/mediagate.1.gz; do
  [ -f "$f" ] || fail "$f is not installed"
done
[ -x /usr/bin/mediagate ] || fail "/usr/bin/mediagate is not executable"
[ "$(stat -c '%U:%G %a' /etc/mediagate/mediagate.conf)" = "root:mediagate 640" ] ||
  fail "/etc/mediagate/mediagate.conf is $(stat -c '%U:%G %a' /etc/mediagate/mediagate.conf), not root:mediagate 640"
zcat /usr/share/man/man1/mediagate.1.gz | grep -q '^\.SS "mediagate serve"' || fail "the man page lacks serve's options"
zcat /usr/share/man/man1/mediagate.1.gz | grep -q 'MEDIAGATE_STORAGE' || fail "the man page lacks the environment names"

step "the mediagate user"
entry=$(getent passwd mediagate) || fail "no mediagate user"
IFS=: read -r _ _ uid _ _ home shell <<<"$entry"
((uid < 1000)) || fail "mediagate is not a system user (uid $uid)"
[ "$home" = /var/lib/mediagate ] || fail "mediagate's home is $home"
[[ $shell == */nologin || $shell == /bin/false ]] || fail "mediagate has a login shell: $shell"
for dir in /var/lib/mediagate /var/lib/mediagate/media /var/log/mediagate; do
  [ "$(stat -c %U "$dir")" = mediagate ] || fail "$dir is not owned by mediagate"
done

step "the unit"
unit=/lib/systemd/system/mediagate.service
for line in "User=mediagate" "EnvironmentFile=/etc/mediagate/mediagate.conf" 'ExecReload=/bin/kill -HUP $MAINPID' \
  "ProtectSystem=strict" "NoNewPrivileges=yes" "PrivateTmp=yes" "ProtectHome=yes" \
  "ReadWritePaths=/var/lib/mediagate /var/log/mediagate" "WantedBy=multi-user.target"; do
  grep -qxF "$line" "$unit" || fail "$unit lacks '$line'"
done
if command -v systemd-analyze >/dev/null; then
  # verify exits 0 on unknown keys: any line it prints about the unit is a failure.
  out=$(systemd-analyze verify "$unit" 2>&1 || echo "exit status $?")
  if grep -q "mediagate" <<<"$out"; then fail "systemd-analyze verify: $out"; fi
  echo "systemd-analyze verify: clean"
fi

step "/usr/bin/mediagate --version"
got=$(/usr/bin/mediagate --version)
[ "$got" = "mediagate $version" ] || fail "--version printed '$got'"

step "the unit's ExecStart, by hand, as its User with its EnvironmentFile"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
env_file=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
# EnvironmentFile syntax as systemd reads it: NAME=value lines; blank lines and # or ; comments skipped.
env_args=()
while IFS= read -r line || [ -n "$line" ]; do
  [[ -z $line || $line == \#* || $line == \;* ]] && continue
  env_args+=("$line")
done <"$env_file"
# The installed settings, except a free port, and a scan so the catalog is exercised too.
env_args+=(MEDIAGATE_LISTEN=127.0.0.1:0 MEDIAGATE_SCAN_ON_START=true)
ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=duration=1:size=160x120:rate=10 \
  -pix_fmt yuv420p "$work/clip.mp4"
media=$(printf '%s\n' "${env_args[@]}" | sed -n 's/^MEDIAGATE_STORAGE=//p' | tail -1)
[ "$media" = /var/lib/mediagate/media ] || fail "the env file's storage is '$media'"
$sudo install -o mediagate -g mediagate -m 640 "$work/clip.mp4" "$media/package-test.mp4"
read -r -a argv <<<"$exec_start"
# setpriv execs the server in place (runuser would stay as its parent), so $! is the server itself when root.
$sudo setpriv --reuid="$user" --regid="$user" --init-groups -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${env_args[@]}" "${argv[@]}" \
  >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$work/server.out")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/server.err"; fail "ExecStart printed no listening line"; }
base=http://127.0.0.1:$port
[ "$(curl -m 10 -s -o /dev/null -w '%{http_code}' "$base/healthz")" = 200 ] || fail "GET /healthz did not answer 200"
curl -m 10 -sf "$base/media/package-test.mp4" -o "$work/got.mp4" || fail "GET /media/package-test.mp4 failed"
cmp "$work/got.mp4" "$work/clip.mp4" || fail "the served bytes differ from the file"
listed=""
for _ in $(seq 50); do
  listed=$(curl -m 10 -sf "$base/api/media" || true)
  grep -q '"key":"package-test.mp4"' <<<"$listed" && grep -q '"probed":true' <<<"$listed" && break
  sleep 0.2
done
grep -q '"probed":true' <<<"$listed" || fail "the catalog did not list a probed package-test.mp4: $listed"
[ -s /var/log/mediagate/access.log ] || fail "no access log in /var/log/mediagate"
# ExecReload: SIGHUP reopens the access log (logrotate moves the old one away first).
$sudo mv /var/log/mediagate/access.log /var/log/mediagate/access.log.1
server_main=$server_pid
[ -z "$sudo" ] || server_main=$(pgrep -P "$server_pid" -x mediagate)
$sudo kill -HUP "$server_main"
reopened=""
for _ in $(seq 50); do
  curl -m 10 -s -o /dev/null "$base/healthz"
  [ -s /var/log/mediagate/access.log ] && { reopened=1; break; }
  sleep 0.1
done
[ -n "$reopened" ] || fail "SIGHUP did not reopen /var/log/mediagate/access.log"
$sudo kill -TERM "$server_main"
status=0
wait "$server_pid" || status=$?
server_pid=""
[ "$status" = 0 ] || { cat "$work/server.err"; fail "the server exited with status $status on SIGTERM"; }

step "dpkg --purge"
$sudo dpkg --purge mediagate >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg --purge failed"; }
for f in /usr/bin/mediagate /lib/systemd/system/mediagate.service /etc/mediagate/mediagate.conf /var/log/mediagate \
  /var/lib/mediagate/catalog.db; do
  [ ! -e "$f" ] || fail "$f is still there after purge"
done
[ -f "$media/package-test.mp4" ] || fail "purge deleted the operator's media"
$sudo rm -f "$media/package-test.mp4"
$sudo rmdir --ignore-fail-on-non-empty "$media" /var/lib/mediagate 2>/dev/null || true
echo "package test passed"
