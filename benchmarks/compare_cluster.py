#!/usr/bin/env python3
"""compare.py's companion: procpool::mpi across 3 simulated hosts over TCP.

Usage (on its own; compare.py calls run_cluster() unless --no-cluster):
    benchmarks/compare_cluster.py --build-dir BUILD [--quick] [--json FILE]

Brings up a 3-node simulated cluster with scripts/cluster.sh (one network
and UTS namespace per node, veth pairs to a bridge; root and iproute2), and
always tears it down, then, with one rank per node (rank 0 on node1):
  * BUILD/benchmarks/bm_mpi, only BM_MpiApplyAsyncNoop and BM_MpiRoundTrip,
    and python_mpi_futures.py (mpi4py.futures), the same two figures;
  * BUILD/benchmarks/node_loss under mpirun --enable-recovery, twice: every
    process of node3 killed (cluster.sh kill node3), then node3's link taken
    down (cluster.sh link node3 down); each time the time from the loss (the
    moment the cluster.sh command returned) to rank 0 failing the first task
    of node3's rank with WorkerLost, both read from CLOCK_REALTIME.
On its own it also runs the same two figures on this host (mpirun -n 3) for
reference, and prints a table; compare.py has those in its MPI rows.

The simulation has separate network stacks and hostnames, TCP only, and
real process and link loss; it models no latency, bandwidth limit, clock
skew, separate filesystem or kernel: its figures are a lower bound of the
overhead on a real network.

Where the cluster cannot be made (not root, no iproute2, no network
namespaces, no cluster.sh) it says why and gives no figures.
"""

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from compare_figures import LOADED_FILTER, CompareError, log
from compare_run import MPI_ENV, run_mpi_pair

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER_SH = os.path.join(os.path.dirname(HERE), "scripts", "cluster.sh")
RSH_AGENT = os.path.join(os.path.dirname(HERE), "scripts", "cluster_rsh.sh")

CLUSTER = "cluster"  # bm_mpi's entries become "cluster:<name>", mpi4py's keys "mpi4py_cluster_<key>"
NODES = ["node1", "node2", "node3"]
LOST_NODE = "node3"
SUBNET = "10.250.0.0/24"  # scripts/cluster.sh's: exists only among the nodes
# The cluster's name prefix (cluster.sh's PROCPOOL_CLUSTER): its own, so a test
# suite's cluster (default "ppc") may be up at the same time and is never touched.
PREFIX = os.environ.get("PROCPOOL_BENCH_CLUSTER", "ppbench")
LOSS_TIMEOUT_S = 15  # node_loss gives up ("not detected within ...") after this
RUN_TIMEOUT_S = 120  # each of bm_mpi's and mpi4py's runs on the cluster
LOSSES = [  # (figure key, how, what)
    ("cluster_node_killed", "kill", f"every process of {LOST_NODE} killed"),
    ("cluster_link_down", "link", f"{LOST_NODE}'s link down"),
]
SIMULATION = ("3 simulated hosts (network, UTS, pid and mount namespaces on one machine; TCP over veths and a bridge): "
              "no real latency, bandwidth limit, clock skew, separate filesystem or kernel; "
              "the figures are a lower bound of the overhead on a real network")


class ClusterUnavailable(Exception):
    pass


unavailable = None  # why run_cluster() last gave no figures


