// Numbers the engine uses in more than one place, each named once.
#pragma once

#include <chrono>
#include <cstddef>

namespace procpool::detail {

// Padding that keeps two atomics written by different sides off one cache
// line. Not std::hardware_destructive_interference_size: g++ warns
// (-Winterference-size) where it shapes a layout, as its value may change with
// -mtune, and these layouts are shared between processes built apart.
inline constexpr std::size_t cache_line = 64;

// The smallest page Linux uses: an offset rounded up to it stays mappable.
inline constexpr std::size_t page_size = 4096;

// How long a pool's shutdown waits for the zygote to reap its workers and
// exit before it kills the zygote outright.
inline constexpr std::chrono::milliseconds shutdown_grace{2000};

// The first region a payload spills into past its ring window (a memfd, or an
// arena block): large enough that a payload written piece by piece seldom moves.
inline constexpr std::size_t smallest_spill = std::size_t{1} << 20;

// A payload up to this size travels inside its message; a larger one is
// spilled to a memfd while it is encoded and sent from there in pieces.
inline constexpr std::size_t inline_payload_limit = std::size_t{1} << 20;

}  // namespace procpool::detail
