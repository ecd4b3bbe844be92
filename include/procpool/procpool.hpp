/// \file
/// procpool: Python's multiprocessing.Pool for C++. The one header to include.

/// \mainpage procpool
///
/// Python's multiprocessing.Pool for C++20: worker processes fed through
/// lock-free shared-memory rings, with futures, microsecond round trips, and
/// errors that come back as themselves. Everything is in one header,
/// `#include <procpool/procpool.hpp>`; the README has the install, a
/// quick-start and how it works. This reference documents every public
/// member: what it does, whether it blocks, what it throws, whether it is
/// thread-safe. Start at:
///
/// - procpool::Pool and procpool::PoolOptions: a pool of worker processes,
///   whose task surface (apply_async, map, imap, close, join, terminate) is
///   procpool::TaskPool's;
/// - procpool::AsyncResult, the future of one task, and procpool::IMapIterator,
///   the results of imap and imap_unordered; their progress() (procpool::Progress)
///   and procpool::wait_with_progress(), which draws it as a bar;
/// - procpool::Process, procpool::current_process(), procpool::parent_process(),
///   procpool::active_children(): single child processes;
/// - procpool::Shared (made by TaskPool::share()) and procpool::SharedArray:
///   data in shared memory, passed to tasks by handle;
/// - procpool::Error and the errors derived from it (errors.hpp);
/// - procpool::mpi::Runtime and procpool::mpi::Pool (mpi.hpp, library
///   procpool-mpi, not included here): the same pools on MPI ranks;
/// - PROCPOOL_VERSION_STRING and the other version macros (version.hpp).

/// \namespace procpool
/// Everything procpool offers; procpool::detail holds the internals of its
/// templates, not part of the API.
#pragma once

// The std types that tasks most often take and return, so they work out of the box.
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "procpool/as_completed.hpp"
#include "procpool/async_result.hpp"
#include "procpool/errors.hpp"
#include "procpool/pool.hpp"
#include "procpool/progress.hpp"
#include "procpool/task_pool.hpp"
#include "procpool/process.hpp"
#include "procpool/shared.hpp"
#include "procpool/shared_array.hpp"
#include "procpool/task_options.hpp"
#include "procpool/this_task.hpp"
#include "procpool/version.hpp"
#include "procpool/wait_with_progress.hpp"
#include "procpool/when.hpp"
