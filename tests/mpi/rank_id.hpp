// Which process ran a task, across hosts. A pid names a process on its own
// host only: ranks on two hosts may have the same pid (tests/cluster runs
// these programs one rank per simulated host, each host a pid namespace of
// its own, where pids start again at 1). A random number drawn once per
// process tells ranks apart anywhere (two alike: about 1 in 10^9).
#pragma once

#include <random>

inline int rank_id() {
  static const int id = [] {
    std::random_device random;
    return static_cast<int>(random() & 0x3fffffffu) | 1;
  }();
  return id;
}
