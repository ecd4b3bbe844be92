// The note's client.py: reads lines, sends each to the upper-casing server
// and prints its reply. Ends at the end of input.
//
//   tcp_client [HOST [PORT]]   # default 127.0.0.1 8080
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

namespace {

std::string strip(const std::string& text) {
  const char* space = " \t\r\n\f\v";
  const auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

bool send_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t sent = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(sent);
  }
  return true;
}

int connect_to(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    std::cerr << "tcp_client: " << host << ':' << port << ": " << gai_strerror(rc) << '\n';
    return -1;
  }
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) return fd;
    ::close(fd);
  }
  std::cerr << "tcp_client: cannot connect to " << host << ':' << port << ": " << std::strerror(errno) << '\n';
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  // Each reply as soon as it is read, also when the output is a pipe.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  const std::string host = argc > 1 ? argv[1] : "127.0.0.1";
  const std::string port = argc > 2 ? argv[2] : "8080";

  const int client = connect_to(host, port);
  if (client < 0) return 1;

  // The prompt is for a person; a script piping lines in gets replies only.
  const bool interactive = isatty(STDIN_FILENO) != 0;
  std::string line;
  for (;;) {
    if (interactive) std::cout << ">>: " << std::flush;
    if (!std::getline(std::cin, line)) break;
    const std::string msg = strip(line);
    if (msg.empty()) continue;
    if (!send_all(client, msg)) {
      std::cerr << "tcp_client: send: " << std::strerror(errno) << '\n';
      return 1;
    }
    // Upper-casing keeps the length, so read exactly that much: a single
    // recv(1024), as in the note, may return only part of the reply.
    std::string reply(msg.size(), '\0');
    std::size_t got = 0;
    while (got < reply.size()) {
      const ssize_t n = ::recv(client, reply.data() + got, reply.size() - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::cerr << "tcp_client: the server closed the connection\n";
        return 1;
      }
      got += static_cast<std::size_t>(n);
    }
    std::cout << reply << '\n';
  }
  ::close(client);
}
