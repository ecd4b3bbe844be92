// The manager's part in shared values (Shared<T>): each goes to a rank once,
// ahead of the first task there that carries it, and a forget follows once
// rank 0 has released it.
#include "engine/mpi/manager.hpp"

#include <algorithm>

namespace procpool::mpi::detail {

thread_local bool Manager::on_manager_thread_ = false;

void Manager::release_noticed() noexcept {
  releases_pending_.store(true);
  // The manager thread released it itself (holding mutex_): it is awake.
  if (on_manager_thread_) return;
  // Under mutex_, so the manager cannot miss it between its check and its wait.
  std::lock_guard lock(mutex_);
  wake_locked();
}

void Manager::send_blocks_locked(Worker& worker, Task& task) {
  const auto fresh = static_cast<std::size_t>(std::count_if(
      task.blocks.begin(), task.blocks.end(), [&](const auto& b) { return worker.blocks.count(b->id()) == 0; }));
  if (fresh == 0) return;
  // Sized once: the headers must not move while their sends are out.
  task.block_headers.resize(fresh * sizeof(MessageHeader));
  char* header_room = task.block_headers.data();
  for (const auto& block : task.blocks) {
    if (!worker.blocks.insert(block->id()).second) continue;
    // Always in pieces, straight from the value's mapping: it is never copied here.
    MessageHeader header = layout(block->size(), 0, max_message_);
    header.task_id = block->id();
    post_message(comm_, worker.info.rank, tag_share, header_room, header, block->data(), tag_share_piece, task.sends);
    posted(worker);
    block->mark_sent();
    header_room += sizeof header;
  }
}

bool Manager::send_forgets_locked(const std::vector<std::uint64_t>& released) {
  bool progress = false;
  for (const std::uint64_t id : released) {
    for (Worker& w : workers_) {
      // MPI keeps rank 0's messages to a rank in order: this one comes after every task that used the value.
      if (w.lost || w.blocks.erase(id) == 0) continue;
      ControlSend& send = control_sends_.emplace_back();
      send.value = id;
      send.rank = w.info.rank;
      check(MPI_Isend(&send.value, sizeof send.value, MPI_BYTE, w.info.rank, tag_forget, comm_, &send.request),
            "MPI_Isend");
      posted(w);
      progress = true;
    }
  }
  return progress;
}

}  // namespace procpool::mpi::detail
