"""compare.py's figure tables (FIGURES, KINDS, SIDES), ratios and targets, log() and CompareError."""

import sys


# The second bm_pool run (the parent keeps its heap): glibc tunables that keep
# freed memory in the heap (no mmap for blocks under 32 MiB, no trimming),
# and the benchmarks it runs. Its entries are renamed "kept_heap:<name>".
KEPT_HEAP = "kept_heap"
KEPT_HEAP_TUNABLES = ("glibc.malloc.mmap_threshold=33554432:"
                      "glibc.malloc.trim_threshold=2147483648")
KEPT_HEAP_FILTER = f"^(BM_PoolEcho/{16 << 20}|BM_FreshVector16MiB)/"

# The second MPI run (bm_mpi and mpi4py.futures): while BUSY_LOOPS processes
# spin (`while True: pass`) on the same cores. Its entries are renamed
# "loaded:<name>", mpi4py's keys "mpi4py_loaded_<key>".
LOADED = "loaded"
LOADED_FILTER = "^BM_Mpi(ApplyAsyncNoop|RoundTrip)/"
BUSY_LOOPS = 2

# One row per figure. kind is a key of KINDS below: it says where a Google
# Benchmark value comes from, its unit and which way is better. procpool /
# thread_pool name Google Benchmark benchmarks (a full name such as
# "BM_PoolRoundTrip/real_time" or just the family "BM_PoolRoundTrip"); python
# names a key of python_pool.py's JSON output. Use None for a side that has no
# equivalent: it is shown as "-" and its ratio is left out. A 'speedup' row
# names a pair per side, (serial, parallel): value = serial time / parallel
# time, both from the same run of that side. counter= overrides the kind's
# Google Benchmark counter. targets= lists what the issue asks of procpool:
# dict(of=..., op=">=" or "<=", bound=...) where of is "vs_python",
# "vs_thread_pool" (the ratio columns), "procpool" (its own value), or
# "figure" with figure=KEY: procpool's value divided by procpool's value in
# row KEY of the same run (e.g. >= 0.5x a floor, <= 2x a round trip);
# aim=True marks a goal rather than a requirement. program= names the Google
# Benchmark program of procpool's side when it is not bm_pool (the row is "-"
# when that program was not built); sweep=(SWEEP, x) puts the row on the
# curve of SWEEPS[SWEEP] at x (echo_sizes.png: payload bytes;
# batch_sizes.png: tasks per batch); plot=False leaves it out of
# comparison.png; quick=False marks a row that --quick does not run (shown
# as "-", "not measured (--quick)");
# refs= lists rows whose procpool value its panel draws as a reference line.
FIGURES = [
    dict(key="apply_async_noop", title="apply_async no-op throughput",
         kind="throughput",
         procpool="BM_PoolApplyAsyncNoop",
         thread_pool="BM_ThreadPoolApplyAsyncNoop",
         python="apply_async_noop_tasks_per_s",
         targets=[dict(of="vs_python", op=">=", bound=50),
                  dict(of="vs_thread_pool", op=">=", bound=3)]),
    dict(key="roundtrip", title="round trip latency",
         kind="latency",
         procpool="BM_PoolRoundTrip",
         thread_pool="BM_ThreadPoolRoundTrip",
         python="roundtrip_us",
         targets=[dict(of="vs_python", op=">=", bound=40),
                  dict(of="vs_thread_pool", op=">=", bound=4)]),
    # Python's Pool never recovers from a killed worker; a thread pool has none to kill.
    dict(key="respawn", title="respawn after SIGKILL, to the next result",
         kind="latency",
         procpool="BM_PoolRespawn",
         thread_pool=None,
         python=None),
    # Thread pool: 8 chunk tasks (the automatic chunk count) returning vectors.
    dict(key="map", title="map of 1,000,000 ints, automatic chunksize",
         kind="throughput",
         procpool="BM_PoolMap",
         thread_pool="BM_ThreadPoolMap",
         python="map_items_per_s",
         targets=[dict(of="vs_python", op=">=", bound=10)]),
    # The 16 MiB is counted once per round trip on every side; the 16 MiB point
    # of the echo sweep. The parent runs glibc's default malloc here: the issue
    # asks at least half the rate of allocating and filling one fresh 16 MiB
    # vector (fresh_vector_16mib), the floor no engine can beat with it.
    dict(key="echo_16mib", title="echo of 16 MiB, one at a time",
         kind="bandwidth", sweep=("echo", 16 << 20),
         procpool=f"BM_PoolEcho/{16 << 20}/real_time",
         thread_pool=f"BM_ThreadPoolEcho/{16 << 20}/real_time",
         python="echo_bytes_per_s", refs=["memcpy_16mib", "fresh_vector_16mib"],
         targets=[dict(of="vs_python", op=">=", bound=50),
                  dict(of="procpool", op=">=", bound=5e9, aim=True),
                  dict(of="figure", figure="fresh_vector_16mib", op=">=", bound=0.5)]),
    # The same echo in a second bm_pool run whose parent keeps its heap
    # (KEPT_HEAP_TUNABLES, as the README recommends for data-heavy programs).
    dict(key="echo_16mib_kept_heap", title="echo of 16 MiB, parent keeps its heap (GLIBC_TUNABLES)",
         kind="bandwidth",
         procpool=f"{KEPT_HEAP}:BM_PoolEcho/{16 << 20}/real_time",
         thread_pool=f"BM_ThreadPoolEcho/{16 << 20}/real_time",
         python="echo_bytes_per_s", refs=["memcpy_16mib", "fresh_vector_16mib"],
         targets=[dict(of="vs_python", op=">=", bound=50),
                  dict(of="procpool", op=">=", bound=3e9),
                  dict(of="procpool", op=">=", bound=5e9, aim=True)]),
    # Beside the echo, from the same bm_pool run: the ceiling (one memcpy
    # between warm buffers) and the floor (fresh vector, default malloc).
    dict(key="memcpy_16mib", title="ceiling: one memcpy of 16 MiB, warm buffers",
         kind="bandwidth", plot=False,
         procpool="BM_Memcpy16MiB", thread_pool=None, python=None),
    dict(key="fresh_vector_16mib", title="floor: allocate + fill a fresh 16 MiB vector (default malloc)",
         kind="bandwidth", plot=False,
         procpool="BM_FreshVector16MiB", thread_pool=None, python=None),
    # The check that the tunables took effect: the parent's minor page faults
    # (getrusage ru_minflt) per iteration; 4096 = every page of 16 MiB fresh.
    dict(key="echo_16mib_faults", title="parent page faults per 16 MiB echo (default malloc)",
         kind="faults", plot=False,
         procpool=f"BM_PoolEcho/{16 << 20}/real_time",
         thread_pool=f"BM_ThreadPoolEcho/{16 << 20}/real_time",
         python=None),
    dict(key="echo_16mib_kept_heap_faults", title="parent page faults per 16 MiB echo (heap kept)",
         kind="faults", plot=False,
         procpool=f"{KEPT_HEAP}:BM_PoolEcho/{16 << 20}/real_time",
         thread_pool=None, python=None),
    dict(key="fresh_vector_16mib_faults", title="page faults per fresh 16 MiB vector (default malloc)",
         kind="faults", plot=False,
         procpool="BM_FreshVector16MiB", thread_pool=None, python=None),
    dict(key="fresh_vector_16mib_kept_heap_faults", title="page faults per fresh 16 MiB vector (heap kept)",
         kind="faults", plot=False,
         procpool=f"{KEPT_HEAP}:BM_FreshVector16MiB",
         thread_pool=None, python=None),
    # Python runs a shorter task (pure Python); only speed-ups are compared.
    dict(key="cpu_bound_speedup", title="CPU-bound tasks, 2 workers vs serial",
         kind="speedup",
         procpool=("BM_SerialCpuBound", "BM_PoolCpuBound/2/real_time"),
         thread_pool=("BM_SerialCpuBound", "BM_ThreadPoolCpuBound/2/real_time"),
         python=("cpu_bound_serial_s", "cpu_bound_pool_s"),
         targets=[dict(of="procpool", op=">=", bound=1.9)]),
    # The same 16 tasks on 1 and on 4 workers (4 on this machine's 2 cores:
    # no more speed-up to be had, the cost of oversubscribing shows).
    *[dict(key=f"cpu_bound_speedup_{w}", title=f"CPU-bound tasks, {w} worker{'s' if w > 1 else ''} vs serial",
           kind="speedup", plot=False,
           procpool=("BM_SerialCpuBound", f"BM_PoolCpuBound/{w}/real_time"),
           thread_pool=("BM_SerialCpuBound", f"BM_ThreadPoolCpuBound/{w}/real_time"),
           python=None)
      for w in (1, 4)],
    # A chain of 1000 dependent tasks: each link an AsyncResult argument
    # (queued by the result thread), beside the loop a user writes without
    # them (get() each link, then submit the next).
    dict(key="dependency_chain", title="chain of dependent tasks (AsyncResult arguments), per link",
         kind="latency", counter="us_per_link",
         procpool="BM_PoolDependencyChain", thread_pool=None, python=None,
         targets=[dict(of="figure", figure="get_then_submit_chain", op="<=", bound=1.0, aim=True)]),
    dict(key="get_then_submit_chain", title="the same chain as get()-then-submit, per link",
         kind="latency", counter="us_per_link",
         procpool="BM_PoolGetThenSubmitChain", thread_pool=None, python=None),
    dict(key="start_stop", title="create Pool(2), one task, close+join",
         kind="latency",
         procpool="BM_PoolStartStop",
         thread_pool="BM_ThreadPoolStartStop",
         python="start_stop_us",
         targets=[dict(of="vs_python", op=">=", bound=10)]),
    # Parent + zygote + workers (threads: the one process; Python: parent + workers).
    dict(key="idle_cpu", title="idle pool over 5 s (1 s quick)",
         kind="cpu_percent",
         procpool="BM_PoolIdleCpu",
         thread_pool="BM_ThreadPoolIdleCpu",
         python="idle_cpu_percent",
         targets=[dict(of="procpool", op="<=", bound=1.0)]),
    # Threads share their process's memory: no per-worker figure.
    dict(key="worker_pss", title="memory per worker (PSS)",
         kind="memory", counter="pss_kib_per_worker_after",
         procpool="BM_PoolWorkerMemory",
         thread_pool=None,
         python="pss_kib_per_worker"),
    # Any per-task leak costs at least a malloc chunk (16+ bytes) per task.
    dict(key="worker_pss_growth", title="worker PSS growth over 10M tasks (1M quick)",
         kind="growth", counter="growth_bytes_per_task",
         procpool="BM_PoolWorkerMemory",
         thread_pool=None,
         python=None,
         targets=[dict(of="procpool", op="<=", bound=1.0)]),
]

