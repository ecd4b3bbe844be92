#!/usr/bin/env bash
# Installs what procpool needs to build, test and benchmark on Debian 12, skipping
# what is already there. Run as root (or with sudo available).
set -euo pipefail

packages=(
  g++ meson ninja-build pkg-config cmake git doxygen python3
  libboost-dev libcereal-dev doctest-dev libbenchmark-dev
  libdw-dev  # names a crashed worker's stack frames (WorkerLost::backtrace())
  libbz2-dev  # libdw.pc's Libs.private: a static link with pkg-config --static needs -lbz2
  python3-matplotlib redis-server redis-tools libhiredis-dev
  clang libclang-rt-14-dev clang-16
  openmpi-bin libopenmpi-dev python3-mpi4py
  gdb  # run_example.py prints a hung test's stacks with it
  iproute2 util-linux  # scripts/cluster.sh: the cluster suite's simulated hosts (ip netns, nsenter, unshare)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "procpool setup: installing ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
