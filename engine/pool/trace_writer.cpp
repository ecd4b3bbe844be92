#include "engine/pool/trace_writer.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

// Written once this much has been collected (and at the end).
constexpr std::size_t flush_bytes = std::size_t{64} << 10;

std::string cause_of(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) + (name != nullptr ? std::string(" (SIG") + name + ")" : "");
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended (wait status " + std::to_string(status) + ")";
}

}  // namespace

TraceWriter::TraceWriter(const std::string& path, std::int64_t origin_ns)
    : origin_ns_(origin_ns), pool_pid_(::getpid()) {
  fd_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd_) {
    throw Error("procpool::Pool: cannot open the trace file \"" + path + "\": " + std::strerror(errno));
  }
  buffer_ = "{\"traceEvents\":[\n";
  const std::string pid = std::to_string(pool_pid_);
  add("{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" + pid + ",\"tid\":" + pid +
      ",\"ts\":0,\"args\":{\"name\":\"procpool::Pool (pid " + pid + ")\"}}");
  add("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":" + pid + ",\"tid\":" + pid +
      ",\"ts\":0,\"args\":{\"name\":\"queue\"}}");
}

std::string TraceWriter::timestamp(std::int64_t ns) const {
  // Microseconds since the pool started, to the nanosecond.
  const std::int64_t since = ns > origin_ns_ ? ns - origin_ns_ : 0;
  char text[32];
  std::snprintf(text, sizeof text, "%lld.%03lld", static_cast<long long>(since / 1000),
                static_cast<long long>(since % 1000));
  return text;
}

void TraceWriter::worker_started(int slot, pid_t pid, std::int64_t now_ns) {
  const std::string ids = ",\"pid\":" + std::to_string(pool_pid_) + ",\"tid\":" + std::to_string(pid);
  const std::string worker = "worker " + std::to_string(slot) + " (pid " + std::to_string(pid) + ")";
  std::lock_guard lock(mutex_);
  add("{\"ph\":\"M\",\"name\":\"thread_name\"" + ids + ",\"ts\":0,\"args\":{\"name\":\"" + worker + "\"}}");
  add("{\"ph\":\"M\",\"name\":\"thread_sort_index\"" + ids + ",\"ts\":0,\"args\":{\"sort_index\":" +
      std::to_string(slot) + "}}");
  add("{\"ph\":\"i\",\"s\":\"t\",\"name\":\"worker started\"" + ids + ",\"ts\":" + timestamp(now_ns) +
      ",\"args\":{\"slot\":" + std::to_string(slot) + "}}");
}

void TraceWriter::worker_ended(int slot, pid_t pid, int status, std::int64_t now_ns) {
  const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  const int exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  const std::string event = "{\"ph\":\"i\",\"s\":\"t\",\"name\":\"worker ended\",\"pid\":" +
                            std::to_string(pool_pid_) + ",\"tid\":" + std::to_string(pid) +
                            ",\"ts\":" + timestamp(now_ns) + ",\"args\":{\"slot\":" + std::to_string(slot) +
                            ",\"cause\":\"" + cause_of(status) + "\",\"signal\":" + std::to_string(sig) +
                            ",\"exit_status\":" + std::to_string(exit_status) + "}}";
  std::lock_guard lock(mutex_);
  add(event);
}

void TraceWriter::task(std::uint64_t id, pid_t pid, std::int64_t submitted_ns, std::int64_t started_ns,
                       std::int64_t ended_ns, bool lost) {
  const std::string pool = std::to_string(pool_pid_);
  const std::string task = std::to_string(id);
  const std::string start = timestamp(started_ns);
  const std::string args = ",\"args\":{\"task\":" + task + "}}";
  // The waits overlap one another: async events, matched by their id, each on a track of its own.
  std::string events = "{\"ph\":\"b\",\"cat\":\"queue\",\"name\":\"queued\",\"id\":" + task + ",\"pid\":" + pool +
                       ",\"tid\":" + pool + ",\"ts\":" + timestamp(submitted_ns) + args + ",\n";
  events += "{\"ph\":\"e\",\"cat\":\"queue\",\"name\":\"queued\",\"id\":" + task + ",\"pid\":" + pool +
            ",\"tid\":" + pool + ",\"ts\":" + start + args + ",\n";
  events += "{\"ph\":\"X\",\"name\":\"task\",\"pid\":" + pool + ",\"tid\":" + std::to_string(pid) + ",\"ts\":" + start +
            ",\"dur\":" + timestamp(origin_ns_ + (ended_ns - started_ns)) + ",\"args\":{\"task\":" + task +
            (lost ? ",\"lost\":true}}" : "}}");
  std::lock_guard lock(mutex_);
  add(events);
}

void TraceWriter::add(std::string_view event) {
  if (!fd_) return;  // finished
  if (!first_) buffer_ += ",\n";
  first_ = false;
  buffer_ += event;
  if (buffer_.size() >= flush_bytes) flush_locked();
}

void TraceWriter::flush_locked() noexcept {
  std::size_t written = 0;
  while (written < buffer_.size()) {
    const ssize_t n = ::write(fd_.get(), buffer_.data() + written, buffer_.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a full disk, say: this batch is lost; the pool goes on
    written += static_cast<std::size_t>(n);
  }
  buffer_.clear();
}

void TraceWriter::finish() noexcept {
  std::lock_guard lock(mutex_);
  if (!fd_) return;
  buffer_ += "\n]}\n";
  flush_locked();
  fd_.reset();
}

}  // namespace procpool::detail
