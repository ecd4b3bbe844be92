// The slot table's part in shared data (Shared<T>, SharedArray<T>): each
// block's memfd goes to a worker once, ahead of the first task there that
// needs it, and a forget frame follows once the parent has released the block.
#include "engine/pool/slot_table.hpp"

#include "engine/pool/block_channel.hpp"

namespace procpool::detail {

void SlotTable::watch_released_blocks(std::function<void()> wake) {
  released_blocks_ = std::make_shared<ReleasedBlocks>(std::move(wake));
  detail::watch_released_blocks(released_blocks_);
}

void SlotTable::stop_watching_released_blocks() noexcept {
  if (released_blocks_) released_blocks_->close();
}

bool SlotTable::send_blocks_locked(int index, const SharedBlocks& blocks) {
  WorkerSlot& s = slot(index);
  for (const auto& block : blocks) {
    if (s.sent_blocks.contains(block->id())) continue;
    if (!send_shared_block(s.socket.get(), *block)) return false;  // the worker is going away
    block->mark_sent();
    s.sent_blocks.insert(block->id());
  }
  return true;
}

void SlotTable::forget_released_blocks_locked() {
  if (!released_blocks_) return;
  for (const std::uint64_t id : released_blocks_->take()) {
    for (WorkerSlot& s : slots_) {
      if (s.sent_blocks.erase(id) != 0) s.forgets.push_back(id);
    }
  }
  for (int i = 0; i < size(); ++i) {
    WorkerSlot& s = slot(i);
    if (s.forgets.empty() || s.state != WorkerSlot::State::running) continue;
    // A full ring keeps the rest for the next round: it drains as the worker runs.
    std::size_t pushed = 0;
    while (pushed < s.forgets.size() && s.tasks.push(FrameKind::forget, 0, s.forgets[pushed], nullptr, 0)) ++pushed;
    if (pushed == 0) continue;
    s.forgets.erase(s.forgets.begin(), s.forgets.begin() + static_cast<std::ptrdiff_t>(pushed));
    region_.slot(i).tasks_bell.ring();
  }
}

}  // namespace procpool::detail
