// libFuzzer target: arbitrary bytes as a ring, read the way the pool reads its
// rings and decoded by the production code paths, nothing copied here.
//
// Input layout (anything shorter is zero-filled):
//   [0, 8)    head index (little-endian u64)
//   [8, 16)   tail word: bit 63 set -> the tail index as is (any garbage);
//             clear -> head + (word % (2 * capacity)), mostly plausible rings
//   [16]      shape: bits 0-2: capacity = 64 << min(bits, 6), i.e. 64..4096 bytes;
//             bits 4-5: what the other side sends on the socket ahead of a
//             side-channel frame: 0 a sealed memfd, 1 an unsealed one, 2 nothing, 3 a pipe
//   [17, ...) the ring's data bytes, from offset 0
//
// The ring's data bytes are also the payload arena that arena frames point
// into (their ArenaRef's offset and size are whatever the bytes say).
//
// The ring is walked as PoolCore::drain_results walks a result ring
// (peek_from, then pop_to), and again with peek_at (the recovery walk). Each
// frame the ring reports valid is checked to lie inside the ring, then:
//  - a result frame goes through complete_from_result with open_payload, as
//    PoolCore::complete does, into a fresh ResultState<T> for a few
//    representative T and into a ChunkState<std::string> whose item count
//    comes from the frame's task id (the parent knows it from its task);
//  - a task frame goes through run_payload with open_payload, as a worker
//    runs it, into an OutputBuffer on a small window with a MemfdStore; the
//    result it writes is then completed as the parent would, and a value
//    result must decode into the invoker's result type.
//
// Task payloads name their invoker by a code ref (module build-id hash,
// offset), which differs from build to build. So that seeds stay valid, a
// task whose module word is a small index k (1..invokers().size()) names the
// k-th invoker below: the harness writes that invoker's real code ref over
// the first 16 bytes (and, for a function-pointer callable, the real ref of
// the function over the next 16 when their module word is 1). Any other
// module word goes through as is (a foreign build's task), unless it names
// a module loaded here (see keep_foreign).
//
// Garbage must end as a failed state, never a crash, a sanitizer report, a
// leak, a non-standard exception escaping, or an oversized allocation.
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
#include <span>
#include <stdexcept>
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

#include "engine/executor/payload.hpp"
#include "engine/ipc/frame.hpp"
#include "engine/ipc/memfd_store.hpp"
#include "engine/ipc/ring.hpp"
#include "engine/ipc/side_channel.hpp"
#include "engine/sys/unique_fd.hpp"
#include "procpool/detail/buffer.hpp"
#include "procpool/detail/chunk.hpp"
#include "procpool/detail/code_ref.hpp"
#include "procpool/detail/result_state.hpp"
#include "procpool/detail/task_codec.hpp"
#include "procpool/errors.hpp"

namespace {

using namespace procpool::detail;

constexpr pid_t fake_worker_pid = 4242;
constexpr std::size_t header_bytes = 17;
constexpr std::size_t max_capacity = 4096;
// The worker's result window and spill limit, small so that results of a few
// hundred bytes already take every path: window, heap, memfd.
constexpr std::size_t result_window = 256;
constexpr std::size_t result_spill_limit = 1024;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "frame_decoder_fuzz: invariant broken: %s\n", what);
  std::abort();
}

std::uint64_t load_u64(const void* p) {
  std::uint64_t v = 0;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The tasks a worker may be sent: each kind of callable, each kind of result.
int negate(int x) { return -x; }

struct Suffix {
  std::string tail;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(tail);
  }
  std::string operator()(const std::string& s) const { return s + tail; }
};

constexpr auto reverse = [](std::string s) { return std::string(s.rbegin(), s.rend()); };
constexpr auto summarize = [](const std::vector<std::string>& v, const std::map<int, std::string>& m) {
  return std::tuple<int, double, std::string>(static_cast<int>(v.size()), static_cast<double>(m.size()),
                                              v.empty() ? std::string() : v.front());
};
constexpr auto picky = [](int x) -> int {
  if (x < 0) throw std::out_of_range("negative");
  if (x == 0) throw 0;  // not a std::exception: a RemoteError for the parent
  return x;
};
constexpr auto twice = [](const std::string& s) {
  if (s.empty()) throw std::invalid_argument("empty item");
  return s + s;
};
constexpr auto nothing = [](int) {};

