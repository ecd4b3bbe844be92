// The spill store of payloads too large for a ring: a memfd, grown in place
// and sealed before another process gets it (over the side channel).
#pragma once

#include <cstddef>

#include "engine/sys/unique_fd.hpp"
#include "procpool/detail/buffer.hpp"

namespace procpool::detail {

// One per OutputBuffer that spills (give it to the buffer's constructor);
// used by one thread at a time.
class MemfdStore final : public SpillStore {
 public:
  MemfdStore() = default;
  MemfdStore(const MemfdStore&) = delete;
  MemfdStore& operator=(const MemfdStore&) = delete;
  ~MemfdStore() override { discard(); }

  // Creates the memfd, or grows it in place (the kernel moves pages, not
  // bytes). Throws SerializationError if no memfd can be made, std::bad_alloc
  // if it cannot grow.
  Region grow(std::size_t used, std::size_t needed) override;
  void discard() noexcept override;
  // Whether a memfd holds spilled bytes now.
  bool holds() const noexcept { return static_cast<bool>(fd_); }

  // The memfd holding `out`'s spilled bytes (read out.size() first), unmapped
  // and sealed against any change; `out` is left empty. An empty fd if `out`
  // has not spilled.
  UniqueFd release(OutputBuffer& out) noexcept;

 private:
  UniqueFd fd_;
  char* data_ = nullptr;
  std::size_t capacity_ = 0;
};

}  // namespace procpool::detail
