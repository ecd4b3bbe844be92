#include "engine/mpi/lifeline.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "engine/sys/unique_fd.hpp"

namespace procpool::mpi::detail {

using procpool::detail::UniqueFd;

namespace {

// How long a worker rank tries one of rank 0's addresses, and waits for its greeting.
constexpr int connect_ms = 1000;
// After the connection ends, how long rank 0's goodbye may take to arrive over MPI.
constexpr std::chrono::milliseconds goodbye_grace{1000};

// Waits for `events` on `fd`; false on a time-out or an error.
bool wait_for(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    return n == 1 && (p.revents & events) != 0;
  }
}

// A connection to rank 0 at `ip`, greeted with `token`; an empty fd if not.
UniqueFd connect_to(std::uint32_t ip, std::uint16_t port, std::uint64_t token) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fd;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = port;
  address.sin_addr.s_addr = ip;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    if (errno != EINPROGRESS || !wait_for(fd.get(), POLLOUT, connect_ms)) return {};
    int error = 0;
    socklen_t length = sizeof error;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) return {};
  }
  // The greeting: an address shared by two hosts (loopback, say) may lead
  // to another process, which would not send this job's token.
  std::uint64_t got = 0;
  std::size_t have = 0;
  while (have < sizeof got) {
    if (!wait_for(fd.get(), POLLIN, connect_ms)) return {};
    const ssize_t n = ::recv(fd.get(), reinterpret_cast<char*>(&got) + have, sizeof got - have, 0);
    if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) return {};
    if (n > 0) have += static_cast<std::size_t>(n);
  }
  if (got != token) return {};
  return fd;
}

// Blocks until the connection ends; why, in words.
std::string wait_for_end(int fd) {
  for (;;) {
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return std::string("poll failed: ") + std::strerror(errno);
    }
    char bytes[64];
    const ssize_t n = ::recv(fd, bytes, sizeof bytes, MSG_DONTWAIT);
    if (n > 0) continue;  // rank 0 writes nothing after its greeting: ignored
    if (n == 0) return "its connection closed: the process ended";
    if (errno == EINTR || errno == EAGAIN) continue;
    return std::string("its connection failed: ") + std::strerror(errno);
  }
}

}  // namespace

struct Lifeline::State {
  std::atomic<bool> disarmed{false};
};

LifelineAddress start_lifeline_listener() noexcept {
  LifelineAddress address;
  UniqueFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket) return address;
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t length = sizeof any;
  if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 ||
      ::listen(socket.get(), SOMAXCONN) != 0 ||
      ::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&any), &length) != 0 ||
      ::getrandom(&address.token, sizeof address.token, 0) != static_cast<ssize_t>(sizeof address.token)) {
    return address;
  }
  address.at = this_host_address(any.sin_port);
  if (address.at.count == 0) return {};
  try {
    // Blocked in accept(); the connections stay open (never read, never
    // closed) until the process ends, which closes them for the ranks.
    std::thread([fd = socket.release(), token = address.token] {
      for (;;) {
        const int connection = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (connection < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));  // that rank goes without
            continue;
          }
          return;
        }
        ::send(connection, &token, sizeof token, MSG_NOSIGNAL | MSG_DONTWAIT);
      }
    }).detach();
  } catch (...) {
    return {};
  }
  return address;
}

Lifeline::Lifeline(const LifelineAddress& rank0, int rank) noexcept {
  if (rank0.at.port == 0) return;
  try {
    state_ = std::make_shared<State>();
    std::thread([rank0, rank, state = state_] {
      UniqueFd fd;
      for (int i = 0; i < rank0.at.count && i < HeartbeatAddress::max_addresses && !fd; ++i) {
        fd = connect_to(rank0.at.ipv4[i], rank0.at.port, rank0.token);
      }
      if (!fd) return;  // unreachable this way: rank 0's end goes unseen, as before
      const std::string why = wait_for_end(fd.get());
      const auto deadline = std::chrono::steady_clock::now() + goodbye_grace;
      while (!state->disarmed.load() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (state->disarmed.load()) return;
      char host[64] = {};
      ::gethostname(host, sizeof host - 1);
      std::fprintf(stderr, "procpool::mpi: worker rank %d on host %s (pid %d) lost rank 0 (%s); this rank leaves\n",
                   rank, host, static_cast<int>(::getpid()), why.c_str());
      std::fflush(stderr);
      ::_exit(1);
    }).detach();
  } catch (...) {
    state_.reset();
  }
}

void Lifeline::disarm() noexcept {
  if (state_) state_->disarmed.store(true);
}

}  // namespace procpool::mpi::detail
