#!/usr/bin/env python3
"""Run procpool, a classic thread pool and Python's multiprocessing.Pool on the
same workloads and print them side by side.

Usage:
    benchmarks/compare.py --build-dir BUILD [--quick] [--out-dir DIR]

Runs, one after the other (never concurrently, so they do not compete for
cores):
  * BUILD/benchmarks/bm_pool         procpool           (Google Benchmark)
  * BUILD/benchmarks/bm_thread_pool  classic thread pool (Google Benchmark)
  * BUILD/benchmarks/bm_pool again, only its 16 MiB echo and fresh vector,
                                     with GLIBC_TUNABLES that keep the parent's
                                     heap (KEPT_HEAP_TUNABLES)
  * BUILD/benchmarks/bm_data         procpool Shared<T> / SharedArray<T>, when
                                     built (once include/procpool/shared_array.hpp
                                     exists); else those figures are "-"
  * benchmarks/python_pool.py        multiprocessing.Pool, run with the
                                     interpreter running this script
  * BUILD/benchmarks/bm_mpi and benchmarks/python_mpi_futures.py, each under
                                     mpirun -n 3 (two worker ranks on this
                                     host), when bm_mpi was built: procpool::mpi
                                     beside mpi4py.futures (run_mpi)
then prints a markdown table (with each figure's targets, met or not), and
writes DIR/comparison.json, DIR/comparison.png and DIR/echo_sizes.png (the
echo's bytes/s against payload size, 1 KiB to 256 MiB, log-log; DIR defaults
to BUILD/benchmark-results).

--quick passes --benchmark_min_time=0.2 and sets PROCPOOL_BENCH_QUICK=1 for
the Google Benchmark programs (the idle and memory figures then run a
shorter fixed amount of work), and --quick to python_pool.py.

The PNG is drawn with matplotlib if this interpreter has it, else with gnuplot
if it is on PATH, else skipped with a warning (e.g. run the script as
`/usr/bin/python3 benchmarks/compare.py ...` on Debian with
python3-matplotlib installed).

To add a figure, add one row to FIGURES below.
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# The second bm_pool run (the parent keeps its heap): glibc tunables that keep
# freed memory in the heap (no mmap for blocks under 32 MiB, no trimming),
# and the benchmarks it runs. Its entries are renamed "kept_heap:<name>".
KEPT_HEAP = "kept_heap"
KEPT_HEAP_TUNABLES = ("glibc.malloc.mmap_threshold=33554432:"
                      "glibc.malloc.trim_threshold=2147483648")
KEPT_HEAP_FILTER = f"^(BM_PoolEcho/{16 << 20}|BM_FreshVector16MiB)/"

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
# when that program was not built); sweep_bytes= puts the row on the curve in
# echo_sizes.png at that size; plot=False leaves it out of comparison.png;
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
         kind="bandwidth", sweep_bytes=16 << 20,
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
         procpool=("BM_SerialCpuBound", "BM_PoolCpuBound"),
         thread_pool=("BM_SerialCpuBound", "BM_ThreadPoolCpuBound"),
         python=("cpu_bound_serial_s", "cpu_bound_pool_s"),
         targets=[dict(of="procpool", op=">=", bound=1.9)]),
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
         kind="bandwidth", sweep_bytes=n, plot=False,
         procpool=f"BM_PoolEcho/{n}/real_time",
         thread_pool=f"BM_ThreadPoolEcho/{n}/real_time",
         python=f"echo_{n}_bytes_per_s")
    for label, n in (("1kib", 1 << 10), ("64kib", 64 << 10), ("1mib", 1 << 20), ("256mib", 256 << 20))
]

# bm_data (Shared<T>, SharedArray<T>): built only once the data plane's
# headers are in include/procpool/. Without it, procpool's side of these rows
# is "-" and their targets are "not measured", never met.
FIGURES += [
    # First 10,000 tasks after share(), each worker's one decode included;
    # thread pool: a shared_ptr to the same vector.
    dict(key="shared_arg", title="Shared<vector> of 256 MiB passed to 10,000 tasks, per task",
         kind="latency", counter="us_per_task", program="bm_data",
         procpool="BM_PoolSharedArg",
         thread_pool="BM_ThreadPoolSharedArg",
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
         python="mpi4py_submit_noop_tasks_per_s"),
    dict(key="mpi_roundtrip", title="MPI ranks: round trip latency (Python: mpi4py.futures)",
         kind="latency", mpi=True,
         procpool="BM_MpiRoundTrip",
         thread_pool=None,
         python="mpi4py_roundtrip_us"),
]

# How a target of="figure" names the figure it divides by.
FIGURE_NAMES = {
    "fresh_vector_16mib": "the fresh-vector floor",
    "roundtrip": "the no-op round trip",
    "memcpy_16mib": "the memcpy ceiling",
}

SIDES = [  # (key in FIGURES / results, column label)
    ("procpool", "procpool"),
    ("thread_pool", "thread pool"),
    ("python", "Python Pool"),
]

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"]  # per side
UNITS = {kind: k["unit"] for kind, k in KINDS.items()}
TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
QUICK_MIN_TIME = "0.2"  # Google Benchmark 1.7.1: plain seconds


class CompareError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- running ---

def run(cmd, what, env=None):
    """Run cmd (with `env` added to the environment), return its stdout;
    raise CompareError on any failure."""
    log(f"compare.py: running {what}: {' '.join(cmd)}")
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, **env} if env else None)
    except OSError as e:
        raise CompareError(f"cannot run {what} ({cmd[0]}): {e}") from e
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        raise CompareError(f"{what} failed with exit status {proc.returncode}: "
                           f"{' '.join(cmd)}\n--- stderr (last lines) ---\n{tail}")
    return proc.stdout


def check_binary(path, what):
    if not os.path.isfile(path):
        raise CompareError(f"{what} binary not found: {path}\n"
                           "(configure with -Dbenchmarks=true and build first)")
    if not os.access(path, os.X_OK):
        raise CompareError(f"{what} binary is not executable: {path}")


def run_gbench(path, what, quick, env=None, bench_filter=None):
    """Run a Google Benchmark binary (with `env` added to its environment and
    only the benchmarks matching `bench_filter`, if given), return its list of
    result entries."""
    check_binary(path, what)
    cmd = [path, "--benchmark_format=json"]
    if bench_filter:
        cmd.append(f"--benchmark_filter={bench_filter}")
    if quick:
        cmd.append(f"--benchmark_min_time={QUICK_MIN_TIME}")
    env = dict(env or {}, **({"PROCPOOL_BENCH_QUICK": "1"} if quick else {}))
    out = run(cmd, what, env=env or None)
    try:
        doc = json.loads(out)
    except json.JSONDecodeError as e:
        raise CompareError(f"{what} did not print valid JSON: {e}") from e
    return doc.get("benchmarks", [])


def run_kept_heap(bm_pool, quick):
    """bm_pool's 16 MiB echo and fresh vector again, in a process whose malloc
    keeps freed memory (KEPT_HEAP_TUNABLES); entries renamed kept_heap:<name>."""
    entries = run_gbench(bm_pool, "procpool, parent keeps its heap (bm_pool)", quick,
                         env={"GLIBC_TUNABLES": KEPT_HEAP_TUNABLES},
                         bench_filter=KEPT_HEAP_FILTER)
    for e in entries:
        for field in ("name", "run_name"):
            if field in e:
                e[field] = f"{KEPT_HEAP}:{e[field]}"
    return entries


def run_python(quick):
    script = os.path.join(HERE, "python_pool.py")
    cmd = [sys.executable, script] + (["--quick"] if quick else [])
    out = run(cmd, "Python multiprocessing.Pool")
    for line in reversed(out.strip().splitlines()):  # the JSON is the last line
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    raise CompareError("python_pool.py did not print a JSON object")


MPI_ENV = {  # allowed as root; loopback only
    "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl_tcp_if_include": "lo", "OMPI_MCA_oob_tcp_if_include": "lo",
}


def run_mpi(bench_dir, quick):
    """bm_mpi and python_mpi_futures.py, each under mpirun -n 3.

    Returns (Google Benchmark entries, {"mpi4py_<key>": value}), or None when
    bm_mpi was not built or mpirun is missing.
    """
    bm_mpi = os.path.join(bench_dir, "bm_mpi")
    mpirun = shutil.which("mpirun")
    if not os.path.isfile(bm_mpi) or mpirun is None:
        log("compare.py: no bm_mpi or no mpirun (MPI not found at configure time): skipping the MPI rows")
        return None
    launch = [mpirun, "-n", "3", "--oversubscribe"]
    cmd = launch + [bm_mpi, "--benchmark_format=json"]
    if quick:
        cmd.append(f"--benchmark_min_time={QUICK_MIN_TIME}")
    entries = json.loads(run(cmd, "procpool::mpi (bm_mpi)", env=MPI_ENV)).get("benchmarks", [])
    # mpi4py lives in Debian's python3-mpi4py, for /usr/bin/python3.
    python = sys.executable
    if subprocess.run([python, "-c", "import mpi4py"], capture_output=True).returncode != 0:
        python = "/usr/bin/python3"
    cmd = launch + [python, "-m", "mpi4py.futures", os.path.join(HERE, "python_mpi_futures.py")]
    out = run(cmd + (["--quick"] if quick else []), "mpi4py.futures", env=MPI_ENV)
    futures = json.loads(out.strip().splitlines()[-1])
    return entries, {f"mpi4py_{k}": v for k, v in futures.items()}


# ---------------------------------------------------------------- parsing ---

def gbench_value(entries, name, kind, counter=None):
    """The figure's value for benchmark `name` from Google Benchmark entries:
    the counter `counter`, by default the kind's (see KINDS).

    Matches the full name first, then the family (the part before the first
    '/', e.g. "BM_X/real_time" -> "BM_X"). If the run has repetitions the
    median aggregate is used. Returns None if absent. Unknown extra benchmarks
    are simply never looked at.
    """
    def family(e):
        return e.get("run_name", e.get("name", "")).split("/")[0]

    hits = [e for e in entries if e.get("run_name") == name or e.get("name") == name]
    if not hits:
        hits = [e for e in entries if family(e) == name]
    if not hits:
        return None
    names = sorted({e.get("run_name", e.get("name")) for e in hits})
    if len(names) > 1:
        log(f"compare.py: warning: '{name}' matches several benchmarks {names}; "
            f"using {names[0]} (give the full name in FIGURES)")
        hits = [e for e in hits if e.get("run_name", e.get("name")) == names[0]]
    errors = [e for e in hits if e.get("error_occurred")]
    if errors:
        raise CompareError(f"benchmark {name} reported an error: "
                           f"{errors[0].get('error_message', '?')}")
    medians = [e for e in hits if e.get("aggregate_name") == "median"]
    runs = medians or [e for e in hits if e.get("run_type", "iteration") == "iteration"]

    source = counter or KINDS[kind]["gbench"]
    values = []
    for e in runs:
        if source != "real_time":
            if source not in e:
                raise CompareError(f"benchmark {name} has no {source} counter "
                                   "(state.SetItemsProcessed / SetBytesProcessed "
                                   "/ state.counters)")
            values.append(float(e[source]))
        else:
            unit = e.get("time_unit", "ns")
            if unit not in TO_US:
                raise CompareError(f"benchmark {name}: unknown time_unit {unit!r}")
            values.append(float(e["real_time"]) * TO_US[unit])
    return statistics.median(values) if values else None


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


def gbench_figure(entries, fig, side):
    """(value, names not found) of figure `fig` for a Google Benchmark side."""
    name = fig.get(side)
    if not name:
        return None, []
    if fig["kind"] == "speedup":
        times = [gbench_value(entries, n, "latency") for n in name]
        return speedup(*times), [n for n, t in zip(name, times) if t is None]
    value = gbench_value(entries, name, fig["kind"], fig.get("counter"))
    return value, ([name] if value is None else [])


def python_figure(py, fig):
    """(value, keys not found) of figure `fig` from python_pool.py's output."""
    key = fig.get("python")
    if not key:
        return None, []
    keys = key if fig["kind"] == "speedup" else (key,)
    absent = [k for k in keys if k not in py or py[k] is None]
    if absent:
        return None, absent
    if fig["kind"] == "speedup":
        return speedup(*(float(py[k]) for k in keys)), []
    return float(py[key]), []


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


