#include "engine/mpi/heartbeat.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace procpool::mpi::detail {

namespace {

constexpr std::uint32_t beat_magic = 0x70706862;  // "pphb": a ping, or its answer
constexpr std::uint32_t ring_magic = 0x70707262;  // "pprb": a ring

// A ping, and its answer (the same bytes sent back): rank 0's token, the rank asked.
struct Beat {
  std::uint32_t magic = beat_magic;
  std::int32_t rank = 0;
  std::uint64_t token = 0;
};

}  // namespace

HeartbeatAddress this_host_address(std::uint16_t port) noexcept {
  HeartbeatAddress address;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return address;
  for (int pass = 0; pass < 2; ++pass) {
    for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
      if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET || (a->ifa_flags & IFF_UP) == 0) continue;
      const bool loopback = (a->ifa_flags & IFF_LOOPBACK) != 0;
      if (loopback != (pass == 1) || address.count == HeartbeatAddress::max_addresses) continue;
      sockaddr_in in;
      std::memcpy(&in, a->ifa_addr, sizeof in);
      address.ipv4[address.count++] = in.sin_addr.s_addr;
    }
  }
  ::freeifaddrs(list);
  address.port = port;
  return address;
}

HeartbeatResponder::HeartbeatResponder(int rank) noexcept {
  procpool::detail::UniqueFd socket(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!socket) return;
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t length = sizeof any;
  if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 ||
      ::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&any), &length) != 0) {
    return;
  }
  address_ = this_host_address(any.sin_port);
  if (address_.count == 0) {
    address_.port = 0;
    return;
  }
  try {
    bell_ = std::make_shared<RemoteBell>();
    // Blocked in recvfrom until a ping comes: no CPU while rank 0 does not
    // ask. It lives as long as the process (exit ends it); it shares nothing
    // with the serving thread, so a task that runs for hours does not keep it from answering.
    std::thread([fd = socket.release(), rank, bell = bell_] {
      for (;;) {
        Beat beat;
        sockaddr_in from{};
        socklen_t from_length = sizeof from;
        const ssize_t got =
            ::recvfrom(fd, &beat, sizeof beat, 0, reinterpret_cast<sockaddr*>(&from), &from_length);
        if (got < 0 && errno != EINTR) return;
        if (got != static_cast<ssize_t>(sizeof beat) || beat.rank != rank) continue;
        if (beat.magic == ring_magic) {
          bell->rings.fetch_add(1);
          bell->bell.ring();
          continue;
        }
        if (beat.magic != beat_magic) continue;
        ::sendto(fd, &beat, sizeof beat, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&from), from_length);
      }
    }).detach();
  } catch (...) {
    address_.port = 0;  // no thread: no answers
  }
}

HeartbeatMonitor::HeartbeatMonitor() noexcept
    : socket_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) {
  if (::getrandom(&token_, sizeof token_, 0) != static_cast<ssize_t>(sizeof token_)) {
    token_ = static_cast<std::uint64_t>(::getpid()) << 32 ^
             static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
}

void HeartbeatMonitor::ping(int rank, const HeartbeatAddress& to) noexcept { send(beat_magic, rank, to); }

void HeartbeatMonitor::ring(int rank, const HeartbeatAddress& to) noexcept { send(ring_magic, rank, to); }

void HeartbeatMonitor::send(std::uint32_t kind, int rank, const HeartbeatAddress& to) noexcept {
  if (!socket_ || to.port == 0) return;
  Beat beat;
  beat.magic = kind;
  beat.rank = rank;
  beat.token = token_;
  for (int i = 0; i < to.count && i < HeartbeatAddress::max_addresses; ++i) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = to.port;
    address.sin_addr.s_addr = to.ipv4[i];
    // A full socket buffer or an unreachable address: this one is lost (a
    // ping is sent again, a missed ring costs the sleeper's time-out).
    ::sendto(socket_.get(), &beat, sizeof beat, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&address),
             sizeof address);
  }
}

std::vector<int> HeartbeatMonitor::answered() noexcept {
  std::vector<int> ranks;
  if (!socket_) return ranks;
  for (;;) {
    Beat beat;
    const ssize_t got = ::recv(socket_.get(), &beat, sizeof beat, MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EINTR) continue;
      return ranks;  // nothing more (or an error an unreachable address left behind)
    }
    if (got == static_cast<ssize_t>(sizeof beat) && beat.magic == beat_magic && beat.token == token_) {
      try {
        ranks.push_back(beat.rank);
      } catch (...) {
        return ranks;
      }
    }
  }
}

}  // namespace procpool::mpi::detail