def load():
    """The load averages now, as `uptime` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def unavailable_reason(bench_dir):
    """Why the cluster runs cannot happen here, or None."""
    if os.geteuid() != 0:
        return "not root: network and UTS namespaces need root"
    if not os.path.isfile(CLUSTER_SH):
        return f"no {CLUSTER_SH} in this tree"
    if shutil.which("ip") is None:
        return "no `ip` (iproute2): apt-get install -y iproute2"
    if shutil.which("mpirun") is None or not os.path.isfile(os.path.join(bench_dir, "bm_mpi")):
        return "no bm_mpi or no mpirun (MPI not found at configure time)"
    return None


class SimulatedCluster:
    """scripts/cluster.sh up on entry, down on exit (always, even after an error)."""

    def __init__(self, nodes):
        self.nodes = nodes

    def sh(self, *args, timeout=60, check=True):
        cmd = [CLUSTER_SH, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PROCPOOL_CLUSTER": PREFIX})
        if check and proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
            raise CompareError(f"{' '.join(cmd)} failed with exit status {proc.returncode}:\n{tail}")
        return proc

    def __enter__(self):
        log(f"compare_cluster.py: PROCPOOL_CLUSTER={PREFIX} {CLUSTER_SH} up {len(self.nodes)}")
        try:
            proc = self.sh("up", str(len(self.nodes)), check=False)
        except subprocess.TimeoutExpired:
            proc = None
        if proc is None or proc.returncode != 0:
            self.down()
            why = "timed out" if proc is None else (proc.stderr.strip().splitlines() or ["?"])[-1]
            # 77: namespaces cannot be made here (cluster.sh says why).
            raise ClusterUnavailable(why if proc is not None and proc.returncode == 77
                                     else f"cluster.sh up failed: {why}")
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    def down(self):
        log(f"compare_cluster.py: {CLUSTER_SH} down")
        try:
            proc = self.sh("down", check=False)
            if proc.returncode != 0:
                log(f"compare_cluster.py: warning: cluster.sh down: exit {proc.returncode}: {proc.stderr.strip()}")
        except subprocess.TimeoutExpired:
            log("compare_cluster.py: warning: cluster.sh down timed out")

    def pids(self, node):
        # The exit status is not looked at: cluster.sh pids (at h1's 0451d87)
        # exited 1 here even when it listed processes (find could not read /proc/1/ns).
        return [int(p) for p in self.sh("pids", node, check=False).stdout.split()]

    def kill(self, node):
        """Every process of `node` SIGKILLed, as one instant as this process
        can make it; returns (CLOCK_REALTIME ns when the kills were sent, how
        many, ns the kills took to send). Then makes sure, for up to 5 s,
        that none is left (cluster.sh kill, whose exit status is not looked
        at either: it exited 1 here when no process was left to kill)."""
        pids = self.pids(node)
        first = time.time_ns()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sent = time.time_ns()
        deadline = time.monotonic() + 5
        while True:
            self.sh("kill", node, check=False)
            left = self.pids(node)
            if not left or time.monotonic() > deadline:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        if left:
            log(f"compare_cluster.py: warning: {node} still has processes {left} after 5 s")
        return sent, len(pids), sent - first

    def launch(self, extra=()):
        """mpirun inside node1 with one rank on each node, over TCP on the cluster's subnet only."""
        hosts = ",".join(f"{n}:1" for n in self.nodes)
        return [CLUSTER_SH, "exec", self.nodes[0], "mpirun", "--host", hosts,
                "--mca", "plm_rsh_agent", RSH_AGENT, "--mca", "btl", "tcp,self",
                "--mca", "btl_tcp_if_include", SUBNET, "--mca", "oob_tcp_if_include", SUBNET, *extra]


CLUSTER_ENV = dict(MPI_ENV, OMPI_MCA_btl_tcp_if_include=SUBNET, OMPI_MCA_oob_tcp_if_include=SUBNET,
                   PROCPOOL_CLUSTER=PREFIX)  # cluster_rsh.sh finds the nodes by it


# ------------------------------------------------------------- node loss ---

def lines_of(stream, into):
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