# ------------------------------------------------------------- formatting ---

def fmt_value(kind, v):
    if v is None:
        return "-"
    if kind in ("throughput", "bandwidth"):
        unit = "tasks/s" if kind == "throughput" else "B/s"
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if v >= div:
                return f"{v / div:.3g} {suffix}{unit}" if kind == "bandwidth" \
                    else f"{v / div:.3g}{suffix} {unit}"
        return f"{v:.3g} {unit}"
    if kind == "speedup":
        return f"{v:.2f}x"
    if kind == "cpu_percent":
        return f"{v:.2g}%" if abs(v) < 1 else f"{v:.3g}%"
    if kind == "memory":
        if v >= 1024 * 1024:
            return f"{v / 1024 / 1024:.3g} GiB"
        return f"{v / 1024:.3g} MiB" if v >= 1024 else f"{v:.3g} KiB"
    if kind == "growth":
        return f"{v:.2g} B/task"
    if kind == "copies":
        return f"{v:.2f} copies/worker"
    if kind == "faults":
        return f"{v:.4g} faults"
    if v >= 1e6:
        return f"{v / 1e6:.3g} s"
    if v >= 1e3:
        return f"{v / 1e3:.3g} ms"
    return f"{v:.3g} us"


def fmt_ratio(r):
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 1:
        return f"{r:.1f}x"
    return f"{r:.2g}x"  # two significant digits: 0.0032x, not 0.00x


