#!/usr/bin/env python3
"""Python multiprocessing.Pool on the same workloads as bm_pool / bm_thread_pool.

Standard library only. Prints one JSON object on stdout:

    {"apply_async_noop_tasks_per_s": float, "batch_1000_tasks_per_s": float,
     ... "batch_1000000_tasks_per_s": float, "roundtrip_us": float,
     "map_items_per_s": float, "echo_bytes_per_s": float,
     "echo_1024_bytes_per_s": float, ... "echo_268435456_bytes_per_s": float,
     "cpu_bound_serial_s": float, "cpu_bound_pool_s": float, "start_stop_us": float,
     "idle_cpu_percent": float, "pss_kib_per_worker": float,
     "python": "3.11.7 ...", "start_method": "fork", "workers": 2}

benchmarks/compare.py runs this with its own interpreter and reads the
figures; the last three keys are informational.

Workloads (2 worker processes, the platform's default start method - fork on
Linux up to Python 3.13):
  * apply_async no-op throughput: submit 10000 apply_async(noop, (i,)), then
    .get() all of them; repeated, reported as tasks/s.
  * throughput at scale: N apply_async(noop, (i,)) submitted, then .get()
    all, for N in BATCH_SIZES (1,000 .. 1,000,000; up to 100,000 with
    --quick); tasks/s over whole batches (batch_<N>_tasks_per_s). 10,000,000
    would take about ten minutes here and is not run: compare.py sets the
    1,000,000 figure beside procpool's 10,000,000 one and says so.
  * round trip latency: apply_async(noop, (i,)).get() one at a time; reported
    as microseconds per round trip.
  * map: pool.map(noop, range(1_000_000)) with Pool.map's automatic chunksize
    (about four chunks per worker); items/s.
  * echo: apply_async(echo, (payload,)).get() one at a time, for bytes
    payloads of 1 KiB, 64 KiB, 1 MiB, 16 MiB and 256 MiB (ECHO_SIZES, as
    bm_pool's BM_PoolEcho); bytes/s counting the payload once per round trip,
    as bm_pool does. echo_bytes_per_s is the 16 MiB one.
  * CPU-bound: 16 cpu_task() calls serially, then as 16 apply_async on the
    pool, collected; seconds each. Fewer steps than the C++ task (pure Python
    is ~100x slower); only the speed-up, serial / pool, is compared.
  * start/stop: Pool(2), apply(noop, (1,)), close(), join(); microseconds.
  * idle: a Pool(2) that has run a task sits 5 s (1 s with --quick); CPU of
    this process and its descendants in % of one core.
  * memory: PSS (/proc/<pid>/smaps_rollup) per worker of that pool after
    20000 no-ops (10000 with --quick); KiB.

Usage: python_pool.py [--quick] [--min-time SECONDS]
"""

import argparse
import ctypes
import json
import multiprocessing
import os
import statistics
import sys
import time

WORKERS = 2
BATCH = 10000
MIN_REPETITIONS = 3        # throughput batches per run (1 with --quick)
BATCH_SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_BATCH_SIZES = BATCH_SIZES[:3]
MAP_ITEMS = 1_000_000
ECHO_BYTES = 16 << 20      # the size with the targets
ECHO_SIZES = (1 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20)
CPU_TASKS = 16             # as bench_support.hpp's cpu_tasks
CPU_TASK_STEPS = 100_000   # about 15 ms in CPython (the C++ task: 10M steps)
MASK64 = (1 << 64) - 1

_libc = ctypes.CDLL(None, use_errno=True)


def noop(x):
    """The task: takes an int, returns it (must be module level to pickle)."""
    return x


def echo(b):
    return b


def cpu_task(seed):
    """bench_support.hpp's cpu_task: xorshift64 steps from seed | 1."""
    x = seed | 1
    for _ in range(CPU_TASK_STEPS):
        x ^= (x << 13) & MASK64
        x ^= x >> 7
        x ^= (x << 17) & MASK64
    return x


