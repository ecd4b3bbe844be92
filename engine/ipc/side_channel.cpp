#include "engine/ipc/side_channel.hpp"

#include <cerrno>
#include <fcntl.h>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <cstdint>
#include <sys/stat.h>

#include "engine/sys/fd_passing.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

void send_fd(int socket, int fd, std::uint64_t task_id) {
  if (!send_with_fd(socket, &task_id, sizeof task_id, fd)) {
    throw SerializationError(std::string("procpool: cannot hand a large payload to the other process: ") +
                             std::strerror(errno));
  }
}

UniqueFd receive_fd(int socket, std::uint64_t task_id) {
  std::uint64_t sent_for = 0;
  UniqueFd fd;
  if (receive_with_fd(socket, &sent_for, sizeof sent_for, fd, MSG_DONTWAIT) != sizeof sent_for || !fd) {
    throw SerializationError("procpool: a large-payload frame arrived without its memfd");
  }
  if (sent_for != task_id) {
    throw SerializationError("procpool: the memfd for task " + std::to_string(sent_for) + " arrived for task " +
                             std::to_string(task_id));
  }
  return fd;
}

InputBuffer open_payload(const FrameView& frame, int socket, std::optional<SideChannelPayload>& keep,
                         std::span<const char> arena) {
  InputBuffer in(frame.payload, frame.header.size);
  if ((frame.header.flags & frame_arena) != 0) {
    // Read once, then checked against the arena, whose size this process set.
    ArenaRef ref{};
    in.read(&ref, sizeof ref);
    if (ref.offset > arena.size() || ref.size > arena.size() - ref.offset) {
      throw SerializationError("procpool: an arena payload of " + std::to_string(ref.size) + " bytes at offset " +
                               std::to_string(ref.offset) + " lies outside its " + std::to_string(arena.size()) +
                               "-byte arena");
    }
    return InputBuffer(arena.data() + ref.offset, static_cast<std::size_t>(ref.size));
  }
  if ((frame.header.flags & frame_side_channel) == 0) return in;
  std::uint64_t size = 0;
  in.read(&size, sizeof size);
  keep.emplace(receive_fd(socket, frame.header.task_id), static_cast<std::size_t>(size));
  return InputBuffer(keep->data(), keep->size());
}

SideChannelPayload::SideChannelPayload(UniqueFd memfd, std::size_t size) : memfd_(std::move(memfd)), size_(size) {
  // Sealed against shrinking (reads past a shrunk end would fault) and
  // against writes, now or future ones (see MemfdStore::release).
  const int seals = ::fcntl(memfd_.get(), F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0 || (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) == 0) {
    throw SerializationError("procpool: a large payload arrived in a memfd that is not sealed");
  }
  struct stat st {};
  if (::fstat(memfd_.get(), &st) != 0 || !S_ISREG(st.st_mode) || static_cast<std::size_t>(st.st_size) < size) {
    throw SerializationError("procpool: a large payload's memfd is smaller than its frame says");
  }
  if (size == 0) return;
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, memfd_.get(), 0);
  if (p == MAP_FAILED) {
    throw SerializationError(std::string("procpool: cannot map a large payload: ") + std::strerror(errno));
  }
  data_ = static_cast<const char*>(p);
}

SideChannelPayload::~SideChannelPayload() {
  if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
}

}  // namespace procpool::detail
