// PoolCore's part in shared data (Shared<T>, SharedArray<T>): each block's
// memfd goes to a worker once, ahead of the first task there that needs it,
// and a forget frame follows once the parent has released the block.
#include "engine/pool/pool_core.hpp"

#include "engine/pool/block_channel.hpp"

namespace procpool::detail {

bool PoolCore::send_blocks_locked(int index, const Task& task) {
  Slot& slot = slots_[static_cast<std::size_t>(index)];
  for (const auto& block : task.blocks) {
    if (slot.sent_blocks.contains(block->id())) continue;
    if (!send_shared_block(slot.socket.get(), *block)) return false;  // the worker is going away
    block->mark_sent();
    slot.sent_blocks.insert(block->id());
  }
  return true;
}

void PoolCore::forget_released_blocks_locked() {
  for (const std::uint64_t id : released_blocks_->take()) {
    for (Slot& slot : slots_) {
      if (slot.sent_blocks.erase(id) != 0) slot.forgets.push_back(id);
    }
  }
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (slot.forgets.empty() || slot.state != Slot::State::running) continue;
    // A full ring keeps the rest for the next round: it drains as the worker runs.
    std::size_t pushed = 0;
    while (pushed < slot.forgets.size() && slot.tasks.push(FrameKind::forget, 0, slot.forgets[pushed], nullptr, 0)) {
      ++pushed;
    }
    if (pushed == 0) continue;
    slot.forgets.erase(slot.forgets.begin(), slot.forgets.begin() + static_cast<std::ptrdiff_t>(pushed));
    region_.slot(static_cast<int>(i)).tasks_bell.ring();
  }
}

}  // namespace procpool::detail
