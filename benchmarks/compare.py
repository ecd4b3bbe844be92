#!/usr/bin/env python3
"""Run procpool, a classic thread pool and Python's multiprocessing.Pool on the
same workloads and print them side by side.

Usage:
    benchmarks/compare.py --build-dir BUILD [--quick] [--out-dir DIR]

Runs, one after the other (never concurrently, so they do not compete for
cores, but for the MPI runs under load, on purpose):
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
                                     beside mpi4py.futures (run_mpi); then
                                     both again (throughput, round trip) while
                                     two busy loops that compare.py starts
                                     and stops share the cores
  * compare_cluster.py's run_cluster, unless --no-cluster (or --no-mpi):
                                     bm_mpi's throughput and round trip and
                                     mpi4py.futures across 3 simulated hosts
                                     over TCP (scripts/cluster.sh; needs
                                     root), and the time from a node's loss
                                     to failed tasks (node_loss); its rows
                                     are left out, with the reason, where
                                     the cluster cannot be made
then prints a markdown table (with each figure's targets, met or not), and
writes DIR/comparison.json, DIR/comparison.png, DIR/echo_sizes.png (the
echo's bytes/s against payload size, 1 KiB to 256 MiB, log-log) and
DIR/batch_sizes.png (no-op tasks/s against the number submitted at once,
1,000 to 10,000,000, log-log); DIR defaults to BUILD/benchmark-results.

--quick passes --benchmark_min_time=0.2 and sets PROCPOOL_BENCH_QUICK=1 for
the Google Benchmark programs (the idle and memory figures then run a
shorter fixed amount of work; batches of 1M and 10M tasks are left out), and
--quick to python_pool.py.

The PNG is drawn with matplotlib if this interpreter has it, else with gnuplot
if it is on PATH, else skipped with a warning (e.g. run the script as
`/usr/bin/python3 benchmarks/compare.py ...` on Debian with
python3-matplotlib installed).

To add a figure, add one row to FIGURES in compare_figures.py.
"""

import argparse
import datetime
import json
import os
import platform
import sys

from compare_figures import (FIGURES, KEPT_HEAP_TUNABLES, SWEEPS, UNITS, CompareError,
                             evaluate_targets, log, ratio)
from compare_plot import plot, plot_sweep, plot_title, sweep_points
from compare_cluster import run_cluster
from compare_run import (QUICK_MIN_TIME, check_binary, gbench_figure, python_figure,
                         run_gbench, run_kept_heap, run_mpi, run_python)
from compare_table import markdown_table


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
                    help="skip procpool::mpi and mpi4py.futures (run_mpi), and the cluster")
    ap.add_argument("--no-cluster", action="store_true",
                    help="skip the simulated 3-host cluster (compare_cluster.py)")
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
        cluster = None if not mpi or args.no_cluster else run_cluster(bench_dir, args.quick)
        if cluster:
            pp += cluster["entries"]
            py = dict(py, **cluster["futures"])

        rows, missing = [], []
        figs = [f for f in FIGURES
                if (mpi or not f.get("mpi")) and (cluster or not f.get("cluster"))]
        for fig in figs:
            row = {k: fig[k] for k in ("key", "title", "kind")}
            row["unit"] = UNITS[fig["kind"]]
            if "sweep" in fig:
                row["sweep"] = list(fig["sweep"])
            skipped = ("not measured (--quick)" if args.quick and not fig.get("quick", True)
                       else (cluster or {}).get("not_measured", {}).get(fig["key"]))
            if skipped:
                for side in ("procpool", "thread_pool", "python"):
                    row[side] = None
                row["not_measured"] = skipped
                row["procpool_vs_python"] = row["procpool_vs_thread_pool"] = None
                rows.append(row)
                continue
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
    if cluster:
        info = cluster["info"]
        print(f"Cluster rows: {info['simulation']}. Load (uptime) {info['load_before']} before, "
              f"{info['load_after']} after.")

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
            **{f"{name}_sweep": sweep_points(rows, name) for name in SWEEPS},
            "cluster": cluster["info"] if cluster else None,
            "figures": rows,
        }, f, indent=2)
        f.write("\n")
    print(f"\nWrote {json_path}")

    png_path = os.path.join(out_dir, "comparison.png")
    tool = plot([r for r, f in zip(rows, figs) if f.get("plot", True)],
                png_path, plot_title(machine, date))
    if tool:
        print(f"Wrote {png_path} ({tool})")
    for name, sweep in SWEEPS.items():
        sweep_path = os.path.join(out_dir, sweep["png"])
        tool = plot_sweep(sweep_points(rows, name), sweep_path, sweep,
                          f"{sweep['title']} - {machine['cpu_model']}, "
                          f"{machine['cores']} cores - {date}")
        if tool:
            print(f"Wrote {sweep_path} ({tool})")

    if missing:
        log("compare.py: error: these benchmarks were not found in the output "
            "(table shows '-'): " + ", ".join(missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
