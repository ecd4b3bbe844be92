// The wire format: archives over buffers, error transport, and rings fed garbage.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>
#include <procpool/procpool.hpp>
#include <optional>
#include <random>
#include <span>
#include <vector>
#include <stdexcept>

#include "engine/ipc/memfd_store.hpp"
#include "engine/ipc/ring.hpp"
#include "procpool/detail/chunk.hpp"
#include "engine/ipc/side_channel.hpp"
#include "procpool/detail/error_codec.hpp"

using procpool::detail::FrameKind;
using procpool::detail::FrameView;
using procpool::detail::InputBuffer;
using procpool::detail::MemfdStore;
using procpool::detail::OutputBuffer;
using procpool::detail::Ring;
using procpool::detail::RingControl;
using procpool::detail::WireInputArchive;
using procpool::detail::WireOutputArchive;

TEST_CASE("wire - values round-trip through an output buffer that spills from its window") {
  char window[16];
  OutputBuffer out;
  out.reset(window, sizeof window, 1 << 16);
  const std::vector<std::string> value{"one", std::string(1000, 'x'), "three"};
  {
    WireOutputArchive archive(out);
    archive(value, 7);
  }
  CHECK(out.storage() == OutputBuffer::Storage::heap);
  InputBuffer in(out.data(), out.size());
  std::vector<std::string> back;
  int seven = 0;
  WireInputArchive archive(in);
  archive(back, seven);
  CHECK(back == value);
  CHECK(seven == 7);
  CHECK(in.remaining() == 0);
}

TEST_CASE("wire - past the spill limit the bytes move to a memfd") {
  MemfdStore spill;
  OutputBuffer out(&spill);
  out.reset(nullptr, 0, 1024);
  const std::string big(5000, 'q');
  WireOutputArchive archive(out);
  archive(big);
  CHECK(out.storage() == OutputBuffer::Storage::spilled);
  InputBuffer in(out.data(), out.size());
  std::string back;
  WireInputArchive input(in);
  input(back);
  CHECK(back == big);
}

namespace {

// A spill store on the heap that counts its calls: any store plugs in.
class CountingStore final : public procpool::detail::SpillStore {
 public:
  Region grow(std::size_t used, std::size_t needed) override {
    ++grows;
    std::vector<char> bigger(needed * 2);
    std::memcpy(bigger.data(), bytes.data(), std::min(used, bytes.size()));
    bytes.swap(bigger);
    return {bytes.data(), bytes.size()};
  }
  void discard() noexcept override {
    ++discards;
    bytes.clear();
  }

  std::vector<char> bytes;
  int grows = 0;
  int discards = 0;
};

}  // namespace

TEST_CASE("wire - a spill store is asked only when the buffer grows past its spill limit") {
  CountingStore store;
  OutputBuffer out(&store);
  out.reset(nullptr, 0, 100);
  const std::string small(50, 's');
  out.write(small.data(), small.size());
  CHECK(out.storage() == OutputBuffer::Storage::heap);
  CHECK(store.grows == 0);
  std::string big(1000, 'b');
  for (char& c : big) c = static_cast<char>('a' + (&c - big.data()) % 26);
  for (int i = 0; i < 100; ++i) out.write(big.data(), big.size());
  CHECK(out.storage() == OutputBuffer::Storage::spilled);
  CHECK(store.grows > 0);
  CHECK(store.grows < 10);  // doubling: a handful of growths, not one per write
  REQUIRE(out.size() == small.size() + 100 * big.size());
  CHECK(std::memcmp(out.data(), small.data(), small.size()) == 0);
  CHECK(std::memcmp(out.data() + small.size() + 99 * big.size(), big.data(), big.size()) == 0);
  out.reset(nullptr, 0, 100);
  CHECK(store.discards == 1);
  CHECK(out.size() == 0);
}

