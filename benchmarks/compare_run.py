"""compare.py's runs: the Google Benchmark programs, Python and MPI sides, and reading their JSON."""

import json
import os
import shutil
import statistics
import subprocess
import sys

from compare_figures import (BUSY_LOOPS, KEPT_HEAP, KEPT_HEAP_FILTER, KEPT_HEAP_TUNABLES, KINDS,
                             LOADED, LOADED_FILTER, CompareError, log, speedup)


HERE = os.path.dirname(os.path.abspath(__file__))

TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
QUICK_MIN_TIME = "0.2"  # Google Benchmark 1.7.1: plain seconds
# What --quick leaves out of the main programs: the batches of 1M and 10M
# tasks (compare_figures' quick=False rows); a negative filter.
QUICK_FILTER = "-Batch/(1000000|10000000)/"



# ---------------------------------------------------------------- running ---

def run(cmd, what, env=None, timeout=None):
    """Run cmd (with `env` added to the environment), return its stdout;
    raise CompareError on any failure, or when it runs past `timeout` s."""
    log(f"compare.py: running {what}: {' '.join(cmd)}")
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, **env} if env else None,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise CompareError(f"{what} ran past its {timeout} s: {' '.join(cmd)}") from e
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
    if quick and bench_filter is None:
        bench_filter = QUICK_FILTER
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


def busy_loops(n):
    """Start n processes that keep a core busy (`while True: pass`); the
    caller stops them with stop_busy_loops, in a finally."""
    log(f"compare.py: starting {n} busy loops beside the MPI ranks")
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
    except OSError as e:
        stop_busy_loops(procs)
        raise CompareError(f"cannot start a busy loop: {e}") from e
    return procs


def stop_busy_loops(procs):
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def run_mpi_pair(launch, bm_mpi, quick, prefix, bench_filter=None, env=None, timeout=None):
    """One bm_mpi run and one mpi4py.futures run; bm_mpi's entries and
    mpi4py's keys get `prefix` (e.g. "loaded:" / "mpi4py_loaded_"). `env`
    replaces MPI_ENV (compare_cluster.py: the cluster's subnet, not lo);
    `timeout` bounds each run (seconds)."""
    env = env or MPI_ENV
    cmd = launch + [bm_mpi, "--benchmark_format=json"]
    if bench_filter:
        cmd.append(f"--benchmark_filter={bench_filter}")
    if quick:
        cmd.append(f"--benchmark_min_time={QUICK_MIN_TIME}")
    what = "procpool::mpi (bm_mpi)" + (f", {prefix.rstrip(':')}" if prefix else "")
    entries = json.loads(run(cmd, what, env=env, timeout=timeout)).get("benchmarks", [])
    for e in entries:
        for field in ("name", "run_name"):
            if prefix and field in e:
                e[field] = f"{prefix}{e[field]}"
    # mpi4py lives in Debian's python3-mpi4py, for /usr/bin/python3.
    python = sys.executable
    if subprocess.run([python, "-c", "import mpi4py"], capture_output=True).returncode != 0:
        python = "/usr/bin/python3"
    cmd = launch + [python, "-m", "mpi4py.futures", os.path.join(HERE, "python_mpi_futures.py")]
    out = run(cmd + (["--quick"] if quick else []), "mpi4py.futures" + (f", {prefix.rstrip(':')}" if prefix else ""),
              env=env, timeout=timeout)
    futures = json.loads(out.strip().splitlines()[-1])
    key_prefix = "mpi4py_" + (prefix.rstrip(":") + "_" if prefix else "")
    return entries, {f"{key_prefix}{k}": v for k, v in futures.items()}


def run_mpi(bench_dir, quick):
    """bm_mpi and python_mpi_futures.py, each under mpirun -n 3; then both
    again (throughput and round trip) while BUSY_LOOPS busy loops share the
    cores, their entries renamed "loaded:<name>" and keys "mpi4py_loaded_<key>".

    Returns (Google Benchmark entries, {"mpi4py_<key>": value}), or None when
    bm_mpi was not built or mpirun is missing.
    """
    bm_mpi = os.path.join(bench_dir, "bm_mpi")
    mpirun = shutil.which("mpirun")
    if not os.path.isfile(bm_mpi) or mpirun is None:
        log("compare.py: no bm_mpi or no mpirun (MPI not found at configure time): skipping the MPI rows")
        return None
    launch = [mpirun, "-n", "3", "--oversubscribe"]
    entries, futures = run_mpi_pair(launch, bm_mpi, quick, "")
    loops = busy_loops(BUSY_LOOPS)
    try:
        loaded = run_mpi_pair(launch, bm_mpi, quick, f"{LOADED}:", LOADED_FILTER)
    finally:
        stop_busy_loops(loops)
    return entries + loaded[0], dict(futures, **loaded[1])


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