# The echo sweep: the other sizes of BM_PoolEcho / BM_ThreadPoolEcho /
# python_pool.py's ECHO_SIZES (16 MiB is echo_16mib above). Table rows, and
# together with echo_16mib the curve in echo_sizes.png (not comparison.png).
FIGURES += [
    dict(key=f"echo_{label}", title=f"echo of {label.replace('kib', ' KiB').replace('mib', ' MiB')}, one at a time",
         kind="bandwidth", sweep=("echo", n), plot=False,
         procpool=f"BM_PoolEcho/{n}/real_time",
         thread_pool=f"BM_ThreadPoolEcho/{n}/real_time",
         python=f"echo_{n}_bytes_per_s")
    for label, n in (("1kib", 1 << 10), ("64kib", 64 << 10), ("1mib", 1 << 20), ("256mib", 256 << 20))
]

# Throughput at scale: N no-ops submitted at once, then all collected, N =
# 1,000 .. 10,000,000 (BM_PoolApplyAsyncBatch / BM_ThreadPoolApplyAsyncBatch
# / python_pool.py's batch_<N>): table rows and the curve in batch_sizes.png.
# Python's Pool is not run at 10,000,000 (about ten minutes): that row sets
# its 1,000,000 figure beside the others and says so. --quick runs up to
# 100,000 only.
BATCH_SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
FIGURES += [
    dict(key=f"batch_{n}", kind="throughput", sweep=("batch", n), plot=False,
         title=f"throughput at scale: {n:,} no-ops submitted, then collected"
               + (" (Python: its 1,000,000 figure)" if n > 1_000_000 else ""),
         procpool=f"BM_PoolApplyAsyncBatch/{n}/real_time",
         thread_pool=f"BM_ThreadPoolApplyAsyncBatch/{n}/real_time",
         python=f"batch_{min(n, 1_000_000)}_tasks_per_s",
         quick=n <= 100_000,
         targets=[dict(of="vs_python", op=">=", bound=50),
                  dict(of="vs_thread_pool", op=">=", bound=3)])
    for n in BATCH_SIZES
]