TEST_CASE("wire - without a spill store the heap takes any size") {
  OutputBuffer out;
  out.reset(nullptr, 0, 16);
  const std::string big(100000, 'h');
  out.write(big.data(), big.size());
  CHECK(out.storage() == OutputBuffer::Storage::heap);
  CHECK(out.size() == big.size());
}

TEST_CASE("wire - truncated or lying bytes are a SerializationError, not a crash or a huge allocation") {
  OutputBuffer out;
  out.reset(nullptr, 0, 1 << 20);
  {
    WireOutputArchive archive(out);
    archive(std::vector<int>{1, 2, 3}, std::string("hello"));
  }
  for (std::size_t cut = 0; cut < out.size(); ++cut) {
    InputBuffer in(out.data(), cut);
    WireInputArchive archive(in);
    std::vector<int> v;
    std::string s;
    CHECK_THROWS_AS(archive(v, s), procpool::SerializationError);
  }
  // A length prefix of 2^62 elements with 8 bytes behind it.
  const std::uint64_t lie[2] = {std::uint64_t{1} << 62, 0};
  InputBuffer in(reinterpret_cast<const char*>(lie), sizeof lie);
  WireInputArchive archive(in);
  std::vector<std::uint64_t> v;
  CHECK_THROWS_AS(archive(v), procpool::SerializationError);
}

