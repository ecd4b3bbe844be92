#include "engine/sys/symbolizer.hpp"

#include <cstdio>
#include <cstdlib>
#include <cxxabi.h>
#include <elfutils/libdwfl.h>
#include <memory>
#include <unistd.h>

namespace procpool::detail {

namespace {

// Only what the modules hold themselves: looking elsewhere for debug info
// (libdw's standard callback) may query a debuginfod server over the network.
int no_separate_debuginfo(Dwfl_Module*, void**, const char*, Dwarf_Addr, const char*, const char*, GElf_Word,
                          char**) {
  return -1;
}

char* debuginfo_path = nullptr;

const Dwfl_Callbacks callbacks = {
    dwfl_linux_proc_find_elf,
    no_separate_debuginfo,
    nullptr,
    &debuginfo_path,
};

struct DwflEnd {
  void operator()(Dwfl* dwfl) const noexcept { dwfl_end(dwfl); }
};

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
  return status == 0 && demangled ? std::string(demangled.get()) : std::string(name);
}

std::string describe(Dwfl* dwfl, std::uintptr_t address) {
  Dwfl_Module* module = dwfl != nullptr ? dwfl_addrmodule(dwfl, address) : nullptr;
  if (module == nullptr) return "??";
  std::string text;
  const char* name = dwfl_module_addrname(module, address);
  text = name != nullptr ? demangle(name) : "??";
  int line = 0;
  const char* file = nullptr;
  if (Dwfl_Line* source = dwfl_module_getsrc(module, address); source != nullptr) {
    file = dwfl_lineinfo(source, nullptr, &line, nullptr, nullptr, nullptr);
  }
  // Appended piece by piece: g++ 12 -O3 warns (-Wrestrict, wrongly) at chains of operator+.
  if (file != nullptr && line > 0) {
    text.append(" at ").append(file).append(":").append(std::to_string(line));
  } else if (const char* path = dwfl_module_info(module, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                                 nullptr);
             path != nullptr) {
    text.append(" (").append(path).append(")");
  }
  return text;
}

}  // namespace

std::string symbolize(std::span<const std::uintptr_t> frames) {
  // A session of its own each time: nothing cached stays behind (a crash is rare).
  std::unique_ptr<Dwfl, DwflEnd> dwfl(dwfl_begin(&callbacks));
  if (dwfl && (dwfl_linux_proc_report(dwfl.get(), ::getpid()) != 0 ||
               dwfl_report_end(dwfl.get(), nullptr, nullptr) != 0)) {
    dwfl.reset();
  }
  std::string text;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    char address[32];
    std::snprintf(address, sizeof address, "%#llx", static_cast<unsigned long long>(frames[i]));
    text.append("#").append(std::to_string(i)).append(" ").append(address).append(" ");
    text.append(describe(dwfl.get(), frames[i])).append("\n");
  }
  return text;
}

}  // namespace procpool::detail
