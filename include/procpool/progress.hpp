/// \file
/// procpool::Progress: how far a map, starmap or imap has got, in items.
#pragma once

#include <cstddef>

namespace procpool {

/// How far a call of the map family has got, counted in items (not chunks):
/// what AsyncResult::progress() and IMapIterator::progress() return, and
/// what wait_with_progress() draws. A plain value, read at one instant.
struct Progress {
  /// Items whose chunk has finished, with a value or an error (an item that
  /// threw, or a chunk lost with its worker or cancelled, counts as done).
  /// Never more than `total` once `total` is known.
  std::size_t done = 0;
  /// Items in all; 0 while unknown (an imap whose input has not been read to
  /// its end yet), and for an empty input.
  std::size_t total = 0;

  /// Member-wise equality.
  friend bool operator==(const Progress&, const Progress&) = default;
};

}  // namespace procpool