def next_line(lines, deadline, want):
    """The first line starting with one of `want` before `deadline` (time.monotonic), else None."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            return None
        if line is None:
            return None
        if line.startswith(want):
            return line


def stop_job(proc, what, wait_s):
    """Wait wait_s for the job to end by itself, then stop mpirun (SIGTERM:
    it kills its ranks; SIGKILL 10 s later). The cluster's teardown kills
    whatever is left inside the nodes. Returns (exit status, ended by itself)."""
    try:
        return proc.wait(timeout=wait_s), True
    except subprocess.TimeoutExpired:
        pass
    log(f"compare_cluster.py: {what}: mpirun had not ended {wait_s} s after the measurement; stopping it")
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout=grace), False
        except subprocess.TimeoutExpired:
            continue


def measure_loss(launch, cluster, node_loss, how, what):
    """One node_loss run: wait for "ready", lose LOST_NODE (kill or link),
    read when rank 0 failed the first task. A dict of what was seen."""
    work = tempfile.mkdtemp(prefix="procpool_node_loss_")
    cmd = launch + [node_loss, work, "--timeout", str(LOSS_TIMEOUT_S)]
    log(f"compare_cluster.py: running node loss ({what}): {' '.join(cmd)}")
    stderr = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env={**os.environ, **CLUSTER_ENV}, start_new_session=True)
    lines = queue.Queue()
    threading.Thread(target=lines_of, args=(proc.stdout, lines), daemon=True).start()
    result = dict(how=how, what=what, load_before=load())
    try:
        ready = next_line(lines, time.monotonic() + 60, ("ready", "not ready"))
        if ready is None or not ready.startswith("ready"):
            result["error"] = f"node_loss never became ready ({ready or 'no output'})"
            return result
        result["ready"] = ready
        if how == "kill":
            # The loss is the SIGKILLs, sent from here at one instant, not
            # cluster.sh kill's (half a second of finding and checking).
            t1, result["killed"], took = cluster.kill(LOST_NODE)
            t0 = t1 - took
            if not result["killed"]:
                result["error"] = f"cluster.sh pids {LOST_NODE} listed no process"
                return result
        else:
            # The cable is pulled when cluster.sh's `ip link set` returns.
            t0 = time.time_ns()
            cluster.sh("link", LOST_NODE, "down")
            t1 = time.time_ns()
        result["loss_command_ms"] = (t1 - t0) / 1e6
        seen = next_line(lines, time.monotonic() + LOSS_TIMEOUT_S + 15, ("lost_at_ns", "not detected"))
        if seen is None:
            try:
                ended = proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                ended = None
            result["error"] = ("node_loss printed neither a failure nor 'not detected'" if ended is None else
                               f"mpirun ended the job (exit status {ended}) before rank 0 failed a task")
        elif seen.startswith("not detected"):
            result["not_detected"] = seen
        else:
            lost_at = int(seen.split()[1])
            result["loss_to_failure_ms"] = (lost_at - t1) / 1e6
            result["worker_lost"] = next_line(lines, time.monotonic() + 5, ("WorkerLost:",))
            result["tasks"] = next_line(lines, time.monotonic() + LOSS_TIMEOUT_S + 5, ("tasks:",))
    finally:
        if how == "link":  # so node3's processes can be told to go, then kill them
            cluster.sh("link", LOST_NODE, "up", check=False)
        cluster.kill(LOST_NODE)
        # Under --enable-recovery a job whose loss went unnoticed cannot end by itself.
        result["exit_status"], result["job_ended"] = stop_job(
            proc, what, 20 if "loss_to_failure_ms" in result else 2)
        result["load_after"] = load()
        stderr.seek(0)
        said = [line for line in stderr.read().splitlines()
                if line.strip() and not line.startswith("---") and "PMIX ERROR" not in line]
        if said and result["exit_status"] != 0:
            result["stderr_head"] = said[:3]  # e.g. Open MPI's "ORTE was unable to ..."
            result["stderr_tail"] = said[-3:]
        stderr.close()
        shutil.rmtree(work, ignore_errors=True)
    return result


# ------------------------------------------------------------------- runs ---

def run_cluster(bench_dir, quick, loss_runs=1):
    """The cluster's figures: {"entries": Google Benchmark entries (bm_mpi's
    renamed "cluster:<name>", and one "cluster:NodeLoss/<how>" per loss with
    real_time in ms: the median of `loss_runs` runs of each loss, of those
    where rank 0 failed a task), "futures": {"mpi4py_cluster_<key>": value},
    "not_measured": {figure key: why}, "info": {...}}; or None (logged)
    when the cluster cannot be made here."""
    global unavailable
    unavailable = unavailable_reason(bench_dir)
    if unavailable:
        log(f"compare_cluster.py: no simulated cluster: {unavailable}; leaving out its rows")
        return None
    bench_dir = os.path.abspath(bench_dir)  # the nodes' commands start in this cwd, but be plain
    bm_mpi = os.path.join(bench_dir, "bm_mpi")
    node_loss = os.path.join(bench_dir, "node_loss")
    info = dict(nodes=NODES, subnet=SUBNET, simulation=SIMULATION, load_before=load(), losses=[])
    not_measured = {}
    started = time.monotonic()
    try:
        with SimulatedCluster(NODES) as cluster:
            launch = cluster.launch()
            entries, futures = run_mpi_pair(launch, bm_mpi, quick, f"{CLUSTER}:", LOADED_FILTER,
                                            env=CLUSTER_ENV, timeout=RUN_TIMEOUT_S)
            if not os.path.isfile(node_loss):
                for key, _, _ in LOSSES:
                    not_measured[key] = "not measured (node_loss not built)"
            else:
                for key, how, what in LOSSES:
                    runs = [measure_loss(cluster.launch(["--enable-recovery"]), cluster, node_loss, how, what)
                            for _ in range(loss_runs)]
                    info["losses"] += runs
                    measured = [r["loss_to_failure_ms"] for r in runs if "loss_to_failure_ms" in r]
                    if measured:
                        name = f"{CLUSTER}:NodeLoss/{how}"
                        entries.append(dict(name=name, run_name=name, run_type="iteration", iterations=1,
                                            real_time=statistics.median(measured), time_unit="ms"))
                    else:
                        r = runs[-1]
                        not_measured[key] = f"not measured ({r.get('not_detected') or r.get('error')})"
    except ClusterUnavailable as e:
        unavailable = str(e)
        log(f"compare_cluster.py: no simulated cluster: {e}; leaving out its rows")
        return None
    info["load_after"] = load()
    info["seconds"] = round(time.monotonic() - started, 1)
    return dict(entries=entries, futures=futures, not_measured=not_measured, info=info)


# ------------------------------------------------------------- on its own ---

def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "tasks/s":
        return f"{v / 1e3:.3g}k tasks/s" if v >= 1e3 else f"{v:.3g} tasks/s"
    return f"{v / 1e3:.3g} ms" if v >= 1e3 else f"{v:.3g} us"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", required=True, help="meson build directory (benchmarks/bm_mpi, node_loss)")
    ap.add_argument("--quick", action="store_true", help="short runs (--benchmark_min_time=0.2)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--loss-runs", type=int, default=1,
                    help="run each node loss this many times (the figure is the median; default 1)")
    args = ap.parse_args()
    from compare_run import gbench_value  # the same reading and ratios as compare.py's
    from compare_table import fmt_ratio

    bench_dir = os.path.abspath(os.path.join(args.build_dir, "benchmarks"))
    try:
        cluster = run_cluster(bench_dir, args.quick, max(1, args.loss_runs))
        if cluster is None:
            print(f"No simulated cluster here ({unavailable}): no figures.")
            return 0
        local = None
        if os.path.isfile(os.path.join(bench_dir, "bm_mpi")):
            local = run_mpi_pair([shutil.which("mpirun"), "-n", "3", "--oversubscribe"],
                                 os.path.join(bench_dir, "bm_mpi"), args.quick, "", LOADED_FILTER)
    except CompareError as e:
        log(f"compare_cluster.py: error: {e}")
        return 1

    entries, futures = cluster["entries"], cluster["futures"]
    rows = []
    for title, kind, bench, key, unit in (
            ("no-op throughput (higher is better)", "throughput", "BM_MpiApplyAsyncNoop",
             "submit_noop_tasks_per_s", "tasks/s"),
            ("round trip (lower is better)", "latency", "BM_MpiRoundTrip", "roundtrip_us", "us")):
        pp = gbench_value(entries, f"{CLUSTER}:{bench}", kind)
        py = futures.get(f"mpi4py_{CLUSTER}_{key}")
        ratio = None if not pp or not py else (pp / py if kind == "throughput" else py / pp)
        pp1 = gbench_value(local[0], bench, kind) if local else None
        py1 = local[1].get(f"mpi4py_{key}") if local else None
        rows.append(dict(figure=title, procpool=pp, mpi4py=py, ratio=ratio, procpool_one_host=pp1,
                         mpi4py_one_host=py1, unit=unit))
    print(f"Simulation: {SIMULATION}.")
    print(f"Load (uptime) before: {cluster['info']['load_before']}, after: {cluster['info']['load_after']}; "
          f"cluster runs took {cluster['info']['seconds']} s{'  [--quick run]' if args.quick else ''}")
    print()
    print("| figure | procpool::mpi, 3 hosts | mpi4py.futures, 3 hosts | procpool vs mpi4py "
          "| procpool::mpi, 1 host | mpi4py.futures, 1 host |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = fmt_ratio(r["ratio"])
        print(f"| {r['figure']} | {fmt(r['procpool'], r['unit'])} | {fmt(r['mpi4py'], r['unit'])} | {ratio} "
              f"| {fmt(r['procpool_one_host'], r['unit'])} | {fmt(r['mpi4py_one_host'], r['unit'])} |")
    print()
    for key, how, what in LOSSES:
        runs = [x for x in cluster["info"]["losses"] if x["how"] == how]
        measured = sorted(r["loss_to_failure_ms"] for r in runs if "loss_to_failure_ms" in r)
        if measured:
            print(f"{what} -> first task failed with WorkerLost: median {statistics.median(measured):.0f} ms "
                  f"of {len(measured)} of {len(runs)} runs (range {measured[0]:.0f}-{measured[-1]:.0f} ms)")
        else:
            print(f"{what}: {cluster['not_measured'].get(key, 'not measured')}")
        for r in runs:
            if "loss_to_failure_ms" in r:
                print(f"  {r['loss_to_failure_ms']:.0f} ms (causing the loss took {r['loss_command_ms']:.1f} ms; "
                      f"load {r['load_before']} -> {r['load_after']}): {r['worker_lost']}")
                print(f"    {r.get('tasks')}")
            else:
                print(f"  {r.get('not_detected') or r.get('error')}; {' / '.join(r.get('stderr_head', []))}")
            print(f"    mpirun exit status {r.get('exit_status')}"
                  f"{'' if r.get('job_ended') else ' (stopped by this script: it did not end by itself)'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(rows=rows, **cluster), f, indent=2)
            f.write("\n")
        print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
