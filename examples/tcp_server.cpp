// The note's server.py: a TCP server that upper-cases what it receives, one
// process per connection. The parent accepts; a child talks to its client
// until the client hangs up.
//
//   tcp_server [HOST [PORT]]   # default 127.0.0.1 8080; port 0 picks a free one
//
// Besides the note: finished handlers are reaped as they end (no zombies),
// and SIGTERM or SIGINT stops the server and its handlers.
#include <procpool/procpool.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

// Signals that stop the server. The parent blocks them and reads them from a
// signalfd; a handler unblocks them, so a terminate() that arrives while it
// is being forked stays pending and still ends it.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    // MSG_NOSIGNAL: a client that hung up is an error here, not a SIGPIPE.
    const ssize_t sent = ::send(fd, data, size, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += sent;
    size -= static_cast<std::size_t>(sent);
  }
  return true;
}

// talk(conn) from the note, run in the child.
void talk(int conn, int listener) {
  const sigset_t stop = stop_signals();
  pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
  // A handler has no use for the listening socket; without this copy the
  // port would stay taken while a handler outlives the server.
  ::close(listener);

  char data[1024];
  for (;;) {
    const ssize_t received = ::recv(conn, data, sizeof data, 0);
    if (received < 0 && errno == EINTR) continue;
    if (received <= 0) break;  // 0: the client hung up; < 0: reset, as the note's ConnectionResetError
    for (ssize_t i = 0; i < received; ++i) {
      data[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(data[i])));
    }
    if (!send_all(conn, data, static_cast<std::size_t>(received))) break;
  }
  ::close(conn);
}

std::string peer_name(const sockaddr_storage& addr) {
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), sizeof addr, host, sizeof host, port, sizeof port,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  return std::string(host) + ':' + port;
}

int fail(const std::string& what) {
  std::cerr << "tcp_server: " << what << ": " << std::strerror(errno) << '\n';
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Whole lines at a time, and nothing unflushed for fork() to copy.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  const std::string host = argc > 1 ? argv[1] : "127.0.0.1";
  const std::string port = argc > 2 ? argv[2] : "8080";

  const sigset_t stop = stop_signals();
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  const int signals = signalfd(-1, &stop, SFD_CLOEXEC);
  if (signals < 0) return fail("signalfd");

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    std::cerr << "tcp_server: " << host << ':' << port << ": " << gai_strerror(rc) << '\n';
    return 1;
  }
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);

  const int listener = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return fail("socket");
  const int on = 1;
  // Restart at once on the same port, even while old connections linger in TIME_WAIT.
  if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) return fail("SO_REUSEADDR");
  if (::bind(listener, found->ai_addr, found->ai_addrlen) < 0) return fail("bind " + host + ':' + port);
  if (::listen(listener, 5) < 0) return fail("listen");

  sockaddr_storage bound{};
  socklen_t bound_size = sizeof bound;
  if (getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &bound_size) < 0) return fail("getsockname");
  const std::string bound_name = peer_name(bound);
  std::cout << "listening on " << host << bound_name.substr(bound_name.rfind(':')) << '\n';

  // A handler stays here until its sentinel says it has ended; then join()
  // reaps it at once.
  std::vector<std::unique_ptr<procpool::Process>> handlers;
  bool running = true;
  while (running) {
    std::vector<pollfd> watched{{listener, POLLIN, 0}, {signals, POLLIN, 0}};
    for (const auto& handler : handlers) watched.push_back({handler->sentinel(), POLLIN, 0});
    if (::poll(watched.data(), watched.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return fail("poll");
    }

    if (watched[1].revents != 0) {
      signalfd_siginfo info{};
      if (::read(signals, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        std::cout << "signal " << info.ssi_signo << ": shutting down\n";
      }
      running = false;
    }

    // From the back, so the indexes of the handlers still to check hold.
    for (std::size_t i = handlers.size(); i-- > 0;) {
      if (watched[2 + i].revents == 0) continue;
      procpool::Process& handler = *handlers[i];
      handler.join();
      std::cout << handler.name() << " (pid " << *handler.pid() << ") finished, exitcode " << *handler.exitcode()
                << '\n';
      handlers.erase(handlers.begin() + static_cast<std::ptrdiff_t>(i));
      std::cout << "active children: " << procpool::active_children().size() << '\n';
    }

    if (running && (watched[0].revents & POLLIN) != 0) {
      sockaddr_storage peer{};
      socklen_t peer_size = sizeof peer;
      const int conn = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &peer_size, SOCK_CLOEXEC);
      if (conn < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return fail("accept");
      }
      auto handler = std::make_unique<procpool::Process>(talk, conn, listener);
      // A handler must not outlive the server, even one killed with SIGKILL.
      handler->set_daemon(true);
      handler->start();
      // The child has its own copy; the parent's would keep the connection
      // open after the child has hung up.
      ::close(conn);
      std::cout << "connection from " << peer_name(peer) << ": " << handler->name() << " (pid " << *handler->pid()
                << ")\n";
      handlers.push_back(std::move(handler));
    }
  }

  // Connections still open are cut: the server is going away.
  for (const auto& handler : handlers) handler->terminate();
  for (const auto& handler : handlers) handler->join();
  handlers.clear();
  ::close(listener);
  std::cout << "server stopped, active children: " << procpool::active_children().size() << '\n';
}
