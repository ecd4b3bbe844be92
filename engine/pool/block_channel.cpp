#include "engine/pool/block_channel.hpp"

#include <cerrno>
#include <sys/socket.h>

#include "engine/sys/fd_passing.hpp"
#include "engine/sys/unique_fd.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

// Task ids (on large-payload memfds) stay far below this bit; block
// messages carry it in their first word so the worker can tell them apart.
constexpr std::uint64_t block_message_bit = std::uint64_t{1} << 63;

struct BlockMessage {
  std::uint64_t tagged_id;
  std::uint64_t kind;
  std::uint64_t size;
};

}  // namespace

bool send_shared_block(int socket, const SharedBlock& block) noexcept {
  const BlockMessage message{block.id() | block_message_bit, static_cast<std::uint64_t>(block.kind()), block.size()};
  // Never waits: a worker reads these only as it reaches the tasks that name
  // them, and the thread sending may be the one that must drain its results.
  return send_with_fd(socket, &message, sizeof message, block.fd(), MSG_DONTWAIT);
}

void WorkerBlocks::receive_pending() noexcept {
  for (;;) {
    std::uint64_t first = 0;
    ssize_t n;
    do {
      n = ::recv(socket_, &first, sizeof first, MSG_PEEK | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof first) || (first & block_message_bit) == 0) return;
    BlockMessage message{};
    UniqueFd fd;
    const ssize_t got = receive_with_fd(socket_, &message, sizeof message, fd, MSG_DONTWAIT);
    if (got < 0) return;
    if (got != static_cast<ssize_t>(sizeof message) || !fd || message.kind > 0xff) continue;  // consumed, unusable
    const std::uint64_t id = message.tagged_id & ~block_message_bit;
    try {
      blocks_[id] = SharedBlock::adopt(id, static_cast<SharedBlock::Kind>(message.kind), fd.release(),
                                       static_cast<std::size_t>(message.size));
    } catch (const std::exception&) {
      // Dropped: the task naming it fails with SerializationError.
    }
  }
}

std::shared_ptr<SharedBlock> WorkerBlocks::find(std::uint64_t id) {
  auto it = blocks_.find(id);
  if (it == blocks_.end()) {
    receive_pending();
    it = blocks_.find(id);
  }
  return it == blocks_.end() ? nullptr : it->second;
}

}  // namespace procpool::detail
