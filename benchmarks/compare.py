#!/usr/bin/env python3
"""Run procpool, a classic thread pool and Python's multiprocessing.Pool on the
same workloads and print them side by side.

Usage:
    benchmarks/compare.py --build-dir BUILD [--quick] [--out-dir DIR]

Runs, one after the other (never concurrently, so they do not compete for
cores):
  * BUILD/benchmarks/bm_pool         procpool           (Google Benchmark)
  * BUILD/benchmarks/bm_thread_pool  classic thread pool (Google Benchmark)
  * benchmarks/python_pool.py        multiprocessing.Pool, run with the
                                     interpreter running this script
then prints a markdown table, and writes DIR/comparison.json and
DIR/comparison.png (DIR defaults to BUILD/benchmark-results).

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

# One row per figure. kind is 'throughput' (higher is better; Google Benchmark
# value = the items_per_second counter) or 'latency' (lower is better; value =
# real_time per iteration converted to microseconds). procpool / thread_pool
# name Google Benchmark benchmarks (a full name such as
# "BM_PoolRoundTrip/real_time" or just the family "BM_PoolRoundTrip"); python
# names a key of python_pool.py's JSON output. Use None for a side that has no
# equivalent: it is shown as "-" and its ratio is left out.
FIGURES = [
    dict(key="apply_async_noop", title="apply_async no-op throughput",
         kind="throughput",
         procpool="BM_PoolApplyAsyncNoop",
         thread_pool="BM_ThreadPoolApplyAsyncNoop",
         python="apply_async_noop_tasks_per_s"),
    dict(key="roundtrip", title="round trip latency",
         kind="latency",
         procpool="BM_PoolRoundTrip",
         thread_pool="BM_ThreadPoolRoundTrip",
         python="roundtrip_us"),
    # Python's Pool never recovers from a killed worker; a thread pool has none to kill.
    dict(key="respawn", title="respawn after SIGKILL, to the next result",
         kind="latency",
         procpool="BM_PoolRespawn",
         thread_pool=None,
         python=None),
]

SIDES = [  # (key in FIGURES / results, column label)
    ("procpool", "procpool"),
    ("thread_pool", "thread pool"),
    ("python", "Python Pool"),
]

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"]  # per side
UNITS = {"throughput": "tasks/s", "latency": "us"}
TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
QUICK_MIN_TIME = "0.2"  # Google Benchmark 1.7.1: plain seconds


class CompareError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- running ---

def run(cmd, what):
    """Run cmd, return its stdout; raise CompareError on any failure."""
    log(f"compare.py: running {what}: {' '.join(cmd)}")
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
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


def run_gbench(path, what, quick):
    """Run a Google Benchmark binary, return its list of result entries."""
    check_binary(path, what)
    cmd = [path, "--benchmark_format=json"]
    if quick:
        cmd.append(f"--benchmark_min_time={QUICK_MIN_TIME}")
    out = run(cmd, what)
    try:
        doc = json.loads(out)
    except json.JSONDecodeError as e:
        raise CompareError(f"{what} did not print valid JSON: {e}") from e
    return doc.get("benchmarks", [])


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


# ---------------------------------------------------------------- parsing ---

def gbench_value(entries, name, kind):
    """The figure's value for benchmark `name` from Google Benchmark entries.

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

    values = []
    for e in runs:
        if kind == "throughput":
            if "items_per_second" not in e:
                raise CompareError(f"benchmark {name} has no items_per_second "
                                   "counter (call state.SetItemsProcessed)")
            values.append(float(e["items_per_second"]))
        else:
            unit = e.get("time_unit", "ns")
            if unit not in TO_US:
                raise CompareError(f"benchmark {name}: unknown time_unit {unit!r}")
            values.append(float(e["real_time"]) * TO_US[unit])
    return statistics.median(values) if values else None


def ratio(kind, pp, other):
    """>1 means procpool is better."""
    if pp is None or other is None or pp <= 0 or other <= 0:
        return None
    return pp / other if kind == "throughput" else other / pp


# ------------------------------------------------------------- formatting ---

