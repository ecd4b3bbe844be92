#!/usr/bin/env bash
# Builds an out-of-tree program against the build folder with nothing but
# `pkg-config --cflags --libs procpool` (the uninstalled .pc), then runs it.
# Usage: pkg_config.sh BUILD_ROOT SOURCE CXX...
set -euo pipefail
build_root=$1 source=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PKG_CONFIG_PATH="$build_root/meson-uninstalled"
# shellcheck disable=SC2046
"$@" -std=c++20 -o "$work/consumer" "$source" $(pkg-config --cflags --libs procpool)
LD_LIBRARY_PATH="$build_root" "$work/consumer" | tee "$work/out"
grep -q "^0 1 4 9 16 25 36 49 64 81 $" "$work/out"
