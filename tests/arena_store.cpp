#include "engine/ipc/arena_store.hpp"

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "engine/ipc/payload_arenas.hpp"
#include "procpool/detail/buffer.hpp"

using procpool::detail::ArenaAllocator;
using procpool::detail::ArenaStore;
using procpool::detail::OutputBuffer;
using procpool::detail::PayloadArenas;

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

std::vector<char> pattern(std::size_t n) {
  std::vector<char> bytes(n);
  for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>(i * 7 + 3);
  return bytes;
}

}  // namespace

TEST_CASE("arena store - a large payload is written straight into a warm arena block, and reused") {
  PayloadArenas arenas(1, 256 * MiB, 64 * MiB);
  auto tasks = std::make_shared<ArenaAllocator>(arenas.tasks(), 64 * MiB);
  ArenaStore store;
  store.use(tasks);
  OutputBuffer out(&store);
  const auto bytes = pattern(16 * MiB);
  std::size_t first_offset = 0;
  for (int round = 0; round < 3; ++round) {
    out.reset(nullptr, 0, 64 << 10);
    out.write("head", 4);
    out.write(bytes.data(), bytes.size());
    REQUIRE(out.storage() == OutputBuffer::Storage::spilled);
    const std::size_t size = out.size();
    ArenaStore::Taken taken = store.take(out);
    REQUIRE(taken.block);
    CHECK_FALSE(taken.memfd);
    CHECK(size == bytes.size() + 4);
    CHECK(std::memcmp(taken.block.data(), "head", 4) == 0);
    CHECK(std::memcmp(taken.block.data() + 4, bytes.data(), bytes.size()) == 0);
    if (round == 0) first_offset = taken.block.block().offset;
    CHECK(taken.block.block().offset == first_offset);  // the same pages every time
  }
}

TEST_CASE("arena store - many small writes grow the block in place") {
  PayloadArenas arenas(1, 64 * MiB, 64 * MiB);
  auto tasks = std::make_shared<ArenaAllocator>(arenas.tasks(), 64 * MiB);
  ArenaStore store;
  store.use(tasks);
  OutputBuffer out(&store);
  out.reset(nullptr, 0, 4096);
  for (std::uint32_t i = 0; i < 1'000'000; ++i) out.write(&i, sizeof i);
  const ArenaStore::Taken taken = store.take(out);
  REQUIRE(taken.block);
  for (std::uint32_t i = 0; i < 1'000'000; i += 9973) {
    std::uint32_t v = 0;
    std::memcpy(&v, taken.block.data() + i * sizeof v, sizeof v);
    REQUIRE(v == i);
  }
}

TEST_CASE("arena store - a payload larger than the arena goes to a memfd; a dropped payload frees its block") {
  PayloadArenas arenas(1, 64 * MiB, 64 * MiB);
  auto tasks = std::make_shared<ArenaAllocator>(arenas.tasks(), 64 * MiB);
  ArenaStore store;
  store.use(tasks);
  OutputBuffer out(&store);
  const auto bytes = pattern(80 * MiB);
  out.reset(nullptr, 0, 4096);
  out.write(bytes.data(), 8 * MiB);                     // into the arena first
  out.write(bytes.data() + 8 * MiB, bytes.size() - 8 * MiB);  // then too large for it
  ArenaStore::Taken taken = store.take(out);
  CHECK_FALSE(taken.block);
  REQUIRE(taken.memfd);
  std::vector<char> back(bytes.size());
  REQUIRE(::pread(taken.memfd.get(), back.data(), back.size(), 0) == static_cast<ssize_t>(back.size()));
  CHECK(back == bytes);
  // Nothing of it is left in the arena: all of it can be allocated again.
  CHECK(tasks->allocate(64 * MiB));
}

TEST_CASE("arena store - a worker sees the parent's block at the same offset of the inherited arena") {
  PayloadArenas arenas(2, 64 * MiB, 64 * MiB);
  auto tasks = std::make_shared<ArenaAllocator>(arenas.tasks(), 64 * MiB);
  ArenaStore store;
  store.use(tasks);
  OutputBuffer out(&store);
  const auto bytes = pattern(3 * MiB);
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  if (child == 0) {
    // Forked before the parent wrote: only the shared arena can carry the bytes.
    arenas.restrict_to(1);
    std::size_t offset = 0;
    if (::read(ready[0], &offset, sizeof offset) != sizeof offset) ::_exit(2);
    const bool same = std::memcmp(arenas.tasks().data() + offset, bytes.data(), bytes.size()) == 0;
    ::_exit(same ? 0 : 1);
  }
  out.reset(nullptr, 0, 4096);
  out.write(bytes.data(), bytes.size());
  const ArenaStore::Taken taken = store.take(out);
  REQUIRE(taken.block);
  const std::size_t offset = taken.block.block().offset;
  REQUIRE(::write(ready[1], &offset, sizeof offset) == sizeof offset);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  ::close(ready[0]);
  ::close(ready[1]);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
