// Whether a worker rank on another host is still there, known without MPI:
// Open MPI 4.1 never reports a rank whose node died or was cut off (its TCP
// connections just fall silent), so rank 0 asks over UDP. While a rank on
// another host has tasks out, rank 0 pings it every quarter of the time-out
// (RuntimeOptions::heartbeat_timeout); a thread in the rank answers at once,
// whatever its task is doing. A rank silent for the whole time-out is lost.
// Pings and answers carry rank 0's random token and the rank, so a stray
// datagram (another job, an address shared by two hosts) counts for nothing.
//
// The same thread is such a rank's doorbell (RemoteBell): a rank that has
// had nothing to do for a while sleeps on it, and rank 0 rings it over UDP
// when it sends to the rank after a pause (RankBells serves ranks on its host).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/ipc/doorbell.hpp"
#include "engine/sys/unique_fd.hpp"

namespace procpool::mpi::detail {

// Where a rank answers: its IPv4 addresses (any of them may be the one rank
// 0 reaches) and its UDP port, all in network byte order. Fixed layout: it
// travels in the start-up gather (every rank runs the same build).
struct HeartbeatAddress {
  static constexpr int max_addresses = 8;
  std::uint32_t ipv4[max_addresses] = {};
  std::uint16_t port = 0;  // 0: this rank does not answer (no socket)
  std::uint16_t count = 0;
};

// This host's IPv4 addresses (loopback last: it reaches a process only on
// this host) and `port`; count 0 if it has none.
HeartbeatAddress this_host_address(std::uint16_t port) noexcept;

// Without the bells (rank 0 on another host), a rank polls MPI this long after
// its last message, then sleeps on its RemoteBell; rank 0 rings it when it
// sends after a pause of remote_ring_after (Manager::posted). The margin
// between the two means a rank that sleeps has been rung for every message
// sent since (but a lost datagram: then its sleep's time-out).
constexpr std::chrono::milliseconds remote_poll_for{100};
constexpr std::chrono::milliseconds remote_ring_after{50};

// A worker rank's bell that rank 0 on another host rings (HeartbeatMonitor::ring).
struct RemoteBell {
  procpool::detail::Doorbell bell;
  std::atomic<std::uint64_t> rings{0};  // counted before each ring: a waiter sees whether it was rung
};

// A worker rank's side: a socket on a free port of every address, and a
// thread that answers pings for `rank` and rings its RemoteBell until the
// process exits. Never throws: without a socket it does not answer
// (address().port is 0, bell() null), and rank 0 then cannot tell a silent
// rank from a lost one, so it does not ping it.
class HeartbeatResponder {
 public:
  explicit HeartbeatResponder(int rank) noexcept;
  HeartbeatResponder(const HeartbeatResponder&) = delete;
  HeartbeatResponder& operator=(const HeartbeatResponder&) = delete;
  const HeartbeatAddress& address() const noexcept { return address_; }
  RemoteBell* bell() const noexcept { return address_.port != 0 ? bell_.get() : nullptr; }

 private:
  HeartbeatAddress address_;
  std::shared_ptr<RemoteBell> bell_;  // shared with the thread, which outlives this object
};

// Rank 0's side: pings ranks and collects their answers. Not thread-safe
// (the manager thread alone uses it). Never throws.
class HeartbeatMonitor {
 public:
  HeartbeatMonitor() noexcept;
  bool usable() const noexcept { return static_cast<bool>(socket_); }
  // Sends one ping for `rank` to each of its addresses; no wait.
  void ping(int rank, const HeartbeatAddress& to) noexcept;
  // Rings `rank`'s RemoteBell (a message to it is on its way); no wait.
  void ring(int rank, const HeartbeatAddress& to) noexcept;
  // The ranks that answered since the last call (a rank may appear more than once).
  std::vector<int> answered() noexcept;

 private:
  void send(std::uint32_t kind, int rank, const HeartbeatAddress& to) noexcept;

  procpool::detail::UniqueFd socket_;
  std::uint64_t token_ = 0;
};

}  // namespace procpool::mpi::detail
