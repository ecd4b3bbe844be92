// Seeing inside a pool: PoolOptions::trace_path writes a Chrome trace of its
// work, Pool::stats() counts it. Two workers run 80 short tasks; one more
// task crashes its worker, which the trace shows as a death and a new start.
//
//   pool_trace [trace.json]
//
// Then open the file at https://ui.perfetto.dev ("Open trace file") or in
// chrome://tracing ("Load"): one track per worker with each task's run, and
// the tasks' waits in the queue.
#include <procpool/procpool.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

int work(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

int crash(int) {
  std::raise(SIGKILL);  // as a segfault or the OOM killer would end it
  return 0;
}

double ms(std::chrono::nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  const std::string path = argc > 1 ? argv[1] : "pool_trace.json";
  {
    procpool::PoolOptions options;
    options.processes = 2;
    options.trace_path = path;  // written as the pool runs, complete once it has joined
    procpool::Pool pool(options);
    std::vector<procpool::AsyncResult<int>> results;
    for (int i = 0; i < 40; ++i) results.push_back(pool.apply_async(work, 1 + i % 5));
    auto crashed = pool.apply_async(crash, 0);
    for (int i = 0; i < 40; ++i) results.push_back(pool.apply_async(work, 1 + i % 5));
    for (auto& r : results) r.get();
    try {
      crashed.get();
    } catch (const procpool::WorkerLost& e) {
      std::cout << "WorkerLost: " << e.what() << '\n';
    }

    const procpool::PoolStats s = pool.stats();
    std::cout << "tasks: " << s.submitted << " submitted, " << s.completed << " completed, " << s.failed
              << " failed, " << s.cancelled << " cancelled\n";
    std::cout << "workers replaced: " << s.workers_replaced << '\n';
    for (const procpool::WorkerStats& w : s.workers) {
      std::cout << "worker " << w.slot << ": pid " << w.pid << ", " << w.tasks_done << " tasks, "
                << w.rss_bytes / 1024 << " KiB resident, " << w.cpu_seconds << " s CPU\n";
    }
    std::cout << "queue wait: p50 " << ms(s.queue_wait.p50) << " ms, p99 " << ms(s.queue_wait.p99) << " ms\n";
    std::cout << "run time: p50 " << ms(s.run_time.p50) << " ms, p99 " << ms(s.run_time.p99) << " ms (over "
              << s.run_time.samples << " tasks)\n";
  }  // the pool joins: the trace file is complete
  std::cout << "trace: " << path << " (open it at https://ui.perfetto.dev or chrome://tracing)\n";
}
