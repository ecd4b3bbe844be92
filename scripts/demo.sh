#!/usr/bin/env bash
# Builds procpool, runs the quick-start example, a long map with a progress bar
# (drawn in place on a terminal), and a short throughput report
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
echo "== a long map with a progress bar (examples/progress_bar.cpp: 4000 tasks of ~1 ms on 2 workers)"
"$build/examples/progress_bar"
echo
echo "== throughput report (2 workers; short run)"
/usr/bin/python3 benchmarks/compare.py --build-dir "$build" --quick