# The sweeps: rows with sweep=(name, x) drawn as one curve per side, log-log.
SWEEPS = {
    "echo": dict(png="echo_sizes.png", x="payload size", y="bytes/s (higher is better)",
                 base=2, title="echo, one at a time: bytes/s vs payload size"),
    "batch": dict(png="batch_sizes.png", x="tasks submitted at once, then collected (N)",
                  y="tasks/s (higher is better)", base=10,
                  title="no-op throughput vs batch size"),
}

# bm_data (Shared<T>, SharedArray<T>): built only once the data plane's
# headers are in include/procpool/. Without it, procpool's side of these rows
# is "-" and their targets are "not measured", never met.
FIGURES += [
    # First 10,000 tasks after share(), each worker's one decode included;
    # thread pool: a shared_ptr to the same vector.
    dict(key="shared_arg", title="Shared<vector> of 256 MiB passed to 10,000 tasks, per task (each worker's one decode included)",
         kind="latency", counter="us_per_task", program="bm_data",
         procpool="BM_PoolSharedArg",
         thread_pool="BM_ThreadPoolSharedArg",
         python=None,
         targets=[dict(of="figure", figure="roundtrip", op="<=", bound=2)]),
    # The next 10,000 tasks, once every worker has its decoded copy: what a handle costs.
    dict(key="shared_arg_warm", title="Shared<vector> of 256 MiB, per task once each worker has decoded it",
         kind="latency", counter="us_per_task_warm", program="bm_data",
         procpool="BM_PoolSharedArg",
         thread_pool=None,
         python=None,
         targets=[dict(of="figure", figure="roundtrip", op="<=", bound=2)]),
    # Parent + zygote + workers, the parent's own 256 MiB vector included.
    dict(key="shared_arg_pss_before", title="Shared 256 MiB: pool PSS before share()",
         kind="memory", counter="pss_kib_before", program="bm_data", plot=False,
         procpool="BM_PoolSharedArg", thread_pool=None, python=None),
    dict(key="shared_arg_pss_after", title="Shared 256 MiB: pool PSS after the 10,000 tasks",
         kind="memory", counter="pss_kib_after", program="bm_data", plot=False,
         procpool="BM_PoolSharedArg", thread_pool=None, python=None),
    # (after - before) / 256 MiB / 2 workers: the shared copy and the workers' decoded ones.
    dict(key="shared_arg_growth", title="Shared 256 MiB: pool PSS growth, copies per worker",
         kind="copies", counter="growth_copies_per_worker", program="bm_data",
         procpool="BM_PoolSharedArg", thread_pool=None, python=None,
         targets=[dict(of="procpool", op="<=", bound=1.0)]),
    # 16 slice tasks of 16 MiB, in place; memory bandwidth bounds both sides.
    dict(key="shared_array_map", title="in-place map over 256 MiB of floats (SharedArray / vector)",
         kind="bandwidth", program="bm_data",
         procpool="BM_PoolSharedArrayMap",
         thread_pool="BM_ThreadPoolVectorMap",
         python=None,
         targets=[dict(of="vs_thread_pool", op=">=", bound=0.8)]),
]

