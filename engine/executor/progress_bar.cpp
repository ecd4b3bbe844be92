#include "procpool/detail/progress_bar.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <unistd.h>

namespace procpool::detail {

namespace {

constexpr std::size_t bar_width = 30;

bool is_terminal(const std::ostream& out) {
  if (&out == &std::cerr || &out == &std::clog) return ::isatty(STDERR_FILENO) == 1;
  if (&out == &std::cout) return ::isatty(STDOUT_FILENO) == 1;
  return false;  // a file or a string stream: no cursor to move back
}

double rate_of(std::size_t done, double seconds) { return seconds > 0 ? static_cast<double>(done) / seconds : 0.0; }

// 1234 items/s, 12.5 items/s: three significant digits are plenty.
std::string format_rate(double rate) {
  char text[48];
  std::snprintf(text, sizeof text, rate >= 100 ? "%.0f items/s" : "%.1f items/s", rate);
  return text;
}

// 0:03, 12:45, 2:05:00.
std::string format_clock(double seconds) {
  const auto total = static_cast<long long>(seconds + 0.5);
  char text[48];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60, total % 60);
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", total / 60, total % 60);
  }
  return text;
}

}  // namespace

std::string progress_bar_line(Progress now, double seconds, bool finished) {
  const double rate = rate_of(now.done, seconds);
  std::string line = "[";
  if (now.total == 0) {
    line += std::string(bar_width, finished ? '#' : '?');  // no fraction to show yet
  } else {
    const std::size_t filled = std::min(now.done, now.total) * bar_width / now.total;
    line += std::string(filled, '#') + std::string(bar_width - filled, '-');
  }
  line += "]  " + std::to_string(now.done) + "/" + (now.total == 0 && !finished ? "?" : std::to_string(now.total));
  if (now.total != 0) line += "  " + std::to_string(std::min(now.done, now.total) * 100 / now.total) + "%";
  line += "  " + format_rate(rate);
  if (finished) {
    char text[48];
    std::snprintf(text, sizeof text, "  in %.2f s", seconds);
    line += text;
  } else if (now.total != 0 && now.done < now.total) {
    line += "  ETA " + (rate > 0 ? format_clock(static_cast<double>(now.total - now.done) / rate) : std::string("?"));
  }
  return line;
}

std::string progress_summary_line(Progress last, double seconds) {
  char text[96];
  std::snprintf(text, sizeof text, " items in %.2f s (", seconds);
  return std::to_string(last.done) + "/" + std::to_string(last.total) + text +
         format_rate(rate_of(last.done, seconds)) + ")";
}

ProgressBar::ProgressBar(std::ostream& out)
    : out_(out), terminal_(is_terminal(out)), start_(std::chrono::steady_clock::now()) {}

double ProgressBar::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::draw(Progress now) {
  if (!terminal_) return;
  std::string line = progress_bar_line(now, seconds(), false);
  const std::size_t length = line.size();
  if (length < drawn_) line.append(drawn_ - length, ' ');
  drawn_ = length;
  out_ << '\r' << line << std::flush;
}

void ProgressBar::finish(Progress last, const std::string& failure) {
  std::string line;
  if (terminal_) {
    line = progress_bar_line(last, seconds(), true);
  } else {
    line = progress_summary_line(last, seconds());
  }
  if (!failure.empty()) line += "  failed: " + failure;
  if (terminal_) {
    out_ << '\r';
    if (line.size() < drawn_) line.append(drawn_ - line.size(), ' ');
  }
  out_ << line << '\n' << std::flush;
}

}  // namespace procpool::detail
