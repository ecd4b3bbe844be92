#!/usr/bin/env bash
# Builds procpool and runs every test suite. The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build=${BUILD_DIR:-build}
if [[ -d $build ]]; then
  meson setup --reconfigure "$build" -Dtests=true >/dev/null
else
  meson setup "$build" -Dtests=true >/dev/null
fi
ninja -C "$build"
meson test -C "$build" --print-errorlogs
