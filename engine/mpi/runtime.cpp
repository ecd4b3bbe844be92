// procpool::mpi::Runtime: MPI's lifetime, the worker ranks' serving loop, and
// rank 0's manager that the pools share.
#include "engine/mpi/runtime.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "engine/executor/payload.hpp"
#include "engine/ipc/memfd_store.hpp"
#include "engine/sys/constants.hpp"
#include "engine/mpi/rank_blocks.hpp"
#include "procpool/mpi.hpp"

namespace procpool::mpi {

namespace detail {

namespace {

using procpool::detail::inline_payload_limit;
using procpool::detail::InputBuffer;
using procpool::detail::OutputBuffer;

std::mutex runtime_mutex;
Runtime::Impl* current_runtime = nullptr;

// Every rank's pid and host, gathered on rank 0 at start.
struct Hello {
  std::int32_t pid = 0;
  char host[64] = {};
};

Hello hello() {
  Hello h;
  h.pid = static_cast<std::int32_t>(::getpid());
  ::gethostname(h.host, sizeof h.host - 1);
  return h;
}

// Takes the cancels of `tag` (pool or task ids) that have arrived, ahead of
// messages before them: a task named in one, or of a pool named in one, is dropped.
void take_cancels(MPI_Comm comm, int tag, std::set<std::uint64_t>& cancelled) {
  for (;;) {
    int found = 0;
    MPI_Status status;
    check(MPI_Iprobe(0, tag, comm, &found, &status), "MPI_Iprobe");
    if (found == 0) return;
    std::uint64_t id = 0;
    check(MPI_Recv(&id, sizeof id, MPI_BYTE, 0, tag, comm, MPI_STATUS_IGNORE), "MPI_Recv");
    cancelled.insert(id);
  }
}

// A worker rank: takes tasks from rank 0 in order, runs each as a local pool
// worker does, and sends the result back, until rank 0 says to leave.
// Returns whether rank 0 saw a worker rank die (then MPI_Finalize must be skipped).
bool serve(MPI_Comm comm, std::size_t max_message) {
  const auto pid = static_cast<std::int32_t>(::getpid());
  procpool::detail::MemfdStore spill;
  OutputBuffer out(&spill);
  std::vector<char> message;
  std::vector<char> payload;
  std::vector<MPI_Request> requests;
  std::set<std::uint64_t> cancelled;
  // Tasks cancelled after rank 0 sent them. A cancel follows its task, so
  // one met here in order is late (its task has run); one taken ahead of
  // order names a queued task or is late too; with nothing queued, all are.
  std::set<std::uint64_t> cancelled_tasks;
  Backoff idle;
  serve_shared_blocks();
  for (;;) {
    int found = 0;
    MPI_Message handle = MPI_MESSAGE_NULL;
    MPI_Status status;
    check(MPI_Improbe(0, MPI_ANY_TAG, comm, &found, &handle, &status), "MPI_Improbe");
    if (found == 0) {
      cancelled_tasks.clear();
      idle.pause();
      continue;
    }
    idle.reset();
    int count = 0;
    check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
    message.resize(static_cast<std::size_t>(count));
    check(MPI_Mrecv(message.data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE), "MPI_Mrecv");
    if (status.MPI_TAG == tag_shutdown) return !message.empty() && message[0] != 0;
    if (status.MPI_TAG == tag_cancel && message.size() == sizeof(std::uint64_t)) {
      std::uint64_t pool = 0;
      std::memcpy(&pool, message.data(), sizeof pool);
      cancelled.insert(pool);
      continue;
    }
    if (status.MPI_TAG == tag_cancel_task) continue;
    // A shared value, ahead of its first task here; a forget, after its last.
    if (status.MPI_TAG == tag_share) {
      receive_shared_block(comm, message, requests);
      continue;
    }
    if (status.MPI_TAG == tag_forget) {
      forget_shared_block(message);
      continue;
    }
    MessageHeader header;
    if (status.MPI_TAG != tag_task || message.size() < sizeof header) {
      throw Error("procpool::mpi: a worker rank received a message it does not know (tag " +
                  std::to_string(status.MPI_TAG) + ")");
    }
    std::memcpy(&header, message.data(), sizeof header);
    const char* data = message.data() + sizeof header;
    if (header.piece != 0) {
      if (header.piece > INT_MAX) throw Error("procpool::mpi: a task came in pieces over INT_MAX bytes");
      payload.resize(header.size);
      post_piece_receives(comm, 0, tag_task_piece, header, payload.data(), requests);
      wait_all(requests, "MPI_Testall");
      data = payload.data();
    } else if (message.size() != sizeof header + header.size) {
      throw Error("procpool::mpi: a task's size does not match its header");
    }

    take_cancels(comm, tag_cancel, cancelled);
    take_cancels(comm, tag_cancel_task, cancelled_tasks);
    MessageHeader reply;
    reply.task_id = header.task_id;
    reply.pid = pid;
    out.reset(nullptr, 0, inline_payload_limit);
    out.write(&reply, sizeof reply);
    if (cancelled.count(header.pool_id) != 0 || cancelled_tasks.erase(header.task_id) != 0) {
      reply.flags = header_dropped;
    } else {
      procpool::detail::run_payload([&] { return InputBuffer(data, header.size); }, out);
    }
    const MessageHeader shape = layout(out.size() - sizeof reply, inline_payload_limit, max_message);
    reply.size = shape.size;
    reply.piece = shape.piece;
    // The buffer's own bytes (its heap block, or its writable memfd mapping):
    // the header goes into the room left for it at the front.
    char* bytes = const_cast<char*>(out.data());
    post_message(comm, 0, tag_result, bytes, reply, bytes + sizeof reply, tag_result_piece, requests);
    wait_all(requests, "MPI_Testall");
  }
}

}  // namespace

}  // namespace detail

class Runtime::Impl {
 public:
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int ranks = 1;
  std::size_t max_message = 0;
  std::shared_ptr<detail::Manager> manager;
  std::mutex pools_mutex;
  std::vector<std::weak_ptr<detail::MpiCore>> pools;
};

Runtime::Runtime() { start(nullptr, nullptr, {}); }

Runtime::Runtime(int& argc, char**& argv, RuntimeOptions options) { start(&argc, &argv, options); }

void Runtime::start(int* argc, char*** argv, RuntimeOptions options) {
  using detail::check;
  if (options.max_message < 2 * sizeof(detail::MessageHeader) || options.max_message > INT_MAX) {
    throw ValueError("procpool::mpi::Runtime: max_message must be between 80 and INT_MAX bytes");
  }
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized != 0) throw Error("procpool::mpi::Runtime: MPI is already initialized (one Runtime per process)");
  // The manager thread makes every MPI call on rank 0 after this one, one at a
  // time: SERIALIZED is the level that allows that.
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  impl_ = std::make_unique<Impl>();
  impl_->max_message = options.max_message;
  check(MPI_Comm_dup(MPI_COMM_WORLD, &impl_->comm), "MPI_Comm_dup");
  // Errors come back as codes (turned into exceptions) instead of aborting the job.
  MPI_Comm_set_errhandler(impl_->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(impl_->comm, &impl_->rank);
  MPI_Comm_size(impl_->comm, &impl_->ranks);

  const detail::Hello mine = detail::hello();
  std::vector<detail::Hello> all(impl_->rank == 0 ? static_cast<std::size_t>(impl_->ranks) : 0);
  check(MPI_Gather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, 0, impl_->comm), "MPI_Gather");

