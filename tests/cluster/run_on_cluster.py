#!/usr/bin/env python3
"""Runs an MPI program across the simulated cluster (scripts/cluster.sh) and
checks what it prints.

    run_on_cluster.py [options] [checks...] -- PROGRAM [ARGS...] [: PROGRAM ...]

Brings up a fresh cluster of --nodes nodes, runs on node1
    mpirun --host node1:1,...,nodeN:1 <the cluster's flags> PROGRAM...
(so rank K-1 runs on nodeK: every rank is alone on its host and talks over
TCP only), and always tears the cluster down again, whatever happened.
Exits 77 (meson's "skipped") with the reason where namespaces cannot be made.

Options:
  --nodes N            nodes, and ranks (default 3)
  --mpirun PATH        the mpirun to use (default: mpirun on PATH)
  --on RE ACTION       once RE first matches a line of stdout, runs
                       `cluster.sh ACTION` (e.g. "kill node3", "link node2 down")
                       from outside the nodes; may repeat
  --exit-nonzero       any exit code but 0 (mpirun's own, when it ends a job)
  --expect-stderr RE   RE must match a line of stderr (mpirun's messages); may repeat
  --exit-code, --timeout, --stacks-time and the checks (--expect, --reject,
  --count, ...): as in tests/examples/run_example.py. On a time-out, the
  stacks are those of every process on every node.

Besides the checks: no process may be left on any node once mpirun has
returned (after a short grace), and the cluster must come down cleanly. A
run whose mpirun itself dies of SIGSEGV, SIGABRT or SIGBUS (Open MPI 4.1.4's
mpirun crashes now and then when a rank dies) is repeated on a fresh
cluster, up to three runs in all, and says so; a third crash fails the test.

The cluster's name prefix is PROCPOOL_CLUSTER if set, else one derived from
the working directory (meson's build folder), so that runs from two build
folders (or worktrees) never share a cluster; one run at a time per prefix
(a lock), and a cluster left by a killed run is removed first.
"""
import argparse
import fcntl
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLUSTER_SH = os.path.join(ROOT, "scripts", "cluster.sh")
RSH_AGENT = os.path.join(ROOT, "scripts", "cluster_rsh.sh")
sys.path.insert(0, os.path.join(ROOT, "tests", "examples"))
import run_example  # noqa: E402  (its checks)

SKIP = 77
SUBNET = "10.250.0.0/24"  # cluster.sh's


def mpirun_flags(nodes):
    """The flags that make mpirun on node1 start one rank per node over TCP."""
    hosts = ",".join(f"node{k}:1" for k in range(1, nodes + 1))
    return ["--host", hosts, "--mca", "plm_rsh_agent", RSH_AGENT, "--mca", "btl", "tcp,self",
            "--mca", "btl_tcp_if_include", SUBNET, "--mca", "oob_tcp_if_include", SUBNET]


def cluster(*args, check=True, capture=False):
    result = subprocess.run([CLUSTER_SH, *args], stdin=subprocess.DEVNULL, text=True,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None)
    if check and result.returncode != 0:
        raise RuntimeError(f"cluster.sh {' '.join(args)}: exit {result.returncode}"
                           + (f": {result.stderr.strip()}" if capture else ""))
    return result


def node_processes(nodes):
    """{pid: 'nodeK comm'} of every process on the nodes (their inits aside)."""
    found = {}
    for k in range(1, nodes + 1):
        out = cluster("pids", f"node{k}", check=False, capture=True).stdout
        for pid in out.split():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    found[int(pid)] = f"node{k} {f.read().strip()}"
            except OSError:
                pass
    return found


def print_stacks(nodes, limit):
    """Every thread's stack of every process on the nodes, through gdb run on
    each process's own node (from outside its pid namespace gdb's thread list
    is unreliable), all at once, each stopped after `limit` seconds. Best effort."""
    members = node_processes(nodes)
    print(f"--- stacks of every process on the nodes ({len(members)}), before they are killed ---", flush=True)
    running = {}
    for pid, what in sorted(members.items()):
        try:
            with open(f"/proc/{pid}/status") as f:
                nspids = [line.split()[1:] for line in f if line.startswith("NSpid:")]
        except OSError:
            continue
        if not nspids or len(nspids[0]) < 2:
            continue  # in the node's network namespace only (nsenter waiting for its child)
        command = [CLUSTER_SH, "exec", what.split()[0], "gdb", "-batch", "-nx", "-iex", "set debuginfod enabled off",
                   "-ex", "thread apply all bt", "-p", nspids[0][-1]]
        running[pid] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    run_example.print_gdb_outputs(running, members, limit)


