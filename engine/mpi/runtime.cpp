// procpool::mpi::Runtime: MPI's lifetime (the worker ranks serve in
// rank_serve.cpp) and rank 0's manager that the pools share.
#include "engine/mpi/runtime.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <set>

#include "engine/executor/payload.hpp"
#include "engine/ipc/memfd_store.hpp"
#include "engine/sys/constants.hpp"
#include "engine/mpi/heartbeat.hpp"
#include "engine/mpi/lifeline.hpp"
#include "engine/mpi/rank_bells.hpp"
#include "engine/mpi/rank_blocks.hpp"
#include "engine/mpi/rank_serve.hpp"
#include "procpool/mpi.hpp"

namespace procpool::mpi {

namespace detail {

namespace {

std::mutex runtime_mutex;
Runtime::Impl* current_runtime = nullptr;

// Every rank's pid and host, gathered on rank 0 at start.
struct Hello {
  std::int32_t pid = 0;
  std::int32_t bells = 0;  // 1: it mapped rank 0's doorbells (RankBells)
  char host[64] = {};
  HeartbeatAddress heartbeat;  // where a worker rank answers pings
};

Hello hello() {
  Hello h;
  h.pid = static_cast<std::int32_t>(::getpid());
  ::gethostname(h.host, sizeof h.host - 1);
  return h;
}

}  // namespace

}  // namespace detail

class Runtime::Impl {
 public:
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int ranks = 1;
  std::size_t max_message = 0;
  detail::RankBells bells;  // outlives the manager, which rings them
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
  if (options.heartbeat_timeout < std::chrono::milliseconds(100)) {
    throw ValueError("procpool::mpi::Runtime: heartbeat_timeout must be at least 100 ms");
  }
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized != 0) throw Error("procpool::mpi::Runtime: MPI is already initialized (one Runtime per process)");
  // mpirun turns Open MPI's yield-when-idle on when ranks outnumber cores;
  // then every MPI call that finds nothing calls sched_yield(), which, next
  // to busy processes, gives the core away for a whole time slice. procpool
  // never waits inside MPI (a rank with nothing to do sleeps on its
  // doorbell, see rank_bells.hpp), so it turns that off.
  ::setenv("OMPI_MCA_mpi_yield_when_idle", "0", 1);
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

  impl_->bells.open(impl_->comm, impl_->rank, impl_->ranks);
  detail::Hello mine = detail::hello();
  mine.bells = impl_->bells.mapped() ? 1 : 0;
  // A worker rank answers pings from here on, until it exits.
  std::optional<detail::HeartbeatResponder> responder;
  if (impl_->rank != 0) mine.heartbeat = responder.emplace(impl_->rank).address();
  std::vector<detail::Hello> all(impl_->rank == 0 ? static_cast<std::size_t>(impl_->ranks) : 0);
  check(MPI_Gather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, 0, impl_->comm), "MPI_Gather");
  // Where the worker ranks connect to learn of rank 0's end (lifeline.hpp).
  detail::LifelineAddress lifeline;
  if (impl_->rank == 0 && impl_->ranks > 1) lifeline = detail::start_lifeline_listener();
  check(MPI_Bcast(&lifeline, sizeof lifeline, MPI_BYTE, 0, impl_->comm), "MPI_Bcast");

  if (impl_->rank != 0) {
    int status = 0;
    bool rank_lost = false;
    detail::Lifeline rank0(lifeline, impl_->rank);
    try {
      rank_lost = detail::serve(impl_->comm, impl_->max_message, impl_->bells, impl_->rank, responder->bell());
      rank0.disarm();  // rank 0 said goodbye
    } catch (const std::exception& e) {
      rank0.disarm();
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
  impl_->bells.opened();  // every rank has mapped the bells or given up
  std::vector<detail::WorkerInfo> workers;
  for (int r = 1; r < impl_->ranks; ++r) {
    const detail::Hello& h = all[static_cast<std::size_t>(r)];
    workers.push_back({r, h.pid, h.host, std::strcmp(h.host, mine.host) == 0, h.bells != 0, h.heartbeat});
  }
  if (!workers.empty()) {
    detail::ManagerOptions manager;
    manager.max_message = impl_->max_message;
    manager.heartbeat_timeout = options.heartbeat_timeout;
    // mpirun --enable-recovery says so to its ranks through this variable.
    const char* recovery = std::getenv("OMPI_MCA_orte_enable_recovery");
    manager.recovery = recovery != nullptr && std::strcmp(recovery, "1") == 0;
    impl_->manager = std::make_shared<detail::Manager>(impl_->comm, std::move(workers), manager,
                                                       impl_->bells.mapped() ? &impl_->bells : nullptr);
  }
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
