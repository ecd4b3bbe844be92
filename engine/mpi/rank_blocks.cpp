#include "engine/mpi/rank_blocks.hpp"

#include <climits>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "engine/executor/attachments.hpp"
#include "engine/mpi/wire.hpp"
#include "procpool/errors.hpp"

namespace procpool::mpi::detail {

namespace {

using procpool::detail::SharedBlock;

// Never freed: the rank exits with std::exit, and a block's destructor must
// not run after the statics it uses are gone.
std::unordered_map<std::uint64_t, std::shared_ptr<SharedBlock>>& rank_blocks() {
  static auto* blocks = new std::unordered_map<std::uint64_t, std::shared_ptr<SharedBlock>>();
  return *blocks;
}

std::shared_ptr<SharedBlock> find_rank_block(std::uint64_t id) {
  const auto it = rank_blocks().find(id);
  return it == rank_blocks().end() ? nullptr : it->second;
}

}  // namespace

void serve_shared_blocks() noexcept { procpool::detail::set_shared_block_lookup(&find_rank_block); }

void receive_shared_block(MPI_Comm comm, const std::vector<char>& message, std::vector<MPI_Request>& requests) {
  MessageHeader header;
  if (message.size() < sizeof header) throw Error("procpool::mpi: a shared value came without its header");
  std::memcpy(&header, message.data(), sizeof header);
  if (header.piece > INT_MAX) throw Error("procpool::mpi: a shared value came in pieces over INT_MAX bytes");
  if (header.piece == 0 && message.size() != sizeof header + header.size) {
    throw Error("procpool::mpi: a shared value's size does not match its header");
  }
  auto block = SharedBlock::fill_value(header.task_id, header.size, [&](char* data) {
    if (header.piece == 0) {
      if (header.size != 0) std::memcpy(data, message.data() + sizeof header, header.size);
      return;
    }
    post_piece_receives(comm, 0, tag_share_piece, header, data, requests);
    wait_all(requests, "MPI_Testall");
  });
  rank_blocks()[header.task_id] = std::move(block);
}

void forget_shared_block(const std::vector<char>& message) noexcept {
  std::uint64_t id = 0;
  if (message.size() != sizeof id) return;
  std::memcpy(&id, message.data(), sizeof id);
  rank_blocks().erase(id);
}

}  // namespace procpool::mpi::detail