template <class R>
bool completes_with_value(const char* bytes, std::size_t size) {
  ResultState<R> state;
  complete_from_result(state, [&] { return InputBuffer(bytes, size); }, fake_worker_pid);
  return state.ready() && !state.error();
}

bool chunk_completes_with_value(const char* bytes, std::size_t size) {
  // The item count the worker wrote after the status byte (the parent knows it from its task).
  if (size < 1 + sizeof(std::uint64_t)) return false;
  const std::uint64_t count = load_u64(bytes + 1);
  if (count > size) return false;
  ChunkState<std::string> chunk(nullptr, 0, static_cast<std::size_t>(count));
  complete_from_result(chunk, [&] { return InputBuffer(bytes, size); }, fake_worker_pid);
  return chunk.ready() && !chunk.error();
}

struct Invoker {
  CodeRef invoker;
  std::optional<CodeRef> callable;  // a function pointer's
  bool (*value_decodes)(const char*, std::size_t);
};

const std::vector<Invoker>& invokers() {
  static const std::vector<Invoker> table = [] {
    using Negate = int (*)(int);
    return std::vector<Invoker>{
        {code_ref_of_function(&invoke_task<Negate, int>), code_ref_of_function(&negate), completes_with_value<int>},
        {code_ref_of_function(&invoke_task<decltype(reverse), std::string>), std::nullopt,
         completes_with_value<std::string>},
        {code_ref_of_function(&invoke_task<Suffix, std::string>), std::nullopt, completes_with_value<std::string>},
        {code_ref_of_function(&invoke_task<decltype(summarize), std::vector<std::string>, std::map<int, std::string>>),
         std::nullopt, completes_with_value<std::tuple<int, double, std::string>>},
        {code_ref_of_function(&invoke_task<decltype(picky), int>), std::nullopt, completes_with_value<int>},
        {code_ref_of_function(&invoke_chunk<decltype(twice), false, std::string>), std::nullopt,
         chunk_completes_with_value},
        {code_ref_of_function(&invoke_task<decltype(nothing), int>), std::nullopt, completes_with_value<void>},
    };
  }();
  return table;
}

// A code ref is trusted to come from this build (a worker is our fork, an MPI
// rank runs our executable): one that names a loaded module with an offset
// of its choosing would call whatever code is there. The fuzzer learns the
// loaded modules' hashes from resolve_code_ref's comparisons, so such refs
// (the production resolver tells which) are made foreign here.
void keep_foreign(char* ref) {
  CodeRef named{load_u64(ref), 0};
  try {
    (void)resolve_code_ref(named);
  } catch (const procpool::SerializationError& e) {
    if (std::strstr(e.what(), "no module with build-id hash") != nullptr) return;
  }
  const std::uint64_t foreign = 0xdeadbeefcafef00dULL;
  std::memcpy(ref, &foreign, sizeof foreign);
}

// Writes real code refs over symbolic ones (see the top). Returns the invoker named, if any.
const Invoker* patch_task(char* bytes, std::size_t size) {
  if (size < 2 * sizeof(std::uint64_t)) return nullptr;
  const std::uint64_t k = load_u64(bytes);
  if (k == 0 || k > invokers().size()) {
    keep_foreign(bytes);
    return nullptr;
  }
  const Invoker& invoker = invokers()[k - 1];
  std::memcpy(bytes, &invoker.invoker.module, sizeof(std::uint64_t));
  std::memcpy(bytes + 8, &invoker.invoker.offset, sizeof(std::uint64_t));
  if (invoker.callable && size >= 32) {
    if (load_u64(bytes + 16) == 1) {
      std::memcpy(bytes + 16, &invoker.callable->module, sizeof(std::uint64_t));
      std::memcpy(bytes + 24, &invoker.callable->offset, sizeof(std::uint64_t));
    } else {
      keep_foreign(bytes + 16);
    }
  }
  return &invoker;
}

// A worker's socket (a SOCK_SEQPACKET pair: the parent's end and the
// worker's), plus a pipe whose read end a hostile peer may send instead of a memfd.
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

