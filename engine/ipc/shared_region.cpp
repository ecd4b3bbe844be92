#include "engine/ipc/shared_region.hpp"

#include <boost/interprocess/anonymous_shared_memory.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <new>
#include <string>

#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

constexpr std::size_t round_up(std::size_t n) { return (n + page_size - 1) & ~(page_size - 1); }

}  // namespace

SharedRegion::SharedRegion(int slots, std::size_t ring_capacity) : slots_(slots), ring_capacity_(ring_capacity) {
  slot_offset_ = round_up(sizeof(PoolControl));
  slot_stride_ = round_up(sizeof(SlotControl)) + 2 * ring_capacity;
  const std::size_t size = slot_offset_ + static_cast<std::size_t>(slots) * slot_stride_;
  try {
    mapping_ = boost::interprocess::anonymous_shared_memory(size);
  } catch (const boost::interprocess::interprocess_exception& e) {
    throw Error(std::string("procpool::Pool: cannot map shared memory: ") + e.what());
  }
  base_ = static_cast<char*>(mapping_.get_address());
  pool_ = new (base_) PoolControl();
  for (int i = 0; i < slots; ++i) new (slot_base(i)) SlotControl();
}

SlotControl& SharedRegion::slot(int i) const noexcept { return *std::launder(reinterpret_cast<SlotControl*>(slot_base(i))); }

Ring SharedRegion::task_ring(int i) const noexcept {
  return Ring(&slot(i).tasks, slot_base(i) + round_up(sizeof(SlotControl)), ring_capacity_);
}

Ring SharedRegion::result_ring(int i) const noexcept {
  return Ring(&slot(i).results, slot_base(i) + round_up(sizeof(SlotControl)) + ring_capacity_, ring_capacity_);
}

}  // namespace procpool::detail
