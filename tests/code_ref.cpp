#include "procpool/detail/code_ref.hpp"

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "engine/executor/code_ref_cache.hpp"
#include "procpool/errors.hpp"

extern char** environ;

using procpool::SerializationError;
using procpool::detail::code_ref_of;
using procpool::detail::code_ref_of_function;
using procpool::detail::CodeRef;
using procpool::detail::function_from_code_ref;
using procpool::detail::resolve_code_ref;

namespace {

constexpr int kAnswer = 42;
constexpr const char* kChildEnv = "PROCPOOL_CODE_REF_CHILD";

// Not inlined away: tests take its address and call it in other processes.
int the_answer() { return kAnswer; }

int data_object = 1;

// doctest cannot print function pointers; compare addresses instead.
template <class Fn>
std::uintptr_t addr(Fn* fn) {
  return std::bit_cast<std::uintptr_t>(fn);
}

std::string what_of(const CodeRef& ref) {
  try {
    resolve_code_ref(ref);
  } catch (const SerializationError& e) {
    return e.what();
  }
  return "(no exception)";
}

// Runs before doctest's main when this binary is re-exec'd with kChildEnv set
// to "<module hex>:<offset hex>": resolves the ref, writes the resolved address
// to stdout (a pipe to the parent), and exits with what the function returns.
// Any failure exits with 100, which no tested function returns.
struct ExecChild {
  ExecChild() {
    const char* spec = std::getenv(kChildEnv);
    if (!spec) return;
    try {
      char* end = nullptr;
      const CodeRef ref{std::strtoull(spec, &end, 16), std::strtoull(end + 1, nullptr, 16)};
      auto* fn = function_from_code_ref<int()>(ref);
      std::printf("%llx", static_cast<unsigned long long>(addr(fn)));
      std::fflush(stdout);
      _exit(fn());
    } catch (...) {
      _exit(100);
    }
  }
} exec_child;

}  // namespace

TEST_CASE("code_ref - a free function round-trips to the same address") {
  const CodeRef ref = code_ref_of_function(&the_answer);
  CHECK(ref.module != 0);
  CHECK(addr(function_from_code_ref<int()>(ref)) == addr(&the_answer));
  CHECK(function_from_code_ref<int()>(ref)() == kAnswer);
  CHECK(code_ref_of_function(&the_answer) == ref);  // served from the cache

  // A captureless lambda's static invoker is named the same way.
  int (*lambda)(int) = [](int x) { return x * 2; };
  CHECK(function_from_code_ref<int(int)>(code_ref_of_function(lambda))(21) == 42);
}

TEST_CASE("code_ref - a function in a shared library round-trips") {
  std::size_t (*fn)(const char*) = &std::strlen;
  const CodeRef ref = code_ref_of_function(fn);
  CHECK(ref.module != code_ref_of_function(&the_answer).module);  // libc, not this binary
  CHECK(addr(function_from_code_ref<std::size_t(const char*)>(ref)) == addr(fn));
  CHECK(function_from_code_ref<std::size_t(const char*)>(ref)("four") == 4);
}

TEST_CASE("code_ref - an address outside executable segments cannot be named") {
  const auto data = std::bit_cast<std::uintptr_t>(&data_object);
  CHECK_THROWS_WITH_AS(code_ref_of(data),
                       doctest::Contains("procpool: cannot name code at 0x"), SerializationError);
  CHECK_THROWS_WITH_AS(code_ref_of(data),
                       doctest::Contains("no loaded module holds it in an executable segment"),
                       SerializationError);
  int on_stack = 0;
  CHECK_THROWS_AS(code_ref_of(std::bit_cast<std::uintptr_t>(&on_stack)), SerializationError);
  CHECK_THROWS_AS(code_ref_of(0), SerializationError);
}

TEST_CASE("code_ref - an unknown module hash is reported with the hash") {
  const std::string what = what_of(CodeRef{0xdeadbeefcafef00dULL, 0x1000});
  CHECK(what.find("no module with build-id hash 0xdeadbeefcafef00d") != std::string::npos);
  CHECK(what.find("is loaded in process " + std::to_string(getpid())) != std::string::npos);
  CHECK(what_of(CodeRef{0, 0}).find("no module with build-id hash 0x0") != std::string::npos);
}

