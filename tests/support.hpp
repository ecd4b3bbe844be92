// What the tests observe about this process from the outside: its fds, its
// children, /dev/shm.
#pragma once

#include <chrono>
#include <csignal>
#include <dirent.h>
#include <fstream>
#include <new>
#include <stdexcept>
#include <set>
#include <sstream>
#include <string>
#include <sys/mman.h>
#include <sys/types.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace test_support {

// A T in anonymous shared memory, pointed to by `global` while this lives:
// built before a pool forks its workers, it is the same object in the tasks
// and in the test.
template <class T>
class SharedObject {
 public:
  explicit SharedObject(T*& global) : global_(global) {
    void* memory = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::runtime_error("test_support::SharedObject: mmap failed");
    global_ = new (memory) T();
  }
  SharedObject(const SharedObject&) = delete;
  SharedObject& operator=(const SharedObject&) = delete;
  ~SharedObject() {
    global_->~T();
    ::munmap(global_, sizeof(T));
    global_ = nullptr;
  }

 private:
  T*& global_;
};

inline std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(path.c_str())) {
    while (dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(dir);
  }
  return names;
}

inline std::size_t open_fd_count() { return list_dir("/proc/self/fd").size(); }

// Shared mappings ("rw-s" and the like) of a process: the pool's memory, shared
// data, payloads. Private ones are left out: a sanitizer's allocator maps and
// unmaps them at will.
inline std::size_t shared_mapping_count(const std::string& pid = "self") {
  std::ifstream in("/proc/" + pid + "/maps");
  std::size_t count = 0;
  for (std::string line; std::getline(in, line);) {
    const auto space = line.find(' ');
    if (space != std::string::npos && space + 4 < line.size() && line[space + 4] == 's') ++count;
  }
  return count;
}

inline std::set<std::string> dev_shm() {
  const auto names = list_dir("/dev/shm");
  return {names.begin(), names.end()};
}

// The state letter and parent pid of a process, from /proc/PID/stat ("" if gone).
inline std::string proc_state(pid_t pid, pid_t* ppid = nullptr) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return "";
  const auto close_paren = line.rfind(')');
  std::istringstream rest(line.substr(close_paren + 2));
  std::string state;
  pid_t parent = 0;
  rest >> state >> parent;
  if (ppid != nullptr) *ppid = parent;
  return state;
}

inline bool alive(pid_t pid) {
  const std::string state = proc_state(pid);
  return !state.empty() && state != "Z" && state != "X";
}

// Direct children of `parent`, zombies included.
inline std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> children;
  for (const auto& name : list_dir("/proc")) {
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t ppid = 0;
    const pid_t pid = std::stoi(name);
    if (!proc_state(pid, &ppid).empty() && ppid == parent) children.push_back(pid);
  }
  return children;
}

// Polls `condition` until it holds or `limit` passes.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return condition();
}

}  // namespace test_support