def fmt_target(kind, t):
    """E.g. ">= 50x vs Python: met (61x)", "<= 1%: NOT met (2.3%, 2.3x over)"."""
    op = t["op"]
    if t["of"] == "procpool":
        what = f"{op} {fmt_value(kind, t['bound'])}"
        shown = fmt_value(kind, t["value"])
    elif t["of"] == "figure":
        what = f"{op} {t['bound']:g}x {FIGURE_NAMES.get(t['figure'], t['figure'])}"
        shown = fmt_ratio(t["value"])
    else:
        versus = "Python" if t["of"] == "vs_python" else "thread pool"
        what = f"{op} {t['bound']:g}x vs {versus}"
        shown = fmt_ratio(t["value"])
    if t["aim"]:
        what = "aim " + what
    if t["met"] is None:
        return f"{what}: {t.get('missing') or 'no value'}"
    if t["met"]:
        return f"{what}: met ({shown})"
    v, b = t["value"], t["bound"]
    if op == ">=":
        gap = f"{fmt_ratio(b / v)} short" if v > 0 else f"short by {fmt_value(kind, b - v)}"
    else:
        gap = f"{fmt_ratio(v / b)} over" if b > 0 else f"over by {fmt_value(kind, v - b)}"
    return f"{what}: NOT met ({shown}, {gap})"


