// libFuzzer target: arbitrary bytes as a result ring, decoded the way the parent does.
//
// Input layout (anything shorter is zero-filled):
//   [0, 8)    head index (little-endian u64)
//   [8, 16)   tail word: bit 63 set -> the tail index as is (any garbage);
//             clear -> head + (word % (2 * capacity)), mostly plausible rings
//   [16]      shape: bits 0-2: capacity = 64 << min(bits, 6), i.e. 64..4096 bytes;
//             bits 4-5: what the "worker" sends on the socket ahead of a
//             side-channel frame: 0, 1 a memfd, 2 nothing, 3 a pipe
//   [17, ...) the ring's data bytes, from offset 0
//
// For every frame the ring reports valid, the harness checks that it lies
// inside the ring, then decodes its payload as PoolCore::complete does:
// open_payload (for a side-channel frame: its length, then the fd received on
// the worker's socket, here a socketpair; the memfd holds the frame's payload
// after the length), the status byte, then the value into a fresh
// ResultState<T> for a few representative T, or the error via
// decode_exception; and as a chunk result into a ChunkState<std::string>
// whose item count comes from the frame's task id (as the parent knows a
// chunk's size from its task).
//
// Garbage must end as an exception (caught here, as the parent does) or a
// failed state; a crash, a sanitizer report, a leak, a non-standard exception
// or an oversized allocation is a bug in the library.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <tuple>
#include <unistd.h>
#include <vector>

#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/vector.hpp>

#include "engine/ipc/ring.hpp"
#include "engine/sys/unique_fd.hpp"
#include "procpool/detail/buffer.hpp"
#include "procpool/detail/chunk.hpp"
#include "procpool/detail/error_codec.hpp"
#include "procpool/detail/result_state.hpp"
#include "procpool/errors.hpp"
#include "engine/ipc/frame.hpp"
#include "engine/ipc/side_channel.hpp"

namespace {

using namespace procpool::detail;

constexpr pid_t fake_worker_pid = 4242;
constexpr std::size_t header_bytes = 17;
constexpr std::size_t max_capacity = 4096;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "frame_decoder_fuzz: invariant broken: %s\n", what);
  std::abort();
}

std::uint64_t load_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The worker's socket (a SOCK_SEQPACKET pair: the parent's end and the
// worker's), plus a pipe whose read end a hostile worker may send instead of a memfd.
struct Channel {
  int parent = -1;
  int worker = -1;
  int pipe_read = -1;
};

const Channel& channel() {
  static const Channel c = [] {
    Channel made;
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) fail("socketpair");
    int pv[2];
    if (::pipe2(pv, O_CLOEXEC) != 0) fail("pipe2");
    made.parent = sv[0];
    made.worker = sv[1];
    made.pipe_read = pv[0];
    return made;
  }();
  return c;
}

// What the worker sent ahead of a side-channel frame: the fd to send (-1: none).
struct SideChannel {
  int fd = -1;
};

// The parent's decoding of one result payload into `state`, as in
// PoolCore::complete: every failure ends as an error on this one state.
void complete_like_parent(ResultStateBase& state, const FrameView& frame, const SideChannel& sent) {
  if (sent.fd >= 0) send_fd(channel().worker, sent.fd, frame.header.task_id);
  try {
    std::optional<SideChannelPayload> side;
    InputBuffer in = open_payload(frame, channel().parent, side);
    if (side && side->size() > frame.header.size - sizeof(std::uint64_t)) {
      fail("a side-channel payload larger than its memfd was accepted");
    }
    std::uint8_t status = 0;
    in.read(&status, 1);
    if (status == static_cast<std::uint8_t>(ResultStatus::value)) {
      state.deliver(in, fake_worker_pid);
      if (!state.ready() || state.error()) fail("deliver returned without completing with a value");
    } else if (status == static_cast<std::uint8_t>(ResultStatus::error)) {
      std::exception_ptr error = decode_exception(in, fake_worker_pid);
      if (!error) fail("decode_exception returned no exception");
      state.fail(std::move(error));
    } else {
      throw procpool::SerializationError("unknown status");
    }
  } catch (const procpool::SerializationError&) {
    if (state.ready()) fail("a state completed and then its decoding threw");
    state.fail(std::current_exception());
  } catch (const std::exception& e) {
    if (state.ready()) fail("a state completed and then its decoding threw");
    state.fail(std::make_exception_ptr(procpool::SerializationError(e.what())));
  }
  // Anything else (a non-standard exception) escapes: the parent would terminate.
  if (!state.ready()) fail("a result frame left its state pending");
  // An fd left unread (the frame failed before its length was read) is
  // dropped, so every decode starts from an empty socket.
  char byte;
  while (::recv(channel().parent, &byte, 1, MSG_DONTWAIT) > 0) {
  }
}

template <class T>
void decode_as(const FrameView& frame, const SideChannel& sent) {
  ResultState<T> state;  // fresh: a state completes once
  complete_like_parent(state, frame, sent);
  if (!state.error()) (void)state.value();
}

void decode_as_chunk(const FrameView& frame, const SideChannel& sent) {
  const std::size_t count = static_cast<std::size_t>(frame.header.task_id & 0x3f);
  ChunkState<std::string> chunk(nullptr, 0, count);
  complete_like_parent(chunk, frame, sent);
  if (!chunk.error()) {
    if (chunk.outcomes().size() != count) fail("a chunk completed with the wrong number of items");
    for (const auto& outcome : chunk.outcomes()) {
      if (outcome.error) {
        try {
          std::rethrow_exception(outcome.error);
        } catch (const std::exception&) {
          // the expected kinds: standard errors, procpool errors
        }
      }
    }
  }
}

