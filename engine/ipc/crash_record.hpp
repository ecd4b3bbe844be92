// The stack a worker that crashed leaves in its slot for the parent, which
// reads it once the zygote reports the worker reaped.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <sys/types.h>
#include <vector>

namespace procpool::detail {

// Frames kept of a crashed stack, innermost first.
inline constexpr std::size_t crash_frames_max = 64;

// Written once, by the worker's crash handler (engine/pool/crash_handler.cpp)
// with plain stores, then stamped with the worker's pid (release): a record
// counts only for the worker whose pid it carries, and only once stamped. No
// lock: a worker dying half-way leaves an unstamped record, which is ignored.
struct CrashRecord {
  std::atomic<std::int32_t> pid{0};  // 0: no record
  std::int32_t signal = 0;
  std::uint32_t count = 0;  // untrusted: the reader bounds it
  std::uintptr_t frames[crash_frames_max] = {};
};

// The frames the worker `pid`, killed by `signal`, left; none if it recorded
// no crash of that signal (another worker's record, or it died of something
// else before it could re-raise). Clears the record either way, so the
// slot's next worker starts with none. Call after the worker is reaped.
inline std::vector<std::uintptr_t> take_crash_frames(CrashRecord& record, pid_t pid, int signal) {
  std::vector<std::uintptr_t> frames;
  if (pid != 0 && record.pid.load(std::memory_order_acquire) == pid && record.signal == signal) {
    const std::size_t count = std::min<std::size_t>(record.count, crash_frames_max);
    frames.assign(record.frames, record.frames + count);
  }
  record.pid.store(0, std::memory_order_relaxed);
  return frames;
}

}  // namespace procpool::detail
