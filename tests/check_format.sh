#!/usr/bin/env bash
# Fails when a C++ file of the repository differs from what clang-format 14 (Debian 12's, the repo's
# .clang-format) makes of it: run `clang-format -i` on the files it names.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.hpp')
clang-format --version
clang-format --dry-run --Werror "${files[@]}"
echo "format: ${#files[@]} files as clang-format makes them"
