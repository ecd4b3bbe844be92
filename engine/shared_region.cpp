#include "engine/shared_region.hpp"

#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <sys/mman.h>

#include "procpool/errors.hpp"

namespace procpool::detail {

namespace {

constexpr std::size_t page = 4096;
constexpr std::size_t round_up(std::size_t n) { return (n + page - 1) & ~(page - 1); }

}  // namespace

SharedRegion::SharedRegion(int slots, std::size_t ring_capacity) : slots_(slots), ring_capacity_(ring_capacity) {
  slot_offset_ = round_up(sizeof(PoolControl));
  slot_stride_ = round_up(sizeof(SlotControl)) + 2 * ring_capacity;
  size_ = slot_offset_ + static_cast<std::size_t>(slots) * slot_stride_;
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Error(std::string("procpool::Pool: cannot map shared memory: ") + std::strerror(errno));
  base_ = static_cast<char*>(p);
  pool_ = new (base_) PoolControl();
  for (int i = 0; i < slots; ++i) new (slot_base(i)) SlotControl();
}

SharedRegion::~SharedRegion() { ::munmap(base_, size_); }

SlotControl& SharedRegion::slot(int i) const noexcept { return *std::launder(reinterpret_cast<SlotControl*>(slot_base(i))); }

Ring SharedRegion::task_ring(int i) const noexcept {
  return Ring(&slot(i).tasks, slot_base(i) + round_up(sizeof(SlotControl)), ring_capacity_);
}

Ring SharedRegion::result_ring(int i) const noexcept {
  return Ring(&slot(i).results, slot_base(i) + round_up(sizeof(SlotControl)) + ring_capacity_, ring_capacity_);
}

}  // namespace procpool::detail