def lock(prefix):
    """Holds /run/procpool-cluster/PREFIX.lock for this process's life (one run per prefix)."""
    os.makedirs("/run/procpool-cluster", exist_ok=True)
    fd = os.open(f"/run/procpool-cluster/{prefix}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def read_lines(stream, lines, hooks, printed):
    """Collects stream's lines; runs each hook (RE, ACTION) once, at its first match."""
    for line in stream:
        lines.append(line)
        for hook in hooks:
            if not hook["done"] and re.search(hook["re"], line):
                hook["done"] = True
                result = cluster(*shlex.split(hook["action"]), check=False, capture=True)
                printed.append(f"[cluster] on {hook['re']!r}: cluster.sh {hook['action']}: exit {result.returncode}"
                               f"{' ' + result.stderr.strip() if result.stderr.strip() else ''}\n")


def run(args, prefix):
    command = [CLUSTER_SH, "exec", "node1", args.mpirun] + mpirun_flags(args.nodes) + args.command
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    out, err, notes = [], [], []
    hooks = [{"re": r, "action": a, "done": False} for r, a in args.on]
    readers = [threading.Thread(target=read_lines, args=(proc.stdout, out, hooks, notes)),
               threading.Thread(target=read_lines, args=(proc.stderr, err, [], notes))]
    for t in readers:
        t.start()
    failures = []
    try:
        proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"timed out after {args.timeout} s: $ {shlex.join(command)}", flush=True)
        print_stacks(args.nodes, args.stacks_time)
        for k in range(1, args.nodes + 1):
            cluster("kill", f"node{k}", check=False)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        failures.append(f"timed out after {args.timeout} s")
    for t in readers:
        t.join()
    out, err = "".join(out), "".join(err)
    print(f"$ PROCPOOL_CLUSTER={prefix} {shlex.join(command)}\n--- stdout ---\n{out}--- stderr ---\n{err}"
          f"{''.join(notes)}--- exit code {proc.returncode}")
    if args.exit_nonzero:
        if proc.returncode == 0:
            failures.append("exit code 0, expected another")
    elif proc.returncode != args.exit_code:
        failures.append(f"exit code {proc.returncode}, expected {args.exit_code}")
    failures += run_example.check(args, out) + run_example.check_stderr(args, err)
    for hook in hooks:
        if not hook["done"]:
            failures.append(f"--on {hook['re']!r} never matched: {hook['action']!r} not done")

    # mpirun has returned: its daemons and ranks on every node end with it.
    deadline = time.monotonic() + 5
    while (left := node_processes(args.nodes)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid, what in sorted(left.items()):
        failures.append(f"left behind: pid {pid} on {what}")
    # mpirun is the command's last process: a crash signal there is its own (a time-out's kill is SIGKILL).
    crashed = proc.returncode in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS)
    return failures, crashed


def main():
    parser = argparse.ArgumentParser(usage=__doc__)
    for name in ("expect", "reject"):
        parser.add_argument(f"--{name}", action="append", default=[])
    for name in ("count", "before", "equal", "value-below", "value-at-least"):
        parser.add_argument(f"--{name}", nargs=2, action="append", default=[])
    parser.add_argument("--on", nargs=2, action="append", default=[])
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--exit-nonzero", action="store_true")
    parser.add_argument("--expect-stderr", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--stacks-time", type=float, default=30)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--mpirun", default="mpirun")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()

    prefix = os.environ.get("PROCPOOL_CLUSTER") or "pt" + hashlib.sha1(os.getcwd().encode()).hexdigest()[:6]
    os.environ["PROCPOOL_CLUSTER"] = prefix
    if os.geteuid() == 0:
        lock_fd = lock(prefix)  # noqa: F841 (held until exit)
        cluster("down", check=False, capture=True)  # what a killed run left

    for attempt in (1, 2, 3):
        started = time.monotonic()
        up = cluster("up", str(args.nodes), check=False, capture=True)
        if up.returncode == SKIP:
            print(f"SKIP: {up.stderr.strip() or 'cluster.sh up: namespaces cannot be made here'}")
            return SKIP
        failures, mpirun_crashed = [], False
        try:
            if up.returncode != 0:
                failures.append(f"cluster.sh up {args.nodes}: exit {up.returncode}: {up.stderr.strip()}")
            else:
                print(f"[cluster] {up.stdout.strip()} in {time.monotonic() - started:.2f} s", flush=True)
                failures, mpirun_crashed = run(args, prefix)
        finally:
            started = time.monotonic()
            down = cluster("down", check=False, capture=True)
            print(f"[cluster] down in {time.monotonic() - started:.2f} s")
            if down.returncode != 0:
                failures.append(f"cluster.sh down: exit {down.returncode}: {down.stderr.strip()}")
        if not (failures and mpirun_crashed and attempt < 3):
            break
        # Open MPI 4.1.4's mpirun itself crashes now and then when a rank
        # dies (SIGSEGV in pmix_server_log_fn, relaying the "peer hung up"
        # message: 3 of 30 runs of a killed rank). Not procpool's doing, and
        # not what the test asks: it runs again, up to three runs in all, saying so.
        print("[cluster] mpirun itself died of a signal (an Open MPI crash): the test runs again, "
              "on a fresh cluster", flush=True)
    return run_example.report(failures)


if __name__ == "__main__":
    sys.exit(main())
