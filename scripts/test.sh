#!/usr/bin/env bash
# Builds procpool and runs every test: the whole suite on a normal g++ build,
# then the unit and pool suites on a clang++-16 build, under ASan+UBSan and
# under TSan. The README's test command. `--quick` skips the clang and
# sanitizer builds (for a fast local loop).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# Warnings are errors here (and so in CI), never in meson.build: a user's
# compiler or buildtype must not break their build. --reconfigure applies the
# option to a build folder configured before without it.
configure() {  # DIR [meson options...]
  local dir=$1
  shift
  if [[ -d $dir ]]; then
    meson setup --reconfigure "$dir" -Dwerror=true "$@" >/dev/null
  else
    meson setup "$dir" -Dwerror=true "$@" >/dev/null
  fi
  ninja -C "$dir"
}

configure build -Dtests=true
# Every suite, the cluster suite too (MPI across simulated hosts: root only,
# reported as skipped elsewhere); its tests and the mpi suite's run alone.
meson test -C build --print-errorlogs
builds=(build)

if [[ ${1:-} != --quick ]]; then
  # The whole tree with clang too, so neither compiler's warnings reach a user;
  # clang-16, as Debian 12's clang-14 cannot compile libstdc++ 12's range views.
  CXX=clang++-16 configure build-clang -Dtests=true
  meson test -C build-clang --suite unit --suite pool --print-errorlogs
  builds+=(build-clang)

  # The sanitizer builds leave benchmarks, examples and MPI out: they test nothing new
  # there, and Open MPI is noisy under the sanitizers (its tests are the plain build's "mpi" suite).
  for sanitizer in address,undefined thread; do
    dir=build-${sanitizer%%,*}
    configure "$dir" -Dtests=true -Dbenchmarks=false -Dexamples=false -Dmpi=disabled -Db_sanitize="$sanitizer" -Db_lundef=false
    # The sanitizers slow the chaos and large-payload tests several times over.
    meson test -C "$dir" --suite unit --suite pool --print-errorlogs --timeout-multiplier 3
    builds+=("$dir")
  done
fi
scripts/test_summary.py "${builds[@]}"
