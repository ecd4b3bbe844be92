#!/usr/bin/env bash
# The README's "Install" section, run as written: installs a snapshot of the
# source tree into a temporary prefix, then builds and runs app.cpp against it
# with pkg-config and with CMake, and builds it with procpool as a meson
# subproject. Every command it runs as the README's must be a line of
# README.md, and every line of CMakeLists.txt and meson.build here too.
#
# Usage: run_all.sh SOURCE_ROOT VERSION WAY...   WAY: pkg-config, cmake, subproject
# The README's lines are single-quoted on purpose: eval expands them.
# shellcheck disable=SC2016
set -euo pipefail
src=$(cd "$1" && pwd) version=$2
shift 2
here=$src/tests/consumer
readme=$src/README.md
work=$(mktemp -d /tmp/procpool-consumer.XXXXXX)
trap 'rm -rf "$work"' EXIT

die() {
  echo "run_all.sh: $*" >&2
  exit 1
}

in_readme() {  # LINE
  grep -qxF -- "$1" "$readme" || die "README.md lacks the line: $1"
}

readme_run() {  # LINE: a README command, run as it is written there
  in_readme "$1"
  echo "+ $1"
  eval "$1"
}

copy_consumer_file() {  # FILE: into the current folder, once its lines are checked against the README
  local line
  while IFS= read -r line; do
    [[ $line == '#'* ]] || in_readme "$line"
  done <"$here/$1"
  cp "$here/$1" .
}

check_app() {  # PROGRAM [LIBRARY]: runs it; LIBRARY: shared or static, what it must be linked with
  "$1" >app.out
  cat app.out
  grep -qxF "procpool $version ($version)" app.out || die "$1: not the version of meson.build ($version)"
  grep -qxF "1 4 9 16 " app.out || die "$1: wrong map() results"
  grep -qxF "done!" app.out || die "$1: wrong apply() result"
  case ${2:-} in
    shared) readelf -d "$1" | grep -qF "[libprocpool.so.$soversion]" || die "$1 does not need libprocpool.so.$soversion" ;;
    static) ! readelf -d "$1" | grep -qF libprocpool || die "$1 needs libprocpool.so, though linked statically" ;;
  esac
}

IFS=. read -r major minor _ <<<"$version"
soversion=$major
((major == 0)) && soversion=0.$minor

# The working tree as it is (uncommitted changes too), as a git repository of its own.
PROCPOOL=$work/procpool
PREFIX=$work/prefix
mkdir "$PROCPOOL"
tar -C "$src" --exclude='./build*' --exclude=./.git --exclude=__pycache__ -cf - . | tar -C "$PROCPOOL" -xf -
git -C "$PROCPOOL" init -q
git -C "$PROCPOOL" add -A
git -C "$PROCPOOL" -c user.name=procpool -c user.email=procpool@localhost commit -qm snapshot

install_procpool() {
  echo "== install into $PREFIX"
  readme_run 'cd "$PROCPOOL"'
  readme_run 'meson setup build-install --buildtype=release --prefix="$PREFIX" --libdir=lib -Dtests=false -Dbenchmarks=false -Dexamples=false'
  readme_run 'meson install -C build-install'

  # Every header of include/procpool is installed, plus version.hpp; no
  # internals. mpi.hpp comes with procpool-mpi, built only where MPI is found.
  local want got
  want=$( (cd "$src/include" && find procpool -name '*.hpp' ! -name mpi.hpp && echo procpool/version.hpp) | sort)
  if [[ -e $PREFIX/lib/libprocpool_mpi.so ]]; then want=$(printf '%s\n' "$want" procpool/mpi.hpp | sort); fi
  got=$(cd "$PREFIX/include" && find procpool -type f | sort)
  [[ $want == "$got" ]] || die "installed headers differ from include/procpool:
$(diff <(echo "$want") <(echo "$got"))"
  for f in "lib/libprocpool.so" "lib/libprocpool.so.$soversion" "lib/libprocpool.a" lib/pkgconfig/procpool.pc \
    lib/cmake/procpool/procpoolConfig.cmake lib/cmake/procpool/procpoolConfigVersion.cmake; do
    [[ -e $PREFIX/$f ]] || die "$f is not installed"
  done
}

