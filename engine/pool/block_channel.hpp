// Shared blocks on a worker's socket: the parent sends a block's memfd once
// per worker, ahead of the first task there that carries it; the worker
// keeps the blocks it was sent until the parent says to forget one.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "procpool/detail/shared_block.hpp"

namespace procpool::detail {

// Sends `block`'s memfd with its id, kind and size. Returns false if the
// socket failed (the worker is going away) or is full for now (the task then
// waits in the backlog). Never blocks or throws.
bool send_shared_block(int socket, const SharedBlock& block) noexcept;

// The worker's blocks, by id. Block messages wait on the socket ahead of
// their task's frame and of any large payload's memfd, so the worker takes
// them (receive_pending) before it reads anything else from the socket.
class WorkerBlocks {
 public:
  explicit WorkerBlocks(int socket) noexcept : socket_(socket) {}

  // Takes every block message at the head of the socket, without blocking.
  // A message that cannot be used is dropped: the task naming it then fails
  // with SerializationError (unknown id).
  void receive_pending() noexcept;
  // The block `id`, taking pending messages first if it is not here yet.
  std::shared_ptr<SharedBlock> find(std::uint64_t id);
  // The parent released it: drop this worker's reference (a running task's
  // own handle keeps the mapping until it returns).
  void forget(std::uint64_t id) noexcept { blocks_.erase(id); }

 private:
  int socket_;
  std::unordered_map<std::uint64_t, std::shared_ptr<SharedBlock>> blocks_;
};

}  // namespace procpool::detail