// Drops an fd left unread (the frame failed before its length was read), so
// every decode starts from an empty socket.
void drain_socket(int socket) {
  char byte;
  while (::recv(socket, &byte, 1, MSG_DONTWAIT) > 0) {
  }
}

// What the sender put ahead of a side-channel frame: a memfd holding the
// payload after its length, sealed as a real sender seals it (mode 0) or not
// (mode 1); nothing (mode 2); a pipe (mode 3).
struct Sent {
  UniqueFd memfd;
  int fd = -1;
};

Sent side_channel_for(const FrameView& frame, unsigned side_mode, const std::vector<char>& bytes) {
  Sent sent;
  if ((frame.header.flags & frame_side_channel) == 0) return sent;
  if (side_mode < 2) {
    sent.memfd.reset(::memfd_create("procpool-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!sent.memfd) fail("memfd_create");
    if (!bytes.empty() && ::write(sent.memfd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
      fail("write to memfd");
    }
    if (side_mode == 0 && ::fcntl(sent.memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
      fail("seal memfd");
    }
    sent.fd = sent.memfd.get();
  } else if (side_mode == 3) {
    sent.fd = channel().pipe_read;
  }
  return sent;
}

// The bytes after a side-channel frame's length: what its memfd holds.
std::vector<char> after_length(const FrameView& frame) {
  const std::size_t skip = sizeof(std::uint64_t);
  if (frame.header.size <= skip) return {};
  return std::vector<char>(frame.payload + skip, frame.payload + frame.header.size);
}

// The payload arena of this input (its ring's bytes), as open_payload sees it.
std::span<const char> arena;

// The parent's end, as PoolCore::complete runs it.
void complete_as_parent(ResultStateBase& state, const FrameView& frame, int receiver, int fd) {
  if (fd >= 0) send_fd(channel().worker, fd, frame.header.task_id);
  std::optional<SideChannelPayload> side;
  complete_from_result(state, [&] {
    InputBuffer in = open_payload(frame, receiver, side, arena);
    if (side && side->size() > frame.header.size - sizeof(std::uint64_t)) {
      fail("a side-channel payload larger than its memfd was accepted");
    }
    return in;
  }, fake_worker_pid);
  if (!state.ready()) fail("a result frame left its state pending");
  drain_socket(receiver);
}

template <class T>
void complete_as(const FrameView& frame, int fd) {
  ResultState<T> state;  // fresh: a state completes once
  complete_as_parent(state, frame, channel().parent, fd);
  if constexpr (!std::is_void_v<T>) {
    if (!state.error()) (void)state.value();
  }
}

void complete_as_chunk(const FrameView& frame, int fd) {
  const std::size_t count = static_cast<std::size_t>(frame.header.task_id & 0x3f);
  ChunkState<std::string> chunk(nullptr, 0, count);
  complete_as_parent(chunk, frame, channel().parent, fd);
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

void decode_result(const FrameView& frame, unsigned side_mode) {
  const std::vector<char> rest = after_length(frame);
  // A fresh fd for each decode: a receiver takes it.
  const auto fd = [&] { return side_channel_for(frame, side_mode, rest); };
  { Sent s = fd(); complete_as<int>(frame, s.fd); }
  { Sent s = fd(); complete_as<void>(frame, s.fd); }
  { Sent s = fd(); complete_as<std::string>(frame, s.fd); }
  { Sent s = fd(); complete_as<std::vector<std::string>>(frame, s.fd); }
  { Sent s = fd(); complete_as<std::map<int, std::string>>(frame, s.fd); }
  { Sent s = fd(); complete_as<std::tuple<int, double, std::string>>(frame, s.fd); }
  { Sent s = fd(); complete_as_chunk(frame, s.fd); }
}

// The worker's end, as Worker::run_task runs it, then the parent's on what it wrote.
void run_task(FrameView frame, char* payload_in_ring, unsigned side_mode) {
  const Invoker* invoker = nullptr;
  std::vector<char> rest;
  if ((frame.header.flags & frame_arena) != 0) {
    ArenaRef ref{};
    if (frame.header.size >= sizeof ref) std::memcpy(&ref, payload_in_ring, sizeof ref);
    if (ref.offset <= arena.size() && ref.size <= arena.size() - ref.offset) {
      invoker = patch_task(const_cast<char*>(arena.data()) + ref.offset, static_cast<std::size_t>(ref.size));
    }
  } else if ((frame.header.flags & frame_side_channel) != 0) {
    rest = after_length(frame);
    invoker = patch_task(rest.data(), rest.size());
  } else {
    invoker = patch_task(payload_in_ring, frame.header.size);
  }
  Sent sent = side_channel_for(frame, side_mode, rest);
  if (sent.fd >= 0) send_fd(channel().parent, sent.fd, frame.header.task_id);

  char window[result_window];
  MemfdStore spill;
  OutputBuffer out(&spill);
  out.reset(window, sizeof window, result_spill_limit);
  std::optional<SideChannelPayload> side;
  run_payload([&] { return open_payload(frame, channel().worker, side, arena); }, out);
  drain_socket(channel().worker);
  if (out.size() == 0) fail("run_payload wrote no result");

  // As the parent receives it: in the ring, or sealed in its memfd.
  std::optional<SideChannelPayload> result_side;
  const char* result = out.data();
  std::size_t result_size = out.size();
  if (out.storage() == OutputBuffer::Storage::spilled) {
    result_side.emplace(spill.release(out), result_size);
    result = result_side->data();
  }
  const bool value = static_cast<std::uint8_t>(result[0]) == static_cast<std::uint8_t>(ResultStatus::value);
  if (value && invoker == nullptr) fail("a task no invoker was named for returned a value");
  if (value && !invoker->value_decodes(result, result_size)) fail("a value a task returned does not decode");
  if (!value) {
    ResultState<int> state;
    complete_from_result(state, [&] { return InputBuffer(result, result_size); }, fake_worker_pid);
    if (!state.ready() || !state.error()) fail("a task's error result did not decode as an error");
  }
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
      frame.header.kind != FrameKind::result && frame.header.kind != FrameKind::forget &&
      frame.header.kind != FrameKind::timing) {
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
  const unsigned side_mode = (header[16] >> 4) & 3u;
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

  arena = std::span<const char>(data.get(), capacity);
  RingControl control;
  control.head.store(head);
  control.tail.store(tail);
  Ring ring(&control, data.get(), capacity);

  // (a) The drainer's walk: peek_from positions until empty or corrupt.
  struct Seen {
    std::uint64_t position;
    std::uint64_t span;
    const char* payload;
  };
  std::vector<Seen> frames;
  std::uint64_t position = ring.head_position();
  Ring::Peek peek = Ring::Peek::empty;
  FrameView frame{};
  while ((peek = ring.peek_from(position, frame)) == Ring::Peek::frame) {
    check_frame(frame, data.get(), capacity);
    if (frame.span > tail - position) fail("frame span runs past the tail");
    frames.push_back({position, frame.span, frame.payload});
    if (frames.size() > capacity / sizeof(FrameHeader)) fail("more frames than the ring can hold");
    position += frame.span;
  }

  // (b) The recovery walk (peek_at from the original head) must see the same frames.
  std::uint64_t at = head;
  std::size_t i = 0;
  while (ring.peek_at(at, frame)) {
    check_frame(frame, data.get(), capacity);
    if (i >= frames.size() || frames[i].position != at || frames[i].span != frame.span ||
        frames[i].payload != frame.payload) {
      fail("peek_at and peek_from disagree");
    }
    at += frame.span;
    ++i;
  }
  if (i != frames.size()) fail("peek_at stopped before peek_from did");

  // (c) Each frame decoded by the side it is meant for. Task payloads may be
  // patched in place (see the top), after the walks that compare them.
  for (const Seen& seen : frames) {
    if (!ring.peek_at(seen.position, frame)) fail("a frame seen before is gone");
    if (frame.header.kind == FrameKind::result) {
      decode_result(frame, side_mode);
    } else if (frame.header.kind == FrameKind::task) {
      run_task(frame, data.get() + (frame.payload - data.get()), side_mode);
    }
  }
  if (peek == Ring::Peek::empty) ring.pop_to(position);
  return 0;
}