# ------------------------------------------------ /proc, as bench_support.hpp

def descendants(root):
    """Pids of every live descendant of `root`, from one scan of /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 1:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    return sorted(found)


def cpu_seconds(pid):
    """CPU seconds of process `pid` (all its threads): the kernel's
    per-process CPU clock, via libc's clock_getcpuclockid as in C++."""
    clock = ctypes.c_int()  # clockid_t
    if _libc.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
        raise OSError(f"clock_getcpuclockid({pid}) failed")
    return time.clock_gettime(clock.value)


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return float(line.split()[1])
    raise OSError(f"/proc/{pid}/smaps_rollup has no Pss line")


def timed_loop(body, min_time):
    """Mean seconds per body() over at least min_time seconds (and at least
    one call): the statistic Google Benchmark reports as real_time."""
    n = 0
    t0 = time.perf_counter()
    while True:
        body()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n


def measure_throughput(pool, min_time, min_reps=MIN_REPETITIONS):
    """Tasks/s for batches of BATCH apply_async no-ops.

    Runs whole batches until at least `min_time` seconds have elapsed and at
    least `min_reps` batches were done, and reports the MEDIAN of the
    per-batch rates: robust against a stray slow batch (scheduler hiccup,
    GC pass) without rewarding a lucky one the way "best of" would.
    """
    rates = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        results = [pool.apply_async(noop, (i,)) for i in range(BATCH)]
        for r in results:
            r.get()
        t1 = time.perf_counter()
        rates.append(BATCH / (t1 - t0))
        if len(rates) >= min_reps and t1 - start >= min_time:
            return statistics.median(rates)


def measure_batch(pool, min_time, n):
    """Tasks/s for batches of n apply_async no-ops submitted at once, then
    collected: whole batches until min_time has elapsed (at least one), total
    tasks over total time, as Google Benchmark's items_per_second."""
    tasks = 0
    start = time.perf_counter()
    while True:
        results = [pool.apply_async(noop, (i,)) for i in range(n)]
        for r in results:
            r.get()
        tasks += n
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return tasks / elapsed


def measure_roundtrip(pool, min_time):
    """Mean microseconds per apply_async(noop, (i,)).get(), one at a time.

    Loops for at least `min_time` seconds and divides the elapsed wall time
    by the number of round trips - the same statistic Google Benchmark
    reports as real_time per iteration.
    """
    n = 0
    t0 = time.perf_counter()
    while True:
        for _ in range(100):  # check the clock every 100 round trips
            pool.apply_async(noop, (n,)).get()
            n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n * 1e6


def measure_map(pool, min_time):
    """Items/s for pool.map(noop, range(MAP_ITEMS)), automatic chunksize."""
    items = range(MAP_ITEMS)

    def body():
        out = pool.map(noop, items)
        if len(out) != MAP_ITEMS or out[-1] != MAP_ITEMS - 1:
            raise RuntimeError("map returned the wrong results")
    return MAP_ITEMS / timed_loop(body, min_time)


