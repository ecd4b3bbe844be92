#!/usr/bin/env python3
"""Runs a job whose worker rank is SIGKILLed under a plain mpirun, and checks
that Open MPI ends the whole job: mpirun exits non-zero within --limit seconds,
rank 0 never got past its wait, and no process is left behind.

    rank_death.py [--limit S] -- MPIRUN ARGS...
"""
import argparse
import os
import shlex
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from run_example import become_subreaper, leftovers  # noqa: E402


def main():
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--limit", type=float, default=30)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()

    become_subreaper()
    start = time.monotonic()
    proc = subprocess.Popen(args.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    failures = []
    try:
        out, err = proc.communicate(timeout=args.limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        failures.append(f"the job was still running after {args.limit} s: rank 0 hangs")
    elapsed = time.monotonic() - start
    print(f"$ {shlex.join(args.command)}\n--- stdout ---\n{out}--- stderr ---\n{err}"
          f"--- exit code {proc.returncode} after {elapsed:.1f} s")
    if proc.returncode == 0:
        failures.append("mpirun exited 0 although a rank died")
    if "submitted" not in out:
        failures.append("rank 0 never submitted the task")
    if "still running" in out:
        failures.append("rank 0 outlived the job")
    for pid, (state, comm) in leftovers(grace=3.0).items():
        failures.append(f"left behind: pid {pid} ({comm}), state {state}")
        os.kill(pid, signal.SIGKILL)
    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        print("OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
