// wait_with_progress()'s drawing: a bar redrawn in place on a terminal, one
// summary line anywhere else. Compiled into the library (engine/executor).
#pragma once

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <string>

#include "procpool/progress.hpp"

namespace procpool::detail {

// How often wait_with_progress() redraws: often enough to look live, rarely
// enough to cost nothing.
inline constexpr std::chrono::milliseconds progress_redraw_interval{150};

class ProgressBar {
 public:
  // Starts the clock. `out` is a terminal if it is std::cerr or std::clog
  // and fd 2 is a tty, or std::cout and fd 1 is one; any other stream is not.
  explicit ProgressBar(std::ostream& out);

  // Redraws the bar over the previous one (on a terminal; else nothing).
  void draw(Progress now);
  // The last line, ended with a newline: the bar at `last` on a terminal,
  // else the summary; then "  failed: <failure>" if `failure` is not empty.
  void finish(Progress last, const std::string& failure);

  bool terminal() const noexcept { return terminal_; }

 private:
  double seconds() const;

  std::ostream& out_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
  std::size_t drawn_ = 0;  // the length of the line on screen: a shorter one must cover it
};

// `[#####-----]  512/1000  51%  1234 items/s  ETA 0:03`, `seconds` after the
// start; once `finished`, the elapsed time instead of the ETA.
std::string progress_bar_line(Progress now, double seconds, bool finished);
// `1000/1000 items in 1.23 s (812 items/s)`.
std::string progress_summary_line(Progress last, double seconds);

}  // namespace procpool::detail