def fmt_value(kind, v):
    if v is None:
        return "-"
    if kind == "throughput":
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if v >= div:
                return f"{v / div:.3g}{suffix} tasks/s"
        return f"{v:.3g} tasks/s"
    if v >= 1e4:
        return f"{v / 1e3:.3g} ms"
    return f"{v:.3g} us"


def fmt_ratio(r):
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 1:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


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
              "procpool vs Python", "procpool vs thread pool"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r in rows:
        better = "higher is better" if r["kind"] == "throughput" else "lower is better"
        cells = [f"{r['title']} ({better})"]
        cells += [fmt_value(r["kind"], r[side]) for side, _ in SIDES]
        cells += [fmt_ratio(r["procpool_vs_python"]),
                  fmt_ratio(r["procpool_vs_thread_pool"])]
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
        heights = [v if v else float("nan") for v in vals]
        bars = ax.bar(xs, heights, color=COLORS[:len(labels)])
        ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels)
        better = "higher" if r["kind"] == "throughput" else "lower"
        ax.set_title(f"{r['title']}\n({UNITS[r['kind']]}, {better} is better)",
                     fontsize=10)
        ax.set_ylabel(UNITS[r["kind"]])
        ax.grid(axis="y", which="major", alpha=0.3)
        for b, v in zip(bars, vals):
            if v:
                ax.annotate(fmt_value(r["kind"], v), (b.get_x() + b.get_width() / 2, v),
                            ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        present = [v for v in vals if v]
        if present:  # headroom for the labels on the log axis
            ax.set_ylim(min(present) / 3, max(present) * 4)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
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
            "set logscale y",
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
                    f.write(f"{j} {q(label)} {v if v else 'NaN'} "
                            f"{q(fmt_value(r['kind'], v))} "
                            f"{int(COLORS[j % len(COLORS)][1:], 16)}\n")
            present = [r[side] for side, _ in SIDES if r[side]]
            yrange = (f"set yrange [{min(present) / 3}:{max(present) * 4}]"
                      if present else "set autoscale y")
            better = "higher" if r["kind"] == "throughput" else "lower"
            script += [
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
    args = ap.parse_args()

    bench_dir = os.path.join(args.build_dir, "benchmarks")
    out_dir = args.out_dir or os.path.join(args.build_dir, "benchmark-results")
    machine = machine_info()
    now = datetime.datetime.now().astimezone()
    date = now.strftime("%Y-%m-%d %H:%M %Z")

    binaries = [(os.path.join(bench_dir, "bm_pool"), "procpool (bm_pool)"),
                (os.path.join(bench_dir, "bm_thread_pool"),
                 "thread pool (bm_thread_pool)")]
    try:
        for path, what in binaries:  # fail fast, before any long run
            check_binary(path, what)
        pp, tp = (run_gbench(path, what, args.quick) for path, what in binaries)
        py = run_python(args.quick)

        rows, missing = [], []
        for fig in FIGURES:
            row = {k: fig[k] for k in ("key", "title", "kind")}
            row["unit"] = UNITS[fig["kind"]]
            for side, entries in (("procpool", pp), ("thread_pool", tp)):
                name = fig.get(side)
                row[side] = gbench_value(entries, name, fig["kind"]) if name else None
                if name and row[side] is None:
                    missing.append(f"{side}: {name}")
            pykey = fig.get("python")
            row["python"] = float(py[pykey]) if pykey and pykey in py else None
            if pykey and row["python"] is None:
                missing.append(f"python: {pykey}")
            row["procpool_vs_python"] = ratio(fig["kind"], row["procpool"], row["python"])
            row["procpool_vs_thread_pool"] = ratio(fig["kind"], row["procpool"],
                                                   row["thread_pool"])
            rows.append(row)
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
          "(throughput: procpool/other, latency: other/procpool).")

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
            "figures": rows,
        }, f, indent=2)
        f.write("\n")
    print(f"\nWrote {json_path}")

    png_path = os.path.join(out_dir, "comparison.png")
    tool = plot(rows, png_path, plot_title(machine, date))
    if tool:
        print(f"Wrote {png_path} ({tool})")

    if missing:
        log("compare.py: error: these benchmarks were not found in the output "
            "(table shows '-'): " + ", ".join(missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