def machine_info():
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
    }


def markdown_table(rows):
    header = ["figure", "procpool", "thread pool", "Python Pool",
              "procpool vs Python", "procpool vs thread pool", "target"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|"]
    for r in rows:
        better = "higher is better" if KINDS[r["kind"]]["higher"] else "lower is better"
        cells = [f"{r['title']} ({better})"]
        cells += [fmt_value(r["kind"], r[side]) for side, _ in SIDES]
        cells += [fmt_ratio(r["procpool_vs_python"]),
                  fmt_ratio(r["procpool_vs_thread_pool"])]
        cells.append("; ".join(fmt_target(r["kind"], t) for t in r["targets"]) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------- plotting ---

def plot_title(machine, date):
    return f"procpool vs thread pool vs Python Pool - {machine['cpu_model']}, " \
           f"{machine['cores']} cores - {date}"


def plot_matplotlib(rows, png, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.4 * nrows),
                             squeeze=False)
    for ax, r in zip(axes.flat, rows):
        labels = [label for _, label in SIDES]
        vals = [r[side] for side, _ in SIDES]
        xs = range(len(labels))
        log_axis = KINDS[r["kind"]]["log"]
        shown = [v is not None and (v > 0 or not log_axis) for v in vals]
        heights = [v if ok else float("nan") for v, ok in zip(vals, shown)]
        bars = ax.bar(xs, heights, color=COLORS[:len(labels)])
        if log_axis:
            ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels)
        better = "higher" if KINDS[r["kind"]]["higher"] else "lower"
        ax.set_title(f"{r['title']}\n({UNITS[r['kind']]}, {better} is better)",
                     fontsize=10)
        ax.set_ylabel(UNITS[r["kind"]])
        ax.grid(axis="y", which="major", alpha=0.3)
        for b, v, ok in zip(bars, vals, shown):
            if ok:
                ax.annotate(fmt_value(r["kind"], v), (b.get_x() + b.get_width() / 2, v),
                            ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        # procpool's own targets as dashed lines, labelled met / NOT met.
        bounds = []
        for t in r["targets"]:
            if t["of"] == "procpool":
                bounds.append(t["bound"])
                ax.axhline(t["bound"], color="0.3", linestyle="--", linewidth=0.8)
                state = "no value" if t["met"] is None else \
                    ("met" if t["met"] else "NOT met")
                ax.annotate(f"{'aim' if t['aim'] else 'target'} "
                            f"{t['op']} {fmt_value(r['kind'], t['bound'])}: {state}",
                            (0.01, t["bound"]), xycoords=("axes fraction", "data"),
                            fontsize=7, color="0.3", va="bottom")
        # Figure-relative targets (e.g. 0.5x the floor) and reference rows
        # (the memcpy ceiling, the fresh-vector floor) as dotted lines.
        lines = [(f"{'aim' if t['aim'] else 'target'} {t['op']} {t['bound']:g}x "
                  f"{FIGURE_NAMES.get(t['figure'], t['figure'])}",
                  t["bound"] * t["other"]) for t in r["targets"]
                 if t["of"] == "figure" and t.get("other")]
        lines += [(ref["title"].split(":")[0], ref["value"]) for ref in r.get("refs", [])
                  if ref["value"]]
        for label, y in lines:
            bounds.append(y)
            ax.axhline(y, color="0.5", linestyle=":", linewidth=0.8)
            ax.annotate(f"{label}: {fmt_value(r['kind'], y)}", (0.99, y),
                        xycoords=("axes fraction", "data"), ha="right",
                        fontsize=7, color="0.4", va="bottom")
        present = [v for v, ok in zip(vals, shown) if ok] + bounds
        if present and log_axis:  # headroom for the labels on the log axis
            ax.set_ylim(min(present) / 3, max(present) * 4)
        elif present:
            ax.set_ylim(min(0, min(present) * 1.3), max(0, max(present)) * 1.3 or 1)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))  # room for the title
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_gnuplot(rows, png, title, gnuplot):
    n = len(rows)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)

    def q(s):  # gnuplot string literal
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    size = f"size {460 * ncols},{440 * nrows}"
    with tempfile.TemporaryDirectory() as tmp:
        script = [
            f"set terminal pngcairo {size} font ',9' noenhanced"
            if _gnuplot_has_pngcairo(gnuplot) else f"set terminal png {size} noenhanced",
            f"set output {q(png)}",
            "set style fill solid 0.9 border -1",
            "set grid ytics",
            "unset key",
            "set xtics nomirror",
            f"set xrange [-0.6:{len(SIDES) - 0.4}]",
            f"set multiplot layout {nrows},{ncols} title {q(title)}",
        ]
        for i, r in enumerate(rows):
            dat = os.path.join(tmp, f"fig{i}.dat")
            with open(dat, "w") as f:  # x label value value-label rgb ('#' is a comment)
                for j, (side, label) in enumerate(SIDES):
                    v = r[side]
                    f.write(f"{j} {q(label)} {'NaN' if v is None else v} "
                            f"{q(fmt_value(r['kind'], v))} "
                            f"{int(COLORS[j % len(COLORS)][1:], 16)}\n")
            log_axis = KINDS[r["kind"]]["log"]
            present = [r[side] for side, _ in SIDES
                       if r[side] is not None and (r[side] > 0 or not log_axis)]
            if present and log_axis:
                yrange = f"set yrange [{min(present) / 3}:{max(present) * 4}]"
            elif present:
                yrange = (f"set yrange [{min(0, min(present) * 1.3)}:"
                          f"{max(0, max(present)) * 1.3 or 1}]")
            else:
                yrange = "set autoscale y"
            better = "higher" if KINDS[r["kind"]]["higher"] else "lower"
            script += [
                "set logscale y" if log_axis else "unset logscale y",
                yrange,
                f"set title {q(r['title'] + ' (' + UNITS[r['kind']] + ', ' + better + ' is better)')}",
                f"set ylabel {q(UNITS[r['kind']])}",
                f"plot {q(dat)} using 1:3:(0.7):5:xtic(2) "
                "with boxes lc rgb variable, "
                "'' using 1:3:4 with labels offset 0,0.7",
            ]
        script.append("unset multiplot")
        gp = os.path.join(tmp, "plot.gp")
        with open(gp, "w") as f:
            f.write("\n".join(script) + "\n")
        proc = subprocess.run([gnuplot, gp], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip())


