// bench_support.hpp - what bm_pool.cpp, bm_thread_pool.cpp and bm_data.cpp
// share besides the workloads: the quick switch, the CPU-bound task, the echo
// sizes and payloads, and readings from the kernel (CPU time, page faults and
// PSS of this process and of the processes it started).
// python_pool.py measures its side the same way.
#pragma once

#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace procpool_bench {

// compare.py --quick sets PROCPOOL_BENCH_QUICK=1: figures that run a fixed
// amount of work (idle time, task count) rather than a timed loop shrink it.
// An environment variable, not a flag, so BENCHMARK_MAIN's parser stays as is.
inline bool quick() {
  const char* v = std::getenv("PROCPOOL_BENCH_QUICK");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

// The CPU-bound task: 10,000,000 xorshift64 steps, about 17 ms on the 2-core
// EPYC VM. A dependent chain on a seed known only at run time, so the
// compiler can neither fold nor vectorize it. Never inlined: inlined into the
// serial loop, two calls' chains were interleaved on one core, which made the
// serial baseline twice as fast as one task alone and every speed-up look halved.
constexpr std::uint32_t cpu_task_steps = 10'000'000;
constexpr int cpu_tasks = 16;  // per iteration: 8 per worker on 2 workers

[[gnu::noinline]] inline std::uint64_t cpu_task(std::uint64_t seed) {
  std::uint64_t x = seed | 1;  // xorshift stays at 0 from 0
  for (std::uint32_t i = 0; i < cpu_task_steps; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

// The serial baseline both programs time: one iteration's cpu_task()s, one
// after the other on this thread.
inline std::uint64_t run_cpu_tasks_serially() {
  std::uint64_t sum = 0;
  for (int i = 0; i < cpu_tasks; ++i) sum += cpu_task(static_cast<std::uint64_t>(i));
  return sum;
}

// The echo sizes, one benchmark per size: 1 KiB, 64 KiB, 1 MiB, 16 MiB,
// 256 MiB (python_pool.py's ECHO_SIZES). The 16 MiB one carries the issue's
// targets; compare.py plots bytes/s against size for the whole range.
inline constexpr std::int64_t echo_sizes_list[] = {
    std::int64_t{1} << 10, std::int64_t{64} << 10, std::int64_t{1} << 20,
    std::int64_t{16} << 20, std::int64_t{256} << 20};

// The batch sizes of the throughput-at-scale figures: N tasks submitted, then
// all collected, for N = 1,000 .. 10,000,000.
inline void batch_sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n = 1'000; n <= 10'000'000; n *= 10) b->Arg(n);
}

// The worker counts of the CPU-bound speed-up figures.
inline void cpu_worker_counts(benchmark::internal::Benchmark* b) {
  for (const std::int64_t workers : {1, 2, 4}) b->Arg(workers);
}

inline void echo_sizes(benchmark::internal::Benchmark* b) {
  for (const std::int64_t bytes : echo_sizes_list) b->Arg(bytes);
}

// An echo payload: `bytes` bytes, none of them left untouched (every page
// is written, so it is resident before the clocks start).
inline std::vector<char> pattern(std::size_t bytes) {
  std::vector<char> v(bytes);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<char>(i * 131);
  return v;
}

// Whether an echo came back whole: its size, and bytes at both ends and in
// the middle (comparing all of it would double the work being timed).
inline bool same_echo(const std::vector<char>& back, const std::vector<char>& sent) {
  if (back.size() != sent.size()) return false;
  if (sent.empty()) return true;
  for (const std::size_t i : {std::size_t{0}, sent.size() / 2, sent.size() - 1})
    if (back[i] != sent[i]) return false;
  return true;
}

// Minor page faults of this process since construction (getrusage's
// ru_minflt): whether the heap handed back fresh pages (one fault per 4 KiB)
// or reused warm ones; the check that GLIBC_TUNABLES took effect.
class MinorFaults {
 public:
  MinorFaults() : start_(now()) {}
  double per(std::int64_t iterations) const {
    return iterations > 0 ? static_cast<double>(now() - start_) / static_cast<double>(iterations) : 0.0;
  }

 private:
  static long now() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
  }
  long start_;
};

// The parent pid of `pid` from /proc/<pid>/stat, or -1 if it has gone.
inline pid_t parent_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  const auto comm_end = line.rfind(')');  // the name may hold spaces and ')'
  if (comm_end == std::string::npos) return -1;
  std::istringstream rest(line.substr(comm_end + 1));
  char state = 0;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return rest ? ppid : -1;
}

// Every live descendant of `root` (children, grandchildren, ...), from one
// scan of /proc: procpool's workers are the zygote's children, not ours.
inline std::vector<pid_t> descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;  // ppid -> pid
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(name));
    const pid_t ppid = parent_of(pid);
    if (ppid > 0) children.emplace(ppid, pid);
  }
  std::vector<pid_t> found;
  std::vector<pid_t> todo{root};
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    for (auto [it, end] = children.equal_range(p); it != end; ++it) {
      found.push_back(it->second);
      todo.push_back(it->second);
    }
  }
  return found;
}

// CPU seconds (user + system, all threads, finished ones included) used so
// far by `pid`, 0 meaning this process; -1 if it has gone. The kernel's
// per-process CPU clock: nanoseconds, where /proc/<pid>/stat counts 10 ms ticks.
inline double cpu_seconds(pid_t pid) {
  clockid_t clock = CLOCK_PROCESS_CPUTIME_ID;
  if (pid != 0 && ::clock_getcpuclockid(pid, &clock) != 0) return -1;
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return -1;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU seconds of this process and every descendant alive now.
inline double tree_cpu_seconds() {
  double total = cpu_seconds(0);
  for (const pid_t pid : descendants(::getpid())) {
    const double s = cpu_seconds(pid);
    if (s > 0) total += s;
  }
  return total;
}

// The proportional set size of `pid` in KiB (0: this process), from
// /proc/<pid>/smaps_rollup; -1 if unreadable.
inline double pss_kib(pid_t pid) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/smaps_rollup")
                            : "/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string key;
  double kib = 0;
  while (in >> key) {
    if (key == "Pss:" && in >> kib) return kib;
    in.ignore(1 << 16, '\n');
  }
  return -1;
}

// PSS in KiB of this process and every descendant alive now: for a procpool
// Pool, parent + zygote + workers.
inline double tree_pss_kib() {
  double total = pss_kib(0);
  for (const pid_t pid : descendants(::getpid())) {
    const double kib = pss_kib(pid);
    if (kib > 0) total += kib;
  }
  return total;
}

}  // namespace procpool_bench
