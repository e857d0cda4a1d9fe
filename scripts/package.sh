#!/usr/bin/env bash
# Builds the Debian package: a Release build in build-package/, then cpack -G DEB.
#
#   scripts/package.sh            ->  build-package/mediagate_<version>_amd64.deb
#   sudo dpkg -i build-package/mediagate_*_amd64.deb && sudo systemctl start mediagate
#
# Settings: /etc/mediagate/mediagate.conf; the unit: /lib/systemd/system/mediagate.service; man mediagate.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
dir=build-package
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DMEDIAGATE_TESTS=OFF -DMEDIAGATE_BENCH=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target mediagate mediagate_man
(cd "$dir" && cpack -G DEB)
ls -l "$dir"/mediagate_*_amd64.deb
