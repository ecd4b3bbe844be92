// What travels between rank 0 and the worker ranks, and how both sides wait.
//
// A task or a result is one message: a MessageHeader, then the payload (the
// same bytes as in the shared-memory pool: task_codec.hpp, error_codec.hpp).
// A payload too large for one message (MPI counts are ints) or large enough
// not to be worth copying goes as a header alone, then in pieces. Small ones
// travel several to a message (header_batch): a MessageHeader whose task_id
// is their count and size their bytes, then each as [MessageHeader][payload].
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace procpool::mpi::detail {

enum Tag : int {
  tag_task = 1,          // rank 0 to a worker: MessageHeader (+ payload)
  tag_task_piece = 2,    // rank 0 to a worker: the next piece of a task's payload
  tag_result = 3,        // a worker to rank 0: MessageHeader (+ payload)
  tag_result_piece = 4,  // a worker to rank 0: the next piece of a result's payload
  tag_cancel = 5,        // rank 0 to a worker: a pool id whose tasks to drop (terminate)
  tag_shutdown = 6,      // rank 0 to a worker: leave (one byte: 1 if a worker rank died)
  tag_share = 7,         // rank 0 to a worker: MessageHeader of a shared value (task_id: its block id)
  tag_share_piece = 8,   // rank 0 to a worker: the next piece of a shared value's bytes
  tag_forget = 9,        // rank 0 to a worker: a block id it may drop (rank 0 released it)
  tag_cancel_task = 10,  // rank 0 to a worker: a task id to drop unrun (AsyncResult::cancel), sent after the task
};

enum HeaderFlags : std::uint32_t {
  // Result only: the task was dropped unrun (its pool was terminated, or it was cancelled).
  header_dropped = 1,
  // tag_task or tag_result: a batch of tasks or results (task_id: how many), each with its own header.
  header_batch = 2,
};

// The most bytes a batch message holds: under Open MPI's shared-memory eager
// limit (4 KiB, its headers included), so a batch is sent in one copy
// without waiting for its receiver.
constexpr std::size_t batch_bytes = 4000;

// Plain fixed-width fields, copied byte for byte: every rank runs the same
// build (code_ref.hpp), so the layout is the same everywhere.
struct MessageHeader {
  std::uint64_t task_id = 0;  // tag_share: the block id
  std::uint64_t pool_id = 0;  // tasks: the pool that submitted it
  std::uint64_t size = 0;     // payload bytes
  std::uint64_t piece = 0;    // 0: the payload follows in this message; else pieces of this size (the last shorter)
  std::int32_t pid = 0;       // results: the worker's pid on its host
  std::uint32_t flags = 0;
};
static_assert(sizeof(MessageHeader) == 40);

// Pieces of `size` bytes in messages of at most `piece` bytes.
constexpr std::size_t piece_count(std::uint64_t size, std::uint64_t piece) {
  return piece == 0 ? 0 : static_cast<std::size_t>((size + piece - 1) / piece);
}

// Throws procpool::Error naming `what` and MPI's message unless rc is MPI_SUCCESS.
void check(int rc, const char* what);

// Polling with a back-off, where no doorbell can wake the waiter (a rank on
// another host, a payload in pieces): Open MPI's blocking calls spin at 100%
// CPU, so waits are MPI_Iprobe/MPI_Test loops that spin for a short while
// after the last progress, then sleep, doubling the sleep up to a millisecond.
class Backoff {
 public:
  void reset() noexcept { idle_since_ = {}; sleep_ = {}; }
  void pause() noexcept;

 private:
  std::chrono::steady_clock::time_point idle_since_{};
  std::chrono::microseconds sleep_{};
};

// Waits for every request, with the back-off; throws on an MPI error.
void wait_all(std::vector<MPI_Request>& requests, const char* what);

// Posts the sends of one message: `message` has room for a MessageHeader,
// which is written there, followed by the payload when header.piece is 0;
// else the payload, at `payload`, follows in pieces on `piece_tag`. The bytes
// must stay until the requests complete.
void post_message(MPI_Comm comm, int dest, int tag, char* message, const MessageHeader& header,
                  const char* payload, int piece_tag, std::vector<MPI_Request>& requests);

// Posts the receives of a payload that comes in pieces (header.piece, at most
// INT_MAX, is not 0) into `payload`, which has room for header.size bytes.
void post_piece_receives(MPI_Comm comm, int source, int piece_tag, const MessageHeader& header, char* payload,
                         std::vector<MPI_Request>& requests);

// How the sender lays a payload out: inline below `inline_limit` bytes, else
// in pieces of at most `max_message` bytes.
MessageHeader layout(std::uint64_t size, std::size_t inline_limit, std::size_t max_message);

}  // namespace procpool::mpi::detail
