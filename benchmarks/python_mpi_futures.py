#!/usr/bin/env python3
"""mpi4py.futures on the same workloads as bm_mpi (procpool::mpi).

Standard library and mpi4py only (Debian: python3-mpi4py). Run it under MPI,
rank 0 the client and the other ranks the workers, as bm_mpi is run:

    mpirun -n 3 /usr/bin/python3 -m mpi4py.futures benchmarks/python_mpi_futures.py [--quick]

Prints one JSON object on stdout:

    {"submit_noop_tasks_per_s": float, "roundtrip_us": float,
     "mpi4py": "3.1.4", "python": "3.11.2 ...", "workers": 2}

Workloads (2 worker ranks):
  * submit no-op throughput: executor.submit(noop, i) 10000 times, then
    .result() all of them; repeated, reported as tasks/s (the median batch).
  * round trip latency: executor.submit(noop, i).result() one at a time;
    reported as microseconds per round trip.
"""

import argparse
import json
import statistics
import sys
import time

from mpi4py import MPI
import mpi4py
from mpi4py.futures import MPIPoolExecutor

BATCH = 10000
MIN_REPETITIONS = 3


def noop(x):
    """The task: takes an int, returns it (module level, so workers find it)."""
    return x


def measure_throughput(executor, min_time, min_reps):
    rates = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        futures = [executor.submit(noop, i) for i in range(BATCH)]
        for f in futures:
            f.result()
        t1 = time.perf_counter()
        rates.append(BATCH / (t1 - t0))
        if len(rates) >= min_reps and t1 - start >= min_time:
            return statistics.median(rates)


def measure_roundtrip(executor, min_time):
    n = 0
    t0 = time.perf_counter()
    while True:
        for _ in range(100):
            executor.submit(noop, n).result()
            n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="0.3 s per measurement")
    ap.add_argument("--min-time", type=float, default=None,
                    help="seconds per measurement (default 1.0, 0.3 with --quick)")
    args = ap.parse_args()
    min_time = args.min_time if args.min_time is not None else (0.3 if args.quick else 1.0)

    workers = MPI.COMM_WORLD.Get_size() - 1
    if workers < 1:
        sys.exit("python_mpi_futures.py: start it as "
                 "mpirun -n 3 python3 -m mpi4py.futures python_mpi_futures.py")
    with MPIPoolExecutor() as executor:
        # Warm-up: every worker connected and busy once.
        for f in [executor.submit(noop, i) for i in range(1000)]:
            f.result()
        throughput = measure_throughput(executor, min_time, 1 if args.quick else MIN_REPETITIONS)
        roundtrip = measure_roundtrip(executor, min_time)

    json.dump({
        "submit_noop_tasks_per_s": throughput,
        "roundtrip_us": roundtrip,
        "mpi4py": mpi4py.__version__,
        "python": sys.version.replace("\n", " "),
        "workers": workers,
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