way_pkg_config() {
  echo "== pkg-config"
  mkdir "$work/pkg-config" && cd "$work/pkg-config"
  cp "$here/app.cpp" .
  readme_run 'export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig'
  [[ $(pkg-config --modversion procpool) == "$version" ]] || die "procpool.pc's version is not $version"
  readme_run 'c++ -std=c++20 app.cpp -o app $(pkg-config --cflags --libs procpool) -Wl,-rpath,"$PREFIX/lib"'
  in_readme './app'
  check_app ./app shared

  # The static library with the private dependencies the .pc lists for it.
  # shellcheck disable=SC2046
  c++ -std=c++20 app.cpp -o app-static $(pkg-config --cflags procpool) \
    $(pkg-config --static --libs procpool | sed 's/-lprocpool\b/-l:libprocpool.a/')
  check_app ./app-static static
}

way_cmake() {
  echo "== CMake"
  mkdir "$work/cmake" && cd "$work/cmake"
  cp "$here/app.cpp" .
  copy_consumer_file CMakeLists.txt
  readme_run 'cmake -S . -B build -DCMAKE_PREFIX_PATH="$PREFIX"'
  readme_run 'cmake --build build'
  in_readme 'build/app'
  check_app build/app shared

  echo "== CMake, static"
  mkdir "$work/cmake-static" && cd "$work/cmake-static"
  cp "$here/app.cpp" "$here/CMakeLists.txt" .
  readme_run 'cmake -S . -B build -DCMAKE_PREFIX_PATH="$PREFIX" -Dprocpool_USE_STATIC_LIBS=ON'
  readme_run 'cmake --build build'
  check_app build/app static

  # The version file: the same minor version is compatible while the major is 0, then the same major.
  echo "== CMake, version file"
  mkdir "$work/cmake-version" && cd "$work/cmake-version"
  printf '%s\n' 'cmake_minimum_required(VERSION 3.16)' 'project(version CXX)' \
    'find_package(procpool ${WANT} QUIET)' 'message(STATUS "found=${procpool_FOUND} version=${procpool_VERSION}")' >CMakeLists.txt
  local cases=("$major.$minor:1" "$major.$minor.0:1" "$major.$((minor + 1)):0" "$((major + 1)).0:0") want expect
  if ((minor > 0)); then cases+=("$major.$((minor - 1)):$((major > 0 ? 1 : 0))"); fi
  for want in "${cases[@]}"; do
    expect=$([[ ${want#*:} == 1 ]] && echo "found=1 version=$version" || echo "found=0")
    rm -rf build
    cmake -S . -B build -DCMAKE_PREFIX_PATH="$PREFIX" -DWANT="${want%:*}" >log 2>&1 || { cat log; die "cmake failed"; }
    grep -qF -- "-- $expect" log || { cat log; die "find_package(procpool ${want%:*}): expected $expect"; }
    echo "find_package(procpool ${want%:*}): $expect"
  done
}

way_subproject() {
  echo "== meson subproject"
  mkdir "$work/subproject" && cd "$work/subproject"
  cp "$here/app.cpp" .
  copy_consumer_file meson.build
  # No installed procpool in sight: dependency() must fall back to the subproject.
  unset PKG_CONFIG_PATH
  readme_run 'git clone "$PROCPOOL" subprojects/procpool'
  readme_run 'meson setup build'
  readme_run 'meson compile -C build'
  in_readme 'build/app'
  check_app build/app shared
  [[ -e build/subprojects/procpool/libprocpool.so ]] || die "the subproject's library was not built"
  # A subproject builds the library only.
  for d in tests examples benchmarks; do
    [[ ! -e build/subprojects/procpool/$d ]] || die "the subproject built its $d"
  done
}

for way in "$@"; do
  case $way in
    pkg-config | cmake) if [[ ! -e $PREFIX ]]; then (install_procpool); fi ;;
    subproject) ;;
    *) die "unknown way: $way" ;;
  esac
  (way_"${way//-/_}")
done
echo "run_all.sh: OK: $*"
