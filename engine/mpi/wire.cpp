#include "engine/mpi/wire.hpp"

#include <algorithm>
#include <cstring>
#include <thread>

#include "engine/sys/futex.hpp"
#include "procpool/errors.hpp"

namespace procpool::mpi::detail {

namespace {

// How long a poller spins after its last progress before it starts to sleep:
// long enough to catch the next task of a steady stream without a sleep.
constexpr auto spin_time = std::chrono::microseconds(50);
constexpr auto first_sleep = std::chrono::microseconds(16);
constexpr auto longest_sleep = std::chrono::microseconds(1000);

}  // namespace

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw Error(std::string("procpool::mpi: ") + what + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}

void Backoff::pause() noexcept {
  const auto now = std::chrono::steady_clock::now();
  if (idle_since_ == std::chrono::steady_clock::time_point{}) idle_since_ = now;
  if (now - idle_since_ < spin_time) {
    // Not sched_yield(): next to busy processes it gives the core away for
    // a whole time slice (futex.hpp's spin_until).
    for (int i = 0; i < 32; ++i) procpool::detail::cpu_relax();
    return;
  }
  sleep_ = std::clamp(sleep_ * 2, first_sleep, longest_sleep);
  std::this_thread::sleep_for(sleep_);
}

void wait_all(std::vector<MPI_Request>& requests, const char* what) {
  Backoff backoff;
  for (;;) {
    int done = 0;
    check(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE), what);
    if (done != 0) break;
    backoff.pause();
  }
  requests.clear();
}

MessageHeader layout(std::uint64_t size, std::size_t inline_limit, std::size_t max_message) {
  MessageHeader header;
  header.size = size;
  if (size + sizeof(MessageHeader) > std::min(inline_limit, max_message)) header.piece = max_message;
  return header;
}

void post_message(MPI_Comm comm, int dest, int tag, char* message, const MessageHeader& header,
                  const char* payload, int piece_tag, std::vector<MPI_Request>& requests) {
  std::memcpy(message, &header, sizeof header);
  const std::uint64_t first = sizeof header + (header.piece == 0 ? header.size : 0);
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Isend(message, static_cast<int>(first), MPI_BYTE, dest, tag, comm, &request), "MPI_Isend");
  requests.push_back(request);
  for (std::uint64_t offset = 0; header.piece != 0 && offset < header.size; offset += header.piece) {
    const auto n = static_cast<int>(std::min(header.piece, header.size - offset));
    check(MPI_Isend(payload + offset, n, MPI_BYTE, dest, piece_tag, comm, &request), "MPI_Isend");
    requests.push_back(request);
  }
}

void post_piece_receives(MPI_Comm comm, int source, int piece_tag, const MessageHeader& header, char* payload,
                         std::vector<MPI_Request>& requests) {
  for (std::uint64_t offset = 0; offset < header.size; offset += header.piece) {
    const auto n = static_cast<int>(std::min(header.piece, header.size - offset));
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Irecv(payload + offset, n, MPI_BYTE, source, piece_tag, comm, &request), "MPI_Irecv");
    requests.push_back(request);
  }
}

}  // namespace procpool::mpi::detail