def _gnuplot_has_pngcairo(gnuplot):
    proc = subprocess.run([gnuplot, "-e", "set terminal"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    return "pngcairo" in proc.stdout


def echo_sweep(rows):
    """The echo rows by payload size: {"bytes": [...], side: [bytes/s or None]}."""
    sweep = sorted((r for r in rows if "sweep_bytes" in r), key=lambda r: r["sweep_bytes"])
    out = {"bytes": [r["sweep_bytes"] for r in sweep]}
    for side, _ in SIDES:
        out[side] = [r[side] for r in sweep]
    return out


def fmt_bytes(n):
    for div, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:g} {suffix}"
    return f"{n} B"


def plot_sweep_matplotlib(sweep, png, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for j, (side, label) in enumerate(SIDES):
        pts = [(x, y) for x, y in zip(sweep["bytes"], sweep[side]) if y]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o",
                    color=COLORS[j], label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sweep["bytes"])
    ax.set_xticklabels([fmt_bytes(n) for n in sweep["bytes"]])
    ax.set_xlabel("payload size")
    ax.set_ylabel("bytes/s (higher is better)")
    ax.grid(which="major", alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_sweep_gnuplot(sweep, png, title, gnuplot):
    def q(s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    with tempfile.TemporaryDirectory() as tmp:
        plots = []
        for j, (side, label) in enumerate(SIDES):
            dat = os.path.join(tmp, f"{side}.dat")
            with open(dat, "w") as f:
                for x, y in zip(sweep["bytes"], sweep[side]):
                    if y:
                        f.write(f"{x} {y}\n")
            plots.append(f"{q(dat)} using 1:2 with linespoints lw 2 pt 7 "
                         f"lc rgb {q(COLORS[j])} title {q(label)}")
        tics = ", ".join(f"{q(fmt_bytes(n))} {n}" for n in sweep["bytes"])
        script = [
            "set terminal pngcairo size 820,550 font ',9' noenhanced"
            if _gnuplot_has_pngcairo(gnuplot) else "set terminal png size 820,550 noenhanced",
            f"set output {q(png)}",
            f"set title {q(title)}",
            "set logscale xy", "set grid", "set key top left",
            f"set xtics ({tics})",
            "set xlabel 'payload size'", "set ylabel 'bytes/s (higher is better)'",
            "plot " + ", ".join(plots),
        ]
        gp = os.path.join(tmp, "sweep.gp")
        with open(gp, "w") as f:
            f.write("\n".join(script) + "\n")
        proc = subprocess.run([gnuplot, gp], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip())


def plot_sweep(sweep, png, title):
    """The echo sweep, log-log, one line per side. Returns the tool used or None."""
    if not any(y for side, _ in SIDES for y in sweep[side]):
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        plot_sweep_matplotlib(sweep, png, title)
        return "matplotlib"
    gnuplot = shutil.which("gnuplot")
    if gnuplot:
        try:
            plot_sweep_gnuplot(sweep, png, title, gnuplot)
            return "gnuplot"
        except (RuntimeError, OSError) as e:
            log(f"compare.py: warning: gnuplot failed, no sweep plot written: {e}")
    return None


def plot(rows, png, title):
    """Returns the tool used, or None if no plot was written."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        plot_matplotlib(rows, png, title)
        return "matplotlib"
    gnuplot = shutil.which("gnuplot")
    if gnuplot:
        try:
            plot_gnuplot(rows, png, title, gnuplot)
            return "gnuplot"
        except (RuntimeError, OSError) as e:
            log(f"compare.py: warning: gnuplot failed, no plot written: {e}")
            return None
    log(f"compare.py: warning: neither matplotlib (for {sys.executable}) nor "
        "gnuplot is available; skipping the plot. Install python3-matplotlib "
        "and run with /usr/bin/python3, or install gnuplot.")
    return None


# ------------------------------------------------------------------- main ---

def main():
    ap = argparse.ArgumentParser(
        description="Compare procpool with a thread pool and Python's "
                    "multiprocessing.Pool on the same workloads.")
    ap.add_argument("--build-dir", required=True,
                    help="meson build directory (holds benchmarks/bm_pool etc.)")
    ap.add_argument("--quick", action="store_true",
                    help=f"short run for CI smoke tests "
                         f"(--benchmark_min_time={QUICK_MIN_TIME})")
    ap.add_argument("--out-dir", default=None,
                    help="where to write comparison.json / comparison.png "
                         "(default BUILD/benchmark-results)")
    ap.add_argument("--no-mpi", action="store_true",
                    help="skip procpool::mpi and mpi4py.futures (run_mpi)")
    args = ap.parse_args()

    bench_dir = os.path.join(args.build_dir, "benchmarks")
    out_dir = args.out_dir or os.path.join(args.build_dir, "benchmark-results")
    machine = machine_info()
    now = datetime.datetime.now().astimezone()
    date = now.strftime("%Y-%m-%d %H:%M %Z")

    bm_pool = os.path.join(bench_dir, "bm_pool")
    bm_data = os.path.join(bench_dir, "bm_data")
    binaries = [(bm_pool, "procpool (bm_pool)"),
                (os.path.join(bench_dir, "bm_thread_pool"),
                 "thread pool (bm_thread_pool)")]
    try:
        for path, what in binaries:  # fail fast, before any long run
            check_binary(path, what)
        pp, tp = (run_gbench(path, what, args.quick) for path, what in binaries)
        pp += run_kept_heap(bm_pool, args.quick)
        programs = {"bm_pool": pp, "bm_data": None}
        if os.path.isfile(bm_data):
            programs["bm_data"] = run_gbench(bm_data, "procpool data plane (bm_data)",
                                             args.quick)
        else:
            log("compare.py: no bm_data (include/procpool/shared_array.hpp not "
                "in this tree yet): its procpool figures are shown as '-'")
        py = run_python(args.quick)
        mpi = None if args.no_mpi else run_mpi(bench_dir, args.quick)
        if mpi:
            pp += mpi[0]
            py = dict(py, **mpi[1])

        rows, missing = [], []
        figs = [f for f in FIGURES if mpi or not f.get("mpi")]
        for fig in figs:
            row = {k: fig[k] for k in ("key", "title", "kind")}
            row["unit"] = UNITS[fig["kind"]]
            if "sweep_bytes" in fig:
                row["sweep_bytes"] = fig["sweep_bytes"]
            program = fig.get("program", "bm_pool")
            for side, entries in (("procpool", programs[program]), ("thread_pool", tp)):
                if entries is None:  # the program was not built
                    row[side] = None
                    row["not_measured"] = f"not measured ({program} not built)"
                    continue
                row[side], absent = gbench_figure(entries, fig, side)
                missing += [f"{side}: {name}" for name in absent]
            row["python"], absent = python_figure(py, fig)
            missing += [f"python: {key}" for key in absent]
            row["procpool_vs_python"] = ratio(fig["kind"], row["procpool"], row["python"])
            row["procpool_vs_thread_pool"] = ratio(fig["kind"], row["procpool"],
                                                   row["thread_pool"])
            rows.append(row)
        # Targets last: a target of="figure" reads another row's value.
        by_key = {r["key"]: r for r in rows}
        for fig, row in zip(figs, rows):
            row["targets"] = evaluate_targets(fig, row, by_key)
            row["refs"] = [dict(key=k, title=by_key[k]["title"], value=by_key[k]["procpool"])
                           for k in fig.get("refs", []) if k in by_key]
            for t in row["targets"]:
                if "not_measured" in row:
                    t["missing"] = row["not_measured"]
    except CompareError as e:
        log(f"compare.py: error: {e}")
        return 1

    print(f"Machine: {machine['cpu_model']}, {machine['cores']} cores "
          f"({machine['os']})")
    print(f"Date: {date}")
    print(f"Python: {py.get('python', '?')} "
          f"(multiprocessing start method: {py.get('start_method', '?')})")
    print(f"Workers: 2 processes / 2 threads each{'  [--quick run]' if args.quick else ''}")
    print()
    print(markdown_table(rows))
    print()
    print("Ratios: >1 means procpool is better "
          "(higher-is-better figures: procpool/other, lower-is-better: "
          "other/procpool).")
    targets = [t for r in rows for t in r["targets"]]
    print(f"Targets: {sum(1 for t in targets if t['met'])} met, "
          f"{sum(1 for t in targets if t['met'] is False)} NOT met, "
          f"{sum(1 for t in targets if t['met'] is None)} without a value "
          f"(of {len(targets)}).")

    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "comparison.json")
    with open(json_path, "w") as f:
        json.dump({
            "date": now.isoformat(timespec="seconds"),
            "machine": machine,
            "python": py.get("python"),
            "python_start_method": py.get("start_method"),
            "workers": 2,
            "quick": args.quick,
            "kept_heap_env": {"GLIBC_TUNABLES": KEPT_HEAP_TUNABLES},
            "echo_sweep": echo_sweep(rows),
            "figures": rows,
        }, f, indent=2)
        f.write("\n")
    print(f"\nWrote {json_path}")

    png_path = os.path.join(out_dir, "comparison.png")
    tool = plot([r for r, f in zip(rows, figs) if f.get("plot", True)],
                png_path, plot_title(machine, date))
    if tool:
        print(f"Wrote {png_path} ({tool})")
    sweep_path = os.path.join(out_dir, "echo_sizes.png")
    tool = plot_sweep(echo_sweep(rows), sweep_path,
                      "echo, one at a time: bytes/s vs payload size - "
                      f"{machine['cpu_model']}, {machine['cores']} cores - {date}")
    if tool:
        print(f"Wrote {sweep_path} ({tool})")

    if missing:
        log("compare.py: error: these benchmarks were not found in the output "
            "(table shows '-'): " + ", ".join(missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
