// Payloads too large for a ring: a memfd, handed over on the worker's socket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "engine/ipc/ring.hpp"
#include "engine/sys/unique_fd.hpp"
#include "procpool/detail/buffer.hpp"

namespace procpool::detail {

// Sends the memfd of task `task_id`'s payload on a SOCK_SEQPACKET socket,
// the task id beside it. Throws SerializationError on failure.
void send_fd(int socket, int fd, std::uint64_t task_id);
// Receives the memfd sent ahead of task `task_id`'s side-channel frame,
// without blocking (it was sent before the frame was published). Throws
// SerializationError if none is there or it belongs to another task.
UniqueFd receive_fd(int socket, std::uint64_t task_id);

class SideChannelPayload;

// The payload of a frame: in the ring; for an arena frame, in `arena` (the
// sender's payload arena, as this process maps it); for a side-channel frame,
// in the memfd that came ahead of it on `socket`, mapped into `keep`. Throws
// SerializationError if the frame points outside the arena or the frame and
// the memfd disagree.
InputBuffer open_payload(const FrameView& frame, int socket, std::optional<SideChannelPayload>& keep,
                         std::span<const char> arena);

// A received side-channel payload, mapped read-only for as long as this lives.
class SideChannelPayload {
 public:
  // Checks that the memfd really holds `size` bytes before mapping them.
  SideChannelPayload(UniqueFd memfd, std::size_t size);
  SideChannelPayload(const SideChannelPayload&) = delete;
  SideChannelPayload& operator=(const SideChannelPayload&) = delete;
  ~SideChannelPayload();

  const char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  UniqueFd memfd_;
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace procpool::detail