TEST_CASE("wire - exceptions are encoded and re-created by type") {
  OutputBuffer out;
  out.reset(nullptr, 0, 1 << 20);
  try {
    throw std::overflow_error("too big");
  } catch (...) {
    procpool::detail::encode_current_exception(out);
  }
  InputBuffer in(out.data(), out.size());
  CHECK_THROWS_WITH_AS(std::rethrow_exception(procpool::detail::decode_exception(in, 77)), "too big", std::overflow_error);

  const char garbage[] = {99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  InputBuffer bad(garbage, sizeof garbage);
  CHECK_THROWS_AS(std::rethrow_exception(procpool::detail::decode_exception(bad, 77)), procpool::SerializationError);
  InputBuffer empty(garbage, 0);
  CHECK_THROWS_AS(std::rethrow_exception(procpool::detail::decode_exception(empty, 77)), procpool::SerializationError);
}

TEST_CASE("ring - frames of many sizes wrap around and come out in order") {
  RingControl control;
  std::vector<char> data(4096);
  Ring producer(&control, data.data(), data.size());
  Ring consumer(&control, data.data(), data.size());
  std::uint64_t next_in = 1;
  std::uint64_t next_out = 1;
  std::mt19937 rng(5);
  for (int round = 0; round < 5000; ++round) {
    const std::size_t size = rng() % 900;
    std::vector<char> payload(size, static_cast<char>(next_in));
    if (producer.push(FrameKind::task, 0, next_in, payload.data(), size)) ++next_in;
    if (rng() % 2 == 0) {
      FrameView frame{};
      while (consumer.peek(frame) == Ring::Peek::frame) {
        REQUIRE(frame.header.task_id == next_out);
        REQUIRE((frame.header.size == 0 || frame.payload[0] == static_cast<char>(next_out)));
        consumer.pop(frame);
        ++next_out;
      }
    }
  }
  CHECK(next_in > 1000);
  CHECK_FALSE(producer.push(FrameKind::task, 0, 1, data.data(), producer.max_payload() + 1));
}

TEST_CASE("ring - garbage in the ring is reported as corrupt, never read out of bounds") {
  RingControl control;
  std::vector<char> data(4096);
  Ring ring(&control, data.data(), data.size());
  std::mt19937 rng(11);
  int corrupt = 0;
  for (int round = 0; round < 20000; ++round) {
    for (auto& c : data) c = static_cast<char>(rng());
    control.head.store(rng() % 8192);
    control.tail.store(control.head.load() + rng() % 8192);
    FrameView frame{};
    const Ring::Peek peek = ring.peek(frame);
    if (peek == Ring::Peek::corrupt) ++corrupt;
    if (peek == Ring::Peek::frame) {
      // A frame that passed validation lies inside the buffer.
      CHECK(frame.payload >= data.data());
      CHECK(frame.payload + frame.header.size <= data.data() + data.size());
    }
  }
  CHECK(corrupt > 0);
}

TEST_CASE("wire - a chunk whose error item does not decode fails whole, never misreading the next items") {
  // count 2 | item 0: error, kind 5, type-name length 1000 with 13 bytes left | item 1: the value "evil"
  OutputBuffer out;
  out.reset(nullptr, 0, 1 << 20);
  {
    WireOutputArchive archive(out);
    archive(std::uint64_t{2}, std::uint8_t{1}, std::uint8_t{5}, std::uint64_t{1000}, std::uint8_t{0},
            std::string("evil"));
  }
  auto chunk = std::make_shared<procpool::detail::ChunkState<std::string>>(nullptr, 0, 2);
  InputBuffer in(out.data(), out.size());
  CHECK_THROWS_AS(chunk->deliver(in, 1), procpool::SerializationError);
  CHECK_FALSE(chunk->ready());
}

TEST_CASE("wire - a large payload's memfd must be sealed against change before it is trusted") {
  MemfdStore spill;
  OutputBuffer out(&spill);
  out.reset(nullptr, 0, 64);
  {
    WireOutputArchive archive(out);
    archive(std::string(100000, 'm'));
  }
  REQUIRE(out.storage() == OutputBuffer::Storage::spilled);
  const std::size_t size = out.size();
  procpool::detail::UniqueFd sealed = spill.release(out);
  CHECK(out.size() == 0);
  procpool::detail::SideChannelPayload payload(std::move(sealed), size);
  InputBuffer in(payload.data(), payload.size());
  std::string back;
  WireInputArchive archive(in);
  archive(back);
  CHECK(back == std::string(100000, 'm'));

  procpool::detail::UniqueFd unsealed(::memfd_create("test", MFD_CLOEXEC));
  REQUIRE(::ftruncate(unsealed.get(), 4096) == 0);
  CHECK_THROWS_WITH_AS(procpool::detail::SideChannelPayload(std::move(unsealed), 100), doctest::Contains("not sealed"),
                       procpool::SerializationError);
}

TEST_CASE("wire - an arena frame is read inside its arena or not at all") {
  std::vector<char> arena(4096, 'a');
  const std::span<const char> view(arena.data(), arena.size());
  const auto open = [&](std::uint64_t offset, std::uint64_t size) {
    const procpool::detail::ArenaRef ref{offset, size};
    FrameView frame{};
    frame.header = {sizeof ref, FrameKind::result, procpool::detail::frame_arena, 1};
    frame.payload = reinterpret_cast<const char*>(&ref);
    std::optional<procpool::detail::SideChannelPayload> side;
    return procpool::detail::open_payload(frame, -1, side, view).remaining();
  };
  CHECK(open(0, 4096) == 4096);
  CHECK(open(4000, 96) == 96);
  CHECK(open(4096, 0) == 0);
  for (const auto& [offset, size] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
           {4000, 97}, {4097, 0}, {0, 4097}, {1, UINT64_MAX}, {UINT64_MAX, 2}, {UINT64_MAX, UINT64_MAX}}) {
    CHECK_THROWS_WITH_AS(open(offset, size), doctest::Contains("outside"), procpool::SerializationError);
  }
  // A frame too short to hold its reference.
  FrameView shorter{};
  const char byte = 0;
  shorter.header = {1, FrameKind::result, procpool::detail::frame_arena, 1};
  shorter.payload = &byte;
  std::optional<procpool::detail::SideChannelPayload> side;
  CHECK_THROWS_AS(procpool::detail::open_payload(shorter, -1, side, view), procpool::SerializationError);
}