# kind: unit, whether higher is better, the Google Benchmark value (a counter
# name, or "real_time" converted to microseconds), whether procpool-vs-other
# ratios mean something, and whether the plot uses a log axis.
KINDS = {
    "throughput": dict(unit="tasks/s", higher=True, gbench="items_per_second",
                       ratios=True, log=True),
    "latency": dict(unit="us", higher=False, gbench="real_time",
                    ratios=True, log=True),
    "bandwidth": dict(unit="bytes/s", higher=True, gbench="bytes_per_second",
                      ratios=True, log=True),
    # serial time / parallel time; a ratio of two sides' speed-ups says little.
    "speedup": dict(unit="x", higher=True, gbench="real_time",
                    ratios=False, log=False),
    "cpu_percent": dict(unit="% of one core", higher=False, gbench="cpu_percent",
                        ratios=True, log=False),
    "memory": dict(unit="KiB", higher=False, gbench="pss_kib_per_worker_after",
                   ratios=True, log=False),
    "growth": dict(unit="bytes/task", higher=False,
                   gbench="growth_bytes_per_task", ratios=False, log=False),
    # Copies of a payload: PSS growth / payload size / workers.
    "copies": dict(unit="copies/worker", higher=False,
                   gbench="growth_copies_per_worker", ratios=False, log=False),
    # Minor page faults (getrusage ru_minflt) of the parent per iteration.
    "faults": dict(unit="faults/iter", higher=False, gbench="minflt_per_iter",
                   ratios=False, log=False),
}

