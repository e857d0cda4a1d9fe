#!/usr/bin/env bash
# Installs the npm packages the web page embeds (src/ui/npm: hls.js, pinned by package-lock.json) into DIR with
# `npm ci`, only when the lock file changed since the last install. Run by CMake when it configures a build.
# Usage: scripts/ui-packages.sh DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/../src/ui/npm" && pwd)
dir=${1:?usage: ui-packages.sh DIR}
mkdir -p "$dir"
if ! cmp -s "$src/package-lock.json" "$dir/node_modules/.mediagate-lock.json" 2>/dev/null; then
  command -v npm >/dev/null || { echo "npm is not installed: scripts/install-deps.sh" >&2; exit 1; }
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp "$src/package-lock.json" "$dir/node_modules/.mediagate-lock.json"
fi
