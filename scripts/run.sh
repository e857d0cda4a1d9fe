#!/usr/bin/env bash
# Sets up and runs mediagate with its embedded default storage (./media) and sample media.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh run
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMEDIAGATE_TESTS=OFF -DMEDIAGATE_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)" --target mediagate
scripts/make-sample-media.sh media
# Uploads from the page need the admin token: MEDIAGATE_ADMIN_TOKEN if set, else a fresh one printed here.
export MEDIAGATE_ADMIN_TOKEN=${MEDIAGATE_ADMIN_TOKEN:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}
echo "open http://127.0.0.1:8080/   (admin token for uploads: $MEDIAGATE_ADMIN_TOKEN)"
exec build/mediagate serve --listen 127.0.0.1:8080 --storage media --catalog sqlite:mediagate.db --scan-on-start \
  --cache-dir .cache/slices --cache-size 2GiB "$@"