# procpool::mpi (bm_mpi under mpirun -n 3: two worker ranks on this host)
# beside mpi4py.futures doing the same work (python_mpi_futures.py). Their
# values come from run_mpi(): bm_mpi's entries join procpool's, and mpi4py's
# keys join python's with an "mpi4py_" prefix. Left out when bm_mpi was not
# built (no MPI) or with --no-mpi.
FIGURES += [
    dict(key="mpi_apply_async_noop", title="MPI ranks: apply_async no-op throughput (Python: mpi4py.futures)",
         kind="throughput", mpi=True,
         procpool="BM_MpiApplyAsyncNoop",
         thread_pool=None,
         python="mpi4py_submit_noop_tasks_per_s",
         targets=[dict(of="procpool", op=">=", bound=200e3)]),
    dict(key="mpi_roundtrip", title="MPI ranks: round trip latency (Python: mpi4py.futures)",
         kind="latency", mpi=True,
         procpool="BM_MpiRoundTrip",
         thread_pool=None,
         python="mpi4py_roundtrip_us"),
    # The same two, run again while two busy loops share the 2 cores: at
    # most a 3x slowdown (loaded / unloaded, both from this run).
    dict(key="mpi_apply_async_noop_loaded", title="MPI ranks: apply_async no-op throughput, two busy loops beside",
         kind="throughput", mpi=True,
         procpool=f"{LOADED}:BM_MpiApplyAsyncNoop",
         thread_pool=None,
         python="mpi4py_loaded_submit_noop_tasks_per_s",
         targets=[dict(of="figure", figure="mpi_apply_async_noop", op=">=", bound=0.333)]),
    dict(key="mpi_roundtrip_loaded", title="MPI ranks: round trip latency, two busy loops beside",
         kind="latency", mpi=True,
         procpool=f"{LOADED}:BM_MpiRoundTrip",
         thread_pool=None,
         python="mpi4py_loaded_roundtrip_us",
         targets=[dict(of="figure", figure="mpi_roundtrip", op="<=", bound=3)]),
    # Every rank, rank 0's manager thread included.
    dict(key="mpi_idle_cpu", title="MPI ranks: idle pool over 5 s (1 s quick)",
         kind="cpu_percent", mpi=True,
         procpool="BM_MpiIdleCpu",
         thread_pool=None,
         python=None,
         targets=[dict(of="procpool", op="<=", bound=1.0)]),
    dict(key="mpi_dependency_chain", title="MPI ranks: chain of dependent tasks, per link",
         kind="latency", counter="us_per_link", mpi=True,
         procpool="BM_MpiDependencyChain", thread_pool=None, python=None),
    dict(key="mpi_get_then_submit_chain", title="MPI ranks: the same chain as get()-then-submit, per link",
         kind="latency", counter="us_per_link", mpi=True,
         procpool="BM_MpiGetThenSubmitChain", thread_pool=None, python=None),
]

