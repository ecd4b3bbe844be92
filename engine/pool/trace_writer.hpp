// PoolOptions::trace_path: a Chrome trace-event JSON file (Perfetto,
// chrome://tracing). Events are collected in memory and written in batches,
// never one write() per task; finish() closes the JSON, so the file is
// valid once the pool has joined. Format: the "JSON Array/Object Format" of
// Google's Trace Event Format document: "M" names the pool and each worker
// track (tid = the worker's pid), "X" is a task's run, "b"/"e" (async, by
// task id) its wait in the queue, "i" a worker's start or end.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "engine/sys/unique_fd.hpp"

namespace procpool::detail {

class TraceWriter {
 public:
  // Creates or truncates `path`; `origin_ns` (CLOCK_MONOTONIC) is the
  // trace's time 0. Throws Error naming the path and why it cannot be opened.
  TraceWriter(const std::string& path, std::int64_t origin_ns);
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;
  ~TraceWriter() { finish(); }

  // A worker started in `slot`: its track's name and a start marker.
  void worker_started(int slot, pid_t pid, std::int64_t now_ns);
  // A worker ended, with its wait status.
  void worker_ended(int slot, pid_t pid, int status, std::int64_t now_ns);
  // A task's wait in the queue and its run on worker `pid`; `lost`: the
  // worker died while running it, at `ended_ns`.
  void task(std::uint64_t id, pid_t pid, std::int64_t submitted_ns, std::int64_t started_ns, std::int64_t ended_ns,
            bool lost);
  // Writes what is left and ends the JSON; later events are dropped. Never throws.
  void finish() noexcept;

 private:
  void add(std::string_view event);  // under mutex_
  void flush_locked() noexcept;
  std::string timestamp(std::int64_t ns) const;
  // Nanoseconds since the trace's time 0 (never negative).
  std::int64_t since(std::int64_t ns) const noexcept { return ns > origin_ns_ ? ns - origin_ns_ : 0; }

  const std::int64_t origin_ns_;
  const pid_t pool_pid_;
  std::mutex mutex_;  // a leaf (see pool_core.hpp): the result thread and pumpers write here
  UniqueFd fd_;
  std::string buffer_;
  bool first_ = true;
};

}  // namespace procpool::detail
