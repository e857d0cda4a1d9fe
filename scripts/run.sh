#!/usr/bin/env bash
# Sets up and runs mediagate with its embedded default storage (./media) and sample media.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh run
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMEDIAGATE_TESTS=OFF -DMEDIAGATE_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)" --target mediagate
scripts/make-sample-media.sh media
echo "open http://127.0.0.1:8080/"
exec build/mediagate serve --listen 127.0.0.1:8080 --storage media "$@"