void decode_payload(const FrameView& frame, unsigned side_mode) {
  UniqueFd memfd;
  SideChannel sent;
  if ((frame.header.flags & frame_side_channel) != 0) {
    if (side_mode < 2) {
      // The memfd the worker would have sent: the payload after its length;
      // sealed as a real sender seals it (mode 0) or not, as a hostile one (mode 1).
      memfd.reset(::memfd_create("procpool-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING));
      if (!memfd) fail("memfd_create");
      const std::size_t skip = sizeof(std::uint64_t);
      if (frame.header.size > skip) {
        const std::size_t rest = frame.header.size - skip;
        if (::write(memfd.get(), frame.payload + skip, rest) != static_cast<ssize_t>(rest)) fail("write to memfd");
      }
      if (side_mode == 0 && ::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
        fail("seal memfd");
      }
      sent.fd = memfd.get();
    } else if (side_mode == 3) {
      sent.fd = channel().pipe_read;
    }
  }
  decode_as<int>(frame, sent);
  decode_as<std::string>(frame, sent);
  decode_as<std::vector<std::string>>(frame, sent);
  decode_as<std::map<int, std::string>>(frame, sent);
  decode_as<std::tuple<int, double, std::string>>(frame, sent);
  decode_as_chunk(frame, sent);
}

// A frame the ring calls valid must lie wholly inside the ring's buffer.
void check_frame(const FrameView& frame, const char* data, std::size_t capacity) {
  const char* header = frame.payload - sizeof(FrameHeader);
  if (frame.payload < data + sizeof(FrameHeader) || header >= data + capacity) fail("frame starts outside the ring");
  const std::size_t offset = static_cast<std::size_t>(header - data);
  if (offset % frame_alignment != 0) fail("frame is not aligned");
  if (frame_span(frame.header.size) > capacity - offset) fail("frame runs past the end of the ring");
  if (frame.span < frame_span(frame.header.size) || frame.span > capacity) fail("frame span out of range");
  if (frame.header.kind != FrameKind::task && frame.header.kind != FrameKind::stop &&
      frame.header.kind != FrameKind::result) {
    fail("padding or an unknown kind reported as a frame");
  }
  FrameHeader in_ring;
  std::memcpy(&in_ring, header, sizeof in_ring);
  if (std::memcmp(&in_ring, &frame.header, sizeof in_ring) != 0) fail("header copy differs from the ring");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  std::uint8_t header[header_bytes] = {};
  std::memcpy(header, bytes, size < header_bytes ? size : header_bytes);
  const unsigned shift = (header[16] & 7u) < 6u ? (header[16] & 7u) : 6u;
  const std::size_t capacity = std::size_t{64} << shift;
  static_assert((std::size_t{64} << 6) == max_capacity);
  const std::uint64_t head = load_u64(header);
  const std::uint64_t tail_word = load_u64(header + 8);
  const std::uint64_t tail = (tail_word >> 63) != 0 ? tail_word : head + tail_word % (2 * capacity);

  // Exactly `capacity` heap bytes, so ASan sees any read past the ring.
  std::unique_ptr<char[]> data(new char[capacity]);
  std::memset(data.get(), 0, capacity);
  if (size > header_bytes) {
    const std::size_t n = size - header_bytes < capacity ? size - header_bytes : capacity;
    std::memcpy(data.get(), bytes + header_bytes, n);
  }

  RingControl control;
  control.head.store(head);
  control.tail.store(tail);
  Ring ring(&control, data.get(), capacity);

  // (a) The consumer's walk: peek and pop until empty or corrupt.
  struct Seen {
    std::uint64_t position;
    std::uint64_t span;
    const char* payload;
  };
  std::vector<Seen> frames;
  bool corrupt = false;
  for (;;) {
    FrameView frame{};
    const Ring::Peek peek = ring.peek(frame);
    if (peek == Ring::Peek::empty) break;
    if (peek == Ring::Peek::corrupt) {
      corrupt = true;
      break;
    }
    check_frame(frame, data.get(), capacity);
    const std::uint64_t position = ring.head_position();
    if (frame.span > tail - position) fail("frame span runs past the tail");
    frames.push_back({position, frame.span, frame.payload});
    if (frames.size() > capacity / sizeof(FrameHeader)) fail("more frames than the ring can hold");
    // (b) Decode it as every kind of result the parent might be waiting for.
    decode_payload(frame, (header[16] >> 4) & 3u);
    ring.pop(frame);
  }
  if (!corrupt && ring.head_position() != tail) fail("ring reported empty with frames left");

  // The recovery walk (peek_at from the original head) must see the same frames.
  std::uint64_t position = head;
  std::size_t i = 0;
  FrameView frame{};
  while (ring.peek_at(position, frame)) {
    check_frame(frame, data.get(), capacity);
    if (i >= frames.size() || frames[i].position != position || frames[i].span != frame.span ||
        frames[i].payload != frame.payload) {
      fail("peek_at and peek disagree");
    }
    position += frame.span;
    ++i;
  }
  if (i != frames.size()) fail("peek_at stopped before peek did");
  return 0;
}
