/// \file
/// procpool::wait_with_progress(): wait for a map or an imap while a progress
/// bar shows how far it has got.
#pragma once

#include <exception>
#include <iostream>
#include <string>
#include <type_traits>

#include "procpool/async_result.hpp"
#include "procpool/detail/progress_bar.hpp"
#include "procpool/imap_iterator.hpp"
#include "procpool/progress.hpp"

namespace procpool {

/// Blocks until `result` is ready, showing its progress() on `out`. While
/// `out` is a terminal, a one-line bar is redrawn in place (after a carriage
/// return) about every 150 ms:
/// `[#########---------]  512/1000  51%  1234 items/s  ETA 0:03`, and when
/// done, the final bar with the elapsed time and a newline. Anywhere
/// else, it prints one line at the end: `1000/1000 items in 1.23 s (812
/// items/s)`. `out` is a terminal if it is std::cerr or std::clog and file
/// descriptor 2 is a tty, or std::cout and descriptor 1 is one; any other
/// stream counts as not a terminal. Made for map_async / starmap_async results
/// (progress in items); any other result shows 0/1, then 1/1.
///
/// A failed result does not throw here: the last line ends with
/// `  failed: <what()>`, and get() then throws the error. Returns the
/// progress at the end. Throws ValueError if `result` is empty. Waits as
/// AsyncResult::wait() does, in steps (no busy loop). Thread-safe with
/// respect to the result; concurrent writers to `out` interleave.
template <class T>
Progress wait_with_progress(const AsyncResult<T>& result, std::ostream& out = std::cerr) {
  detail::ProgressBar bar(out);
  bar.draw(result.progress());
  while (!result.wait(detail::progress_redraw_interval)) bar.draw(result.progress());
  const Progress last = result.progress();
  std::string failure;
  if (!result.successful()) {
    failure = "an error";
    if constexpr (std::is_void_v<T> || std::is_copy_constructible_v<T>) {
      try {
        result.get();  // rethrows the error; a failed result holds no value to copy
      } catch (const std::exception& e) {
        failure = e.what();
      } catch (...) {
        failure = "a non-standard exception";
      }
    }
  }
  bar.finish(last, failure);
  return last;
}

/// Blocks until every result of an imap / imap_unordered has arrived (see
/// IMapIterator::wait_all(): it reads the rest of the input on this thread
/// and consumes nothing, so the results can be iterated afterwards), showing
/// its progress() on `out` as the AsyncResult overload does. While the input
/// has not ended, the total is unknown: the bar shows `512/?` without a
/// percentage or ETA. The items' errors are not reported here (they surface
/// as the items are consumed). Returns the progress at the end. Never returns
/// for an endless input. Not thread-safe (as IMapIterator).
template <class R>
Progress wait_with_progress(IMapIterator<R>& results, std::ostream& out = std::cerr) {
  detail::ProgressBar bar(out);
  bar.draw(results.progress());
  while (!results.wait_all(detail::progress_redraw_interval)) bar.draw(results.progress());
  const Progress last = results.progress();
  bar.finish(last, {});
  return last;
}

}  // namespace procpool
