// In a worker: catches SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT to leave
// the crashing thread's stack in the worker's slot (CrashRecord), then lets
// the signal kill the worker as it would have.
#pragma once

#include "engine/ipc/crash_record.hpp"

namespace procpool::detail {

// Installs the handlers (on an alternate stack, so a stack overflow is caught
// too) for the rest of this process's life; every other signal keeps its
// default. Call once, in the worker, before anything of the task's runs.
void install_crash_handler(CrashRecord& record) noexcept;

// Loads and binds what the handler's unwinder needs, once per process (later
// calls return at once). Called in the parent before its zygote is forked,
// so each worker inherits it done instead of doing it again as it starts.
void prepare_crash_handler() noexcept;

}  // namespace procpool::detail