  if (impl_->rank != 0) {
    int status = 0;
    bool rank_lost = false;
    try {
      rank_lost = detail::serve(impl_->comm, impl_->max_message);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "procpool::mpi: worker rank %d: %s\n", impl_->rank, e.what());
      MPI_Abort(MPI_COMM_WORLD, 1);
      status = 1;
    }
    if (!rank_lost) {
      MPI_Comm_free(&impl_->comm);
      MPI_Finalize();
    }
    std::exit(status);
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    // The workers are serving: abort the job rather than leave them waiting.
    std::fprintf(stderr, "procpool::mpi::Runtime: this MPI gives thread level %d; procpool needs "
                         "MPI_THREAD_SERIALIZED\n", provided);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  std::vector<detail::WorkerInfo> workers;
  for (int r = 1; r < impl_->ranks; ++r) {
    const detail::Hello& h = all[static_cast<std::size_t>(r)];
    workers.push_back({r, h.pid, h.host, std::strcmp(h.host, mine.host) == 0});
  }
  if (!workers.empty()) impl_->manager = std::make_shared<detail::Manager>(impl_->comm, std::move(workers), impl_->max_message);
  std::lock_guard lock(detail::runtime_mutex);
  detail::current_runtime = impl_.get();
}

Runtime::~Runtime() {
  {
    std::lock_guard lock(detail::runtime_mutex);
    detail::current_runtime = nullptr;
  }
  std::vector<std::weak_ptr<detail::MpiCore>> pools;
  {
    std::lock_guard lock(impl_->pools_mutex);
    pools.swap(impl_->pools);
  }
  for (auto& weak : pools) {
    if (auto pool = weak.lock()) pool->runtime_ending();
  }
  if (impl_->manager) impl_->manager->stop();
  // After a worker rank died (under mpirun --enable-recovery), Open MPI 4.1's
  // MPI_Finalize may wait forever for it (seen 1 run in 6): every rank skips
  // it then, which mpirun accepts in that mode.
  if (impl_->manager && impl_->manager->lost_a_rank()) return;
  MPI_Comm_free(&impl_->comm);
  MPI_Finalize();
}

int Runtime::rank() const noexcept { return impl_->rank; }
int Runtime::ranks() const noexcept { return impl_->ranks; }

namespace detail {

std::shared_ptr<MpiCore> make_pool_core() {
  std::lock_guard lock(runtime_mutex);
  if (current_runtime == nullptr) {
    throw ValueError("procpool::mpi::Pool: no procpool::mpi::Runtime exists (make one first thing in main)");
  }
  Runtime::Impl& runtime = *current_runtime;
  if (!runtime.manager) {
    throw ValueError("procpool::mpi::Pool: there is no worker rank (start the program with mpirun -n N, N >= 2)");
  }
  auto core = MpiCore::create(runtime.manager);
  std::lock_guard pools_lock(runtime.pools_mutex);
  std::erase_if(runtime.pools, [](const auto& p) { return p.expired(); });
  runtime.pools.push_back(core);
  return core;
}

}  // namespace detail

Pool::Pool() : TaskPool(detail::make_pool_core()) {}

}  // namespace procpool::mpi
