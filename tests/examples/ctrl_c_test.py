#!/usr/bin/env python3
"""Ctrl-C in the middle of a long map, as a terminal sends it.

    ctrl_c_test.py PROGRAM

Runs examples/ctrl_c in a process group of its own, waits until its pool's
zygote and workers are up and the map is running, and sends SIGINT to the
whole group, as a terminal's Ctrl-C does. Then:

  (no option)  the program dies of SIGINT, and its zygote and every worker
               are gone within a second of its exit: none is left running, as
               a zombie, or as an orphan (this script is a child subreaper, so
               orphans come back to it, and it reaps them as they end);
  --graceful   a sigwait thread calls pool.terminate(): the program exits with
  --handler    status 0, printing how many items had finished, and leaves
               nothing behind either (--handler: a handler installed after the
               pool was built; the zygote must survive the SIGINT, so the
               pool's error is no "zygote died").

Either way nothing new is left in /dev/shm (Open MPI's segments aside). The one-second limit is polled
every 10 ms from the moment the program has exited (slack for a loaded CI
machine is in the limit itself: the processes end in milliseconds).
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_example  # noqa: E402  (subreaper, /proc scan)

failures = []
OPEN_MPI_SHM = ("vader_segment.", "sm_segment.", "ompi.")


def fail(message):
    print(f"FAIL: {message}", flush=True)
    failures.append(message)


def descendants(root):
    """{pid: comm} of every process below root."""
    found, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        for child, (_state, comm) in run_example.children_of(pid).items():
            if child not in found:
                found[child] = comm
                frontier.append(child)
    return found


def state_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def gone(pid):
    """True once pid no longer exists; reaps it if it came back to us as a zombie."""
    state = state_of(pid)
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass  # not ours: still a zombie of someone else
        state = state_of(pid)
    return state is None


def run(program, mode):
    print(f"--- {program} {mode}".rstrip(), flush=True)
    shm_before = set(os.listdir("/dev/shm"))
    proc = subprocess.Popen([program] + ([mode] if mode else []), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    if line.strip() != "running":
        fail(f"{mode}: expected 'running', got {line!r}")
    # The zygote and both workers are up once three processes are below the program.
    deadline = time.monotonic() + 30
    while len(descendants(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # some items have finished, the workers are in the middle of others
    tree = descendants(proc.pid)
    print(f"processes below the program: {sorted(tree.items())}", flush=True)
    if len(tree) < 3:
        fail(f"{mode}: expected a zygote and two workers, found {tree}")

    os.killpg(proc.pid, signal.SIGINT)
    # wait(), not communicate(): the zygote and workers hold the program's
    # stdout too, and their end is what is measured below.
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        fail(f"{mode}: the program did not end within 30 s of SIGINT")
    exited = time.monotonic()

    # Within a second of the program's exit, every process it had is gone.
    while True:
        left = [pid for pid in tree if not gone(pid)]
        if not left or time.monotonic() - exited > 1.0:
            break
        time.sleep(0.01)
    if not left:
        print(f"all {len(tree)} gone {1000 * (time.monotonic() - exited):.0f} ms after the program exited", flush=True)
    for pid in left:
        fail(f"{mode}: pid {pid} ({tree[pid]}) still there, state {state_of(pid)}, 1 s after the program exited")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid, (state, comm) in run_example.leftovers(grace=0.5).items():
        fail(f"{mode}: left behind: pid {pid} ({comm}), state {state}")
        os.kill(pid, signal.SIGKILL)
    out, err = proc.stdout.read(), proc.stderr.read()
    print(f"stdout:\n{line}{out}stderr:\n{err}exit code {proc.returncode}", flush=True)

    # Open MPI's segments are left out: this program does not link MPI, and
    # other tests on the machine (mpirun) may be making them meanwhile.
    new_shm = {name for name in set(os.listdir("/dev/shm")) - shm_before if not name.startswith(OPEN_MPI_SHM)}
    if new_shm:
        fail(f"{mode}: new in /dev/shm: {sorted(new_shm)}")

    if mode == "":
        if proc.returncode != -signal.SIGINT:
            fail(f"exit code {proc.returncode}, expected death by SIGINT ({-signal.SIGINT})")
    else:
        if proc.returncode != 0:
            fail(f"{mode}: exit code {proc.returncode}, expected 0")
        if "interrupted: " not in out or " items finished" not in out:
            fail(f"{mode}: no 'interrupted: N of M items finished' line")
        if "finished all" in out:
            fail(f"{mode}: the map ran to its end: SIGINT came too late to test anything")
        if "zygote" in out:
            fail(f"{mode}: the zygote died of the SIGINT: {out!r}")


def main():
    program = sys.argv[1]
    run_example.become_subreaper()
    for mode in ["", "--graceful", "--handler"]:
        run(program, mode)
    if not failures:
        print("OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