def measure_echo(pool, min_time, size):
    """Bytes/s for apply_async(echo, (size bytes,)).get(), the payload counted once."""
    payload = bytes(range(256)) * (size // 256)

    def body():
        back = pool.apply_async(echo, (payload,)).get()
        if len(back) != size or back[size // 2] != payload[size // 2]:
            raise RuntimeError("echo returned different bytes")
    return size / timed_loop(body, min_time)


def measure_cpu_bound(pool, min_time):
    """(serial seconds, pool seconds) for CPU_TASKS cpu_task() calls."""
    def serial():
        sum(cpu_task(i) for i in range(CPU_TASKS))

    def parallel():
        results = [pool.apply_async(cpu_task, (i,)) for i in range(CPU_TASKS)]
        sum(r.get() for r in results)
    return timed_loop(serial, min_time), timed_loop(parallel, min_time)


def measure_start_stop(min_time):
    """Microseconds for Pool(2), apply(noop), close(), join()."""
    def body():
        pool = multiprocessing.Pool(WORKERS)
        pool.apply(noop, (1,))
        pool.close()
        pool.join()
    return timed_loop(body, min_time) * 1e6


def measure_idle_and_memory(idle_s, noops):
    """(idle CPU % of one core, PSS KiB per worker) of one fresh Pool(2):
    idle first, then PSS after `noops` no-op tasks."""
    pool = multiprocessing.Pool(WORKERS)
    try:
        pool.apply(noop, (0,))
        children = descendants(os.getpid())  # scanned before the clocks start

        def cpu():
            return time.process_time() + sum(cpu_seconds(p) for p in children)
        cpu0, t0 = cpu(), time.perf_counter()
        time.sleep(idle_s)
        cpu1, t1 = cpu(), time.perf_counter()
        if descendants(os.getpid()) != children:
            raise RuntimeError("a pool process started or ended while idle")
        idle_percent = 100 * (cpu1 - cpu0) / (t1 - t0)

        for _ in range(noops // BATCH):
            for r in [pool.apply_async(noop, (i,)) for i in range(BATCH)]:
                r.get()
        workers = [p.pid for p in pool._pool]  # no public accessor for the pids
        pss = statistics.fmean(pss_kib(pid) for pid in workers)
        pool.close()
        pool.join()
        return idle_percent, pss
    finally:
        pool.terminate()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="short run for CI smoke tests (0.3 s per measurement)")
    ap.add_argument("--min-time", type=float, default=None,
                    help="seconds per measurement (default 1.0, 0.3 with --quick)")
    args = ap.parse_args()
    min_time = args.min_time if args.min_time is not None else (0.3 if args.quick else 1.0)

    with multiprocessing.Pool(WORKERS) as pool:
        # Warm-up: make sure the workers are up and the pipes/threads are hot.
        for r in [pool.apply_async(noop, (i,)) for i in range(1000)]:
            r.get()
        for i in range(200):
            pool.apply_async(noop, (i,)).get()

        throughput = measure_throughput(pool, min_time,
                                        1 if args.quick else MIN_REPETITIONS)
        roundtrip = measure_roundtrip(pool, min_time)
        map_rate = measure_map(pool, min_time)
        echo_rates = {size: measure_echo(pool, min_time, size) for size in ECHO_SIZES}
        cpu_serial, cpu_pool = measure_cpu_bound(pool, min_time)

    # Each of these owns its pool, with no other pool (or its threads) alive.
    start_stop = measure_start_stop(min_time)
    idle_percent, pss = measure_idle_and_memory(1.0 if args.quick else 5.0,
                                                10000 if args.quick else 20000)
    # Last: a batch of 1,000,000 leaves this process's heap large, and every
    # pool built after it forks from that (slower start/stop).
    with multiprocessing.Pool(WORKERS) as pool:
        batches = {n: measure_batch(pool, min_time, n)
                   for n in (QUICK_BATCH_SIZES if args.quick else BATCH_SIZES)}

    json.dump({
        "apply_async_noop_tasks_per_s": throughput,
        **{f"batch_{n}_tasks_per_s": rate for n, rate in batches.items()},
        "roundtrip_us": roundtrip,
        "map_items_per_s": map_rate,
        "echo_bytes_per_s": echo_rates[ECHO_BYTES],
        **{f"echo_{size}_bytes_per_s": rate for size, rate in echo_rates.items()},
        "cpu_bound_serial_s": cpu_serial,
        "cpu_bound_pool_s": cpu_pool,
        "start_stop_us": start_stop,
        "idle_cpu_percent": idle_percent,
        "pss_kib_per_worker": pss,
        "python": sys.version.replace("\n", " "),
        "start_method": multiprocessing.get_start_method(),
        "workers": WORKERS,
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