# procpool::mpi across 3 simulated hosts over TCP, one rank per host
# (compare_cluster.py: scripts/cluster.sh, root only), beside mpi4py.futures
# in the same setting; the one-host rows above are the reference (refs=).
# No real latency or bandwidth limit: a lower bound of the overhead. Then the
# time from a node's loss to rank 0 failing its first task with WorkerLost
# (node_loss, mpirun --enable-recovery). Left out where the cluster cannot
# be made, with --no-cluster and with --no-mpi.
FIGURES += [
    dict(key="cluster_apply_async_noop",
         title="3 simulated hosts over TCP: apply_async no-op throughput (Python: mpi4py.futures)",
         kind="throughput", mpi=True, cluster=True, plot=False,
         procpool="cluster:BM_MpiApplyAsyncNoop",
         thread_pool=None,
         python="mpi4py_cluster_submit_noop_tasks_per_s",
         refs=["mpi_apply_async_noop"]),
    dict(key="cluster_roundtrip",
         title="3 simulated hosts over TCP: round trip latency (Python: mpi4py.futures)",
         kind="latency", mpi=True, cluster=True, plot=False,
         procpool="cluster:BM_MpiRoundTrip",
         thread_pool=None,
         python="mpi4py_cluster_roundtrip_us",
         refs=["mpi_roundtrip"]),
    dict(key="cluster_node_killed",
         title="3 simulated hosts: every process of a node killed, to its first task failed (WorkerLost)",
         kind="latency", mpi=True, cluster=True, plot=False,
         procpool="cluster:NodeLoss/kill", thread_pool=None, python=None),
    dict(key="cluster_link_down",
         title="3 simulated hosts: a node's link down, to its first task failed (WorkerLost)",
         kind="latency", mpi=True, cluster=True, plot=False,
         procpool="cluster:NodeLoss/link", thread_pool=None, python=None),
]

# How a target of="figure" names the figure it divides by.
FIGURE_NAMES = {
    "fresh_vector_16mib": "the fresh-vector floor",
    "get_then_submit_chain": "the get()-then-submit chain",
    "roundtrip": "the no-op round trip",
    "memcpy_16mib": "the memcpy ceiling",
    "mpi_apply_async_noop": "the unloaded MPI throughput",
    "mpi_roundtrip": "the unloaded MPI round trip",
}

SIDES = [  # (key in FIGURES / results, column label)
    ("procpool", "procpool"),
    ("thread_pool", "thread pool"),
    ("python", "Python Pool"),
]

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"]  # per side
UNITS = {kind: k["unit"] for kind, k in KINDS.items()}


class CompareError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ratio(kind, pp, other):
    """>1 means procpool is better."""
    if not KINDS[kind]["ratios"]:
        return None
    if pp is None or other is None or pp <= 0 or other <= 0:
        return None
    return pp / other if KINDS[kind]["higher"] else other / pp


def speedup(serial, parallel):
    if serial is None or parallel is None or parallel <= 0:
        return None
    return serial / parallel


def evaluate_targets(fig, row, rows_by_key):
    """Each target of the figure with the measured value and whether it is met.
    A target of="figure" divides procpool's value by procpool's value in row
    figure= (already in rows_by_key, or evaluated later: see main)."""
    out = []
    for t in fig.get("targets", []):
        extra = {}
        if t["of"] == "figure":
            other = rows_by_key.get(t["figure"], {}).get("procpool")
            value = (row["procpool"] / other
                     if row["procpool"] is not None and other else None)
            extra["other"] = other
        else:
            value = row["procpool" if t["of"] == "procpool" else f"procpool_{t['of']}"]
        met = None if value is None else (
            value >= t["bound"] if t["op"] == ">=" else value <= t["bound"])
        out.append(dict(t, aim=bool(t.get("aim")), value=value, met=met, **extra))
    return out
