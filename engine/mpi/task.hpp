// One MPI task on rank 0, from submission to result: its message, its
// result state, and the policy it was submitted with.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/executor/attachments.hpp"
#include "engine/ipc/side_channel.hpp"
#include "engine/mpi/ledger.hpp"
#include "engine/mpi/wire.hpp"
#include "procpool/detail/result_state.hpp"

namespace procpool::mpi::detail {

// The message buffer starts with room for its MessageHeader; the payload
// follows it there, or is `mapped` (a payload the encoder spilled to a memfd,
// sent in pieces straight from it).
struct Task {
  MessageHeader header;
  std::shared_ptr<procpool::detail::ResultStateBase> state;
  std::shared_ptr<Ledger> ledger;
  std::vector<char> message;
  std::unique_ptr<procpool::detail::SideChannelPayload> mapped;
  // The shared values its handles name, kept until it is answered: the last
  // release (after which the ranks are told to forget one) comes after that.
  procpool::detail::SharedBlocks blocks;
  std::vector<char> block_headers;  // of the values sent ahead of it, until sent
  std::vector<MPI_Request> sends;  // until they complete (the values' sends too)
  bool abandoned = false;          // terminated or cancelled: the answer is dropped
  int priority = 0;                // TaskOptions::priority: higher leaves the queue first
  int retries_left = 0;            // runs still allowed after a rank dies under it
  int attempts = 0;                // sent to a rank this many times
  int sent_to = 0;                 // the rank it went to last
  std::uint64_t sent_in = 0;       // which message to that rank it went in (Worker::messages)

  const char* payload() const noexcept {
    return mapped ? mapped->data() + sizeof(MessageHeader) : message.data() + sizeof(MessageHeader);
  }
};

}  // namespace procpool::mpi::detail
