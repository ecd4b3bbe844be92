#include "procpool/detail/code_ref.hpp"

#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "engine/executor/code_ref_cache.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {
namespace {

struct Module {
  std::string path;
  std::uintptr_t bias = 0;  // dlpi_addr: what the linker's p_vaddr values are relative to
  std::uint64_t hash = 0;   // FNV-1a of the GNU build-id; 0 if the module has none
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> code;  // executable [begin, end)

  bool holds(std::uintptr_t address) const {
    for (const auto& [begin, end] : code)
      if (address >= begin && address < end) return true;
    return false;
  }

  friend bool operator==(const Module&, const Module&) = default;
};

std::string hex(std::uint64_t value) {
  char buf[2 + 16 + 1];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

std::uint64_t fnv1a(const unsigned char* bytes, std::size_t size) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < size; ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
  return h == 0 ? 1 : h;  // 0 means "no build-id" in Module::hash
}

// Hash of the NT_GNU_BUILD_ID note in one PT_NOTE segment, or 0. Every length
// comes from the file, so each is checked against the segment before use.
// Notes are padded to 4 bytes, except in segments aligned to 8 (gABI, e.g.
// .note.gnu.property), which readelf and the kernel treat as 8-byte padded.
std::uint64_t build_id_hash(const unsigned char* notes, std::size_t size, std::size_t align) {
  const auto pad = [align](std::size_t n) { return (n + align - 1) & ~(align - 1); };
  std::size_t pos = 0;
  while (size - pos >= sizeof(ElfW(Nhdr))) {
    ElfW(Nhdr) note;
    std::memcpy(&note, notes + pos, sizeof note);  // memcpy: no alignment assumption
    pos += sizeof note;
    const std::size_t name_size = pad(note.n_namesz);  // 32-bit fields: no overflow
    if (name_size > size - pos || note.n_descsz > size - pos - name_size) return 0;
    if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 && note.n_descsz > 0 &&
        std::memcmp(notes + pos, "GNU", 4) == 0)
      return fnv1a(notes + pos + name_size, note.n_descsz);
    pos += std::min(name_size + pad(note.n_descsz), size - pos);
  }
  return 0;
}

struct Scan {
  std::vector<Module> modules;
  std::exception_ptr error;  // exceptions must not unwind through the C loader
};

int scan_one(dl_phdr_info* info, std::size_t, void* data) {
  auto& scan = *static_cast<Scan*>(data);
  try {
    Module m;
    m.path = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "the main executable";
    m.bias = info->dlpi_addr;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
      const ElfW(Phdr)& ph = info->dlpi_phdr[i];
      if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
        m.code.emplace_back(m.bias + ph.p_vaddr, m.bias + ph.p_vaddr + ph.p_memsz);
      if (ph.p_type != PT_NOTE || m.hash != 0) continue;
      // Only read a note that a PT_LOAD maps from the file: nothing else is in memory.
      bool mapped = false;
      for (ElfW(Half) j = 0; j < info->dlpi_phnum; ++j) {
        const ElfW(Phdr)& load = info->dlpi_phdr[j];
        mapped |= load.p_type == PT_LOAD && ph.p_vaddr >= load.p_vaddr &&
                  ph.p_vaddr + ph.p_filesz <= load.p_vaddr + load.p_filesz;
      }
      if (mapped)
        m.hash = build_id_hash(reinterpret_cast<const unsigned char*>(m.bias + ph.p_vaddr),
                               ph.p_filesz, ph.p_align == 8 ? 8 : 4);
    }
    scan.modules.push_back(std::move(m));
    return 0;
  } catch (...) {
    scan.error = std::current_exception();
    return 1;  // stop iterating
  }
}

// Readers take the current snapshot, immutable, without a lock (every task
// names its invoker) and may hold it for as long as they like, so no snapshot
// is ever freed: `history` keeps one per distinct set of loaded modules seen
// (a rescan that finds a known set republishes its snapshot), which bounds it
// by what the process loads, not by how many lookups miss.
struct Cache {
  std::mutex scan_mutex;
  std::atomic<const std::vector<Module>*> table{nullptr};
  std::vector<std::unique_ptr<const std::vector<Module>>> history;  // under scan_mutex

  Cache() {
    // A fork() during a rescan would leave the mutex held, and glibc's loader
    // lock with it, in the child. So no fork happens mid-scan: the mutex is
    // held across fork and released on both sides (a normal mutex may be
    // unlocked by the forking thread's copy in the child).
    pthread_atfork([] { cache().scan_mutex.lock(); }, [] { cache().scan_mutex.unlock(); },
                   [] { cache().scan_mutex.unlock(); });
  }

  // Leaked on purpose: usable from other static destructors and atfork handlers.
  static Cache& cache() {
    static Cache& c = *new Cache;
    return c;
  }
};

using Table = const std::vector<Module>*;

// The cached table, or a fresh scan of the loaded modules if `rescan` or none
// is cached yet.
Table modules(bool rescan) {
  Cache& c = Cache::cache();
  if (!rescan) {
    if (Table t = c.table.load(std::memory_order_acquire)) return t;
  }
  std::lock_guard lock(c.scan_mutex);
  Scan scan;
  dl_iterate_phdr(scan_one, &scan);
  if (scan.error) std::rethrow_exception(scan.error);
  // A miss (a task from another build) finds the modules it found before:
  // the newest snapshots are the likeliest matches.
  for (auto it = c.history.rbegin(); it != c.history.rend(); ++it) {
    if (**it == scan.modules) {
      c.table.store(it->get(), std::memory_order_release);
      return it->get();
    }
  }
  c.history.push_back(std::make_unique<const std::vector<Module>>(std::move(scan.modules)));
  c.table.store(c.history.back().get(), std::memory_order_release);
  return c.history.back().get();
}

// The first module matching `pred`, searching the cache and then, on a miss,
// a re-scan (a library may have been dlopen'ed since the last one). The
// returned table keeps the module alive.
template <class Pred>
std::pair<Table, const Module*> find_module(Pred pred) {
  for (bool rescan : {false, true}) {
    Table table = modules(rescan);
    for (const Module& m : *table)
      if (pred(m)) return {table, &m};
  }
  return {nullptr, nullptr};
}

}  // namespace

std::size_t code_ref_snapshot_count() {
  Cache& c = Cache::cache();
  std::lock_guard lock(c.scan_mutex);
  return c.history.size();
}

// Error texts are built only on failure: both functions run once per task.
CodeRef code_ref_of(std::uintptr_t address) {
  const auto [table, m] = find_module([&](const Module& m) { return m.holds(address); });
  if (m && m->hash != 0) return {m->hash, address - m->bias};
  const std::string what = "procpool: cannot name code at " + hex(address) + ": ";
  if (!m) throw SerializationError(what + "no loaded module holds it in an executable segment");
  throw SerializationError(what + "module " + m->path + " has no GNU build-id (link with -Wl,--build-id)");
}

std::uintptr_t resolve_code_ref(const CodeRef& ref) {
  const auto [table, m] =
      find_module([&](const Module& m) { return m.hash != 0 && m.hash == ref.module; });
  const std::uintptr_t address = m ? m->bias + ref.offset : 0;
  if (m && m->holds(address)) return address;
  const std::string what = "procpool: cannot resolve callable: ";
  if (!m)
    throw SerializationError(what + "no module with build-id hash " + hex(ref.module) +
                             " is loaded in process " + std::to_string(getpid()) +
                             " (is the worker running a different build?)");
  throw SerializationError(what + "offset " + hex(ref.offset) +
                           " is outside the executable segments of " + m->path);
}

}  // namespace procpool::detail
