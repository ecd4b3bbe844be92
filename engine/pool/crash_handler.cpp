#include "engine/pool/crash_handler.hpp"

#include <atomic>
#include <csignal>
#include <cstdint>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <unwind.h>

namespace procpool::detail {

namespace {

constexpr int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
// Room for the handler and the unwinder on the alternate stack.
constexpr std::size_t alt_stack_bytes = std::size_t{64} << 10;
// The unwinder is not async-signal-safe in every case (a crash inside the
// loader, say): if it hangs, SIGALRM ends the worker after this long, and
// the parent reports that, without a stack.
constexpr unsigned unwind_limit_seconds = 5;

CrashRecord* record = nullptr;
std::atomic<bool> claimed{false};  // the first crashing thread writes the record; lock-free

// Frames of the handler itself (and of a sanitizer's wrapper around it)
// before the interrupted one: past these, the walk gives up.
constexpr std::uint32_t handler_frames_max = 16;

struct Walk {
  std::uintptr_t frames[crash_frames_max];
  std::uint32_t count = 0;
  std::uint32_t skipped = 0;
  bool reached = false;  // past the handler's own frames, at the interrupted one
};

_Unwind_Reason_Code collect(_Unwind_Context* context, void* arg) {
  Walk& walk = *static_cast<Walk*>(arg);
  int exact = 0;  // set for the frame the signal interrupted: its ip is the faulting instruction
  const std::uintptr_t ip = _Unwind_GetIPInfo(context, &exact);
  if (!walk.reached) {
    // The handler's frames, and the kernel's trampoline.
    if (exact == 0) return ++walk.skipped == handler_frames_max ? _URC_END_OF_STACK : _URC_NO_REASON;
    walk.reached = true;
  }
  if (ip == 0) return _URC_END_OF_STACK;
  // A return address points past its call: name the call.
  walk.frames[walk.count++] = exact != 0 ? ip : ip - 1;
  return walk.count == crash_frames_max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

std::uintptr_t interrupted_ip(void* context) noexcept {
  [[maybe_unused]] const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.pc);
#else
  return 0;
#endif
}

// Async-signal-safe but for the unwinder (see unwind_limit_seconds); allocates nothing.
void on_crash(int sig, siginfo_t*, void* context) {
  if (!claimed.exchange(true, std::memory_order_acq_rel)) {
    ::alarm(unwind_limit_seconds);
    Walk walk;
    _Unwind_Backtrace(collect, &walk);
    // Code without unwind tables: at least the faulting instruction.
    if (walk.count == 0 && interrupted_ip(context) != 0) walk.frames[walk.count++] = interrupted_ip(context);
    for (std::uint32_t i = 0; i < walk.count; ++i) record->frames[i] = walk.frames[i];
    record->count = walk.count;
    record->signal = sig;
    record->pid.store(static_cast<std::int32_t>(::getpid()), std::memory_order_release);
  }
  // Die of the signal as without us: the default again, then the signal once
  // the handler returns (it is blocked until then). A fault would also recur.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);
}

// The unwinder binds its symbols and reads the loader's tables on first use:
// done here, not first in a handler.
_Unwind_Reason_Code count_frame(_Unwind_Context*, void* arg) {
  ++*static_cast<int*>(arg);
  return _URC_NO_REASON;
}

}  // namespace

void prepare_crash_handler() noexcept {
  static const bool prepared = [] {
    int frames = 0;
    _Unwind_Backtrace(count_frame, &frames);
    return true;
  }();
  (void)prepared;
}

void install_crash_handler(CrashRecord& target) noexcept {
  record = &target;
  prepare_crash_handler();  // done already if the parent did it before forking
  // A stack of its own for the handler: a stack overflow's SIGSEGV finds no room on the thread's.
  void* stack = ::mmap(nullptr, alt_stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (stack != MAP_FAILED) {
    stack_t alt{};
    alt.ss_sp = stack;
    alt.ss_size = alt_stack_bytes;
    if (::sigaltstack(&alt, nullptr) != 0) ::munmap(stack, alt_stack_bytes);
  }
  struct sigaction action {};
  action.sa_sigaction = on_crash;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (const int sig : crash_signals) ::sigaction(sig, &action, nullptr);
}

}  // namespace procpool::detail
