// The note's RedisProcess: a Process subclass per key, all writing to Redis
// at the same time. Each child SETs its key, GETs it back and prints it; the
// parent then checks every key itself.
//
//   redis_writer [HOST [PORT [DB]]]   # default 127.0.0.1 6379 0
#include <procpool/procpool.hpp>

#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

struct Server {
  std::string host;
  int port;
  int db;
};

struct ContextDeleter {
  void operator()(redisContext* context) const noexcept { redisFree(context); }
};
struct ReplyDeleter {
  void operator()(redisReply* reply) const noexcept { freeReplyObject(reply); }
};
using Connection = std::unique_ptr<redisContext, ContextDeleter>;
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// One command, its arguments passed as they are (no format string to escape).
Reply command(redisContext* connection, std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> argvlen;
  for (const std::string_view arg : args) {
    argv.push_back(arg.data());
    argvlen.push_back(arg.size());
  }
  Reply reply(static_cast<redisReply*>(
      redisCommandArgv(connection, static_cast<int>(argv.size()), argv.data(), argvlen.data())));
  if (!reply) throw std::runtime_error("redis: " + std::string(connection->errstr));
  if (reply->type == REDIS_REPLY_ERROR) throw std::runtime_error("redis: " + std::string(reply->str, reply->len));
  return reply;
}

Connection connect(const Server& server) {
  const timeval timeout{2, 0};
  Connection connection(redisConnectWithTimeout(server.host.c_str(), server.port, timeout));
  if (!connection) throw std::runtime_error("redis: cannot allocate a connection");
  if (connection->err != 0) {
    throw std::runtime_error("redis: cannot connect to " + server.host + ':' + std::to_string(server.port) + ": " +
                             connection->errstr);
  }
  const std::string db = std::to_string(server.db);
  command(connection.get(), {"SELECT", db});
  return connection;
}

class RedisProcess : public procpool::Process {
 public:
  RedisProcess(Server server, std::string key, std::string value)
      : server_(std::move(server)), key_(std::move(key)), value_(std::move(value)) {}

  // The note connects in __init__, in the parent. Here the child connects in
  // run(): a connection made before the fork would be one socket shared by
  // parent and child, and their commands and replies would interleave.
  void run() override {
    connection_ = connect(server_);
    set();
    std::cout << procpool::current_process().name << " (pid " << getpid() << "): SET " << key_ << ", GET " << key_
              << " -> " << get() << '\n';
  }

  void set() { command(connection_.get(), {"SET", key_, value_}); }

  std::string get() {
    const Reply reply = command(connection_.get(), {"GET", key_});
    if (reply->type != REDIS_REPLY_STRING) throw std::runtime_error("redis: GET " + key_ + ": no value");
    return {reply->str, reply->len};
  }

  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }

 private:
  Server server_;
  std::string key_;
  std::string value_;
  Connection connection_;  // the child's own; never set in the parent
};

}  // namespace

int main(int argc, char** argv) {
  // Whole lines at a time: the children's lines do not mix.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);

  try {
    const Server server{argc > 1 ? argv[1] : "127.0.0.1", argc > 2 ? std::stoi(argv[2]) : 6379,
                        argc > 3 ? std::stoi(argv[3]) : 0};
    constexpr int writers = 4;
    std::vector<std::unique_ptr<RedisProcess>> processes;
    for (int i = 1; i <= writers; ++i) {
      // The parent's pid makes the values new on every run, so a stale key cannot pass the check.
      processes.push_back(std::make_unique<RedisProcess>(
          server, "procpool:example:key" + std::to_string(i),
          "value " + std::to_string(i) + " of run " + std::to_string(getpid())));
    }
    for (auto& process : processes) process->start();
    for (auto& process : processes) process->join();

    bool ok = true;
    for (const auto& process : processes) {
      if (*process->exitcode() != 0) {
        std::cout << process->name() << " failed, exitcode " << *process->exitcode() << '\n';
        ok = false;
      }
    }

    // The parent's own connection, made only now that all children are done.
    const Connection connection = connect(server);
    int verified = 0;
    for (const auto& process : processes) {
      const Reply reply = command(connection.get(), {"GET", process->key()});
      const bool same = reply->type == REDIS_REPLY_STRING && std::string_view(reply->str, reply->len) == process->value();
      std::cout << (same ? "verified " : "WRONG ") << process->key() << " = " << process->value() << '\n';
      verified += same ? 1 : 0;
    }
    std::cout << verified << " of " << writers << " keys verified in db " << server.db << '\n';
    return ok && verified == writers ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "redis_writer: " << e.what() << '\n';
    return 1;
  }
}
