#include "engine/pool/trace_writer.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
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

// One event's text, built without allocating (a task's three events fit).
class EventText {
 public:
  EventText& add(std::string_view text) noexcept {
    const std::size_t n = std::min(text.size(), sizeof text_ - size_);
    std::memcpy(text_ + size_, text.data(), n);
    size_ += n;
    return *this;
  }
  template <class Integer>
  EventText& number(Integer value) noexcept {
    size_ = static_cast<std::size_t>(std::to_chars(text_ + size_, text_ + sizeof text_, value).ptr - text_);
    return *this;
  }
  // Microseconds, to the nanosecond: "1234.567".
  EventText& micros(std::int64_t ns) noexcept {
    number(ns / 1000);
    const auto frac = static_cast<int>(ns % 1000);
    const char digits[4] = {'.', static_cast<char>('0' + frac / 100), static_cast<char>('0' + frac / 10 % 10),
                            static_cast<char>('0' + frac % 10)};
    return add(std::string_view(digits, sizeof digits));
  }
  std::string_view view() const noexcept { return {text_, size_}; }

 private:
  char text_[1024];
  std::size_t size_ = 0;
};

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
  EventText e;
  return std::string(e.micros(since(ns)).view());
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
  // Once per task on the result thread: written with to_chars into one
  // buffer, as std::string concatenation here halved a traced pool's throughput.
  EventText e;
  // The waits overlap one another: async events, matched by their id, each on a track of its own.
  for (const char* phase : {"b", "e"}) {
    e.add("{\"ph\":\"").add(phase).add("\",\"cat\":\"queue\",\"name\":\"queued\",\"id\":").number(id);
    e.add(",\"pid\":").number(pool_pid_).add(",\"tid\":").number(pool_pid_).add(",\"ts\":");
    e.micros(*phase == 'b' ? since(submitted_ns) : since(started_ns)).add(",\"args\":{\"task\":").number(id).add("}},\n");
  }
  e.add("{\"ph\":\"X\",\"name\":\"task\",\"pid\":").number(pool_pid_).add(",\"tid\":").number(pid);
  e.add(",\"ts\":").micros(since(started_ns)).add(",\"dur\":").micros(ended_ns > started_ns ? ended_ns - started_ns : 0);
  e.add(",\"args\":{\"task\":").number(id).add(lost ? ",\"lost\":true}}" : "}}");
  std::lock_guard lock(mutex_);
  add(e.view());
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
