#!/usr/bin/env bash
# Builds procpool, runs the quick-start example and a short throughput report
# beside Python's multiprocessing.Pool and a thread pool. The README's main command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build=${BUILD_DIR:-build}
[[ -d $build ]] || meson setup "$build" >/dev/null
ninja -C "$build" >/dev/null
echo "== quick-start (examples/quickstart.cpp)"
"$build/examples/quickstart"
echo
echo "== throughput report (2 workers; short run)"
/usr/bin/python3 benchmarks/compare.py --build-dir "$build" --quick