TEST_CASE("code_ref - refs from another build fail without growing the module cache") {
  const CodeRef foreign{0xdeadbeefcafef00dULL, 0x1000};
  CHECK_THROWS_AS(resolve_code_ref(foreign), SerializationError);
  const std::size_t snapshots = procpool::detail::code_ref_snapshot_count();
  for (int i = 0; i < 10000; ++i) {
    REQUIRE_THROWS_AS(resolve_code_ref(foreign), SerializationError);
  }
  CHECK(procpool::detail::code_ref_snapshot_count() == snapshots);
  // The cache still serves what is loaded.
  CHECK(addr(function_from_code_ref<int()>(code_ref_of_function(&the_answer))) == addr(&the_answer));
}

TEST_CASE("code_ref - an offset outside the executable segments is rejected") {
  const CodeRef ref = code_ref_of_function(&the_answer);
  for (std::uint64_t offset : {std::uint64_t{1} << 40, ~std::uint64_t{0}}) {
    const std::string what = what_of(CodeRef{ref.module, offset});
    INFO(what);
    CHECK(what.find("procpool: cannot resolve callable: offset 0x") != std::string::npos);
    CHECK(what.find("is outside the executable segments of") != std::string::npos);
  }
}

TEST_CASE("code_ref - a forked child resolves the ref and calls the function" *
          doctest::timeout(10)) {
  const CodeRef ref = code_ref_of_function(&the_answer);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      auto* fn = function_from_code_ref<int()>(ref);
      _exit(fn == &the_answer ? fn() : 101);
    } catch (...) {
      _exit(100);
    }
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == kAnswer);
}

TEST_CASE("code_ref - children forked while other threads re-scan still resolve" *
          doctest::timeout(10)) {
  // Unknown hashes force re-scans under the exclusive lock; a fork in the
  // middle of one must not leave the child stuck on a lock nobody will release.
  const CodeRef ref = code_ref_of_function(&the_answer);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&] {
      while (!stop) (void)what_of(CodeRef{0xdeadbeefcafef00dULL, 0});
    });
  int resolved = 0;
  for (int i = 0; i < 20; ++i) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      alarm(5);  // a hung child dies of SIGALRM instead of hanging the test
      (void)what_of(CodeRef{0xdeadbeefcafef00dULL, 0});  // re-scans in the child
      _exit(function_from_code_ref<int()>(ref)());
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    resolved += WIFEXITED(status) && WEXITSTATUS(status) == kAnswer;
  }
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(resolved == 20);
}

TEST_CASE("code_ref - an exec'd copy of this binary resolves the ref at its own address" *
          doctest::timeout(10)) {
  const CodeRef ref = code_ref_of_function(&the_answer);
  char spec[64];
  std::snprintf(spec, sizeof spec, "%s=%llx:%llx", kChildEnv,
                static_cast<unsigned long long>(ref.module),
                static_cast<unsigned long long>(ref.offset));
  // Everything exec needs is built before fork: the child only calls
  // async-signal-safe functions.
  std::vector<char*> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, kChildEnv, std::strlen(kChildEnv)) != 0) env.push_back(*e);
  env.push_back(spec);
  env.push_back(nullptr);
  char self[] = "/proc/self/exe";
  char* argv[] = {self, nullptr};

  int out[2];
  REQUIRE(pipe(out) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execve(self, argv, env.data());
    _exit(127);
  }
  close(out[1]);
  std::string printed;
  char buf[64];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) printed.append(buf, n);
  close(out[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == kAnswer);

  // With ASLR the copy is loaded elsewhere, which is the point of CodeRef; but
  // ASLR may be off (setarch -R, some debuggers), so this only warns.
  const auto here = addr(&the_answer);
  const auto there = static_cast<std::uintptr_t>(std::strtoull(printed.c_str(), nullptr, 16));
  char where[96];
  std::snprintf(where, sizeof where, "the_answer: here 0x%llx, in the exec'd copy 0x%llx",
                static_cast<unsigned long long>(here), static_cast<unsigned long long>(there));
  INFO(where);
  CHECK(there != 0);
  WARN(there != here);
}
