#!/usr/bin/env python3
"""Runs one example program and checks what it prints.

    run_example.py [checks...] -- PROGRAM [ARGS...]

Checks (each may repeat; patterns are Python regexes, multiline):
  --expect RE            RE occurs in stdout
  --reject RE            RE does not occur in stdout
  --count RE N           RE occurs exactly N times
  --before RE1 RE2       every match of RE1 ends before the first match of RE2
  --equal RE1 RE2        group 1 of the first match of each is the same text
  --value-below RE X     group 1 of RE, a number, is < X
  --value-at-least RE X  group 1 of RE, a number, is >= X
  --expect-stderr RE     RE occurs in stderr
  --exit-code N          the program's exit status (default 0)
  --stdin TEXT           fed to the program's standard input
  --timeout S            seconds before the program is killed (default 30)
  --stacks-time S        on a time-out, at most S seconds (default 20) to print
                         the stacks of every process the program started
                         (gdb, best effort), before they are killed; the
                         test's own time-out must leave room for it

Whatever the program's outcome, no process it started may outlive it: this
script makes itself a child subreaper, so orphans come back to it, and fails
if any is still alive shortly after the program has exited.
"""
import argparse
import ctypes
import os
import shlex
import re
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def processes():
    """(pid, comm, fields after comm) of every process, skipping those gone while read."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            # comm may hold spaces and parentheses: the fields after it start past the last ')'.
            yield int(entry), stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        except (OSError, ValueError, IndexError):
            continue


def children_of(pid):
    """{pid: (state, comm)} of the processes whose parent is pid."""
    # fields: state, ppid, pgrp, session, ...
    return {child: (fields[0], comm) for child, comm, fields in processes() if int(fields[1]) == pid}


def session_members(sid):
    """{pid: comm} of the live processes in session or process group sid."""
    return {pid: comm for pid, comm, fields in processes()
            if fields[0] != "Z" and sid in (int(fields[2]), int(fields[3]))}


def print_stacks(sid, limit):
    """Prints every thread's stack of each process of session sid, through gdb
    (all at once, each stopped after `limit` seconds). Best effort: a missing
    gdb or a denied ptrace is said, and the run goes on."""
    members = session_members(sid)
    print(f"--- stacks of every process still running ({len(members)}), before they are killed ---", flush=True)
    command = ["gdb", "-batch", "-nx", "-iex", "set debuginfod enabled off", "-ex", "thread apply all bt", "-p"]
    running = {}
    for pid in sorted(members):
        try:
            running[pid] = subprocess.Popen(command + [str(pid)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        except OSError as e:
            print(f"no stacks: cannot run gdb ({e}); scripts/setup.sh installs it", flush=True)
            break
    # gdb says it itself when ptrace is denied ("ptrace: Operation not permitted").
    print_gdb_outputs(running, members, limit)


def print_gdb_outputs(running, members, limit):
    """Prints each {pid: gdb Popen}'s output, waiting at most `limit` seconds for them all."""
    deadline = time.monotonic() + limit
    for pid, gdb in running.items():
        try:
            out, _ = gdb.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(gdb.pid, signal.SIGKILL)
            out, _ = gdb.communicate()
            out += f"\n(gdb stopped after {limit} s)\n"
        print(f"=== pid {pid} ({members[pid]}) ===\n{out}", flush=True)


def report(failures):
    """Prints each failure, or OK; the exit status to give."""
    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        print("OK")
    return 1 if failures else 0


def leftovers(grace):
    """Reaps orphans handed to us; returns those still alive after grace seconds."""
    deadline = time.monotonic() + grace
    while True:
        alive = {}
        for pid, (state, comm) in children_of(os.getpid()).items():
            if state == "Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            else:
                alive[pid] = (state, comm)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def first_group(pattern, text, failures):
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        failures.append(f"no match for {pattern!r}")
        return None
    return match.group(1)


def check(args, out):
    failures = []
    for pattern in args.expect:
        if not re.search(pattern, out, re.MULTILINE):
            failures.append(f"expected {pattern!r}")
    for pattern in args.reject:
        if re.search(pattern, out, re.MULTILINE):
            failures.append(f"must not appear: {pattern!r}")
    for pattern, count in args.count:
        found = len(re.findall(pattern, out, re.MULTILINE))
        if found != int(count):
            failures.append(f"{pattern!r} occurs {found} times, expected {count}")
    for first, second in args.before:
        ends = [m.end() for m in re.finditer(first, out, re.MULTILINE)]
        later = re.search(second, out, re.MULTILINE)
        if not ends or later is None:
            failures.append(f"--before needs both {first!r} and {second!r}")
        elif max(ends) > later.start():
            failures.append(f"{first!r} must all come before {second!r}")
    for first, second in args.equal:
        a, b = first_group(first, out, failures), first_group(second, out, failures)
        if a is not None and b is not None and a != b:
            failures.append(f"{first!r} gave {a!r} but {second!r} gave {b!r}")
    for pattern, limit in args.value_below:
        value = first_group(pattern, out, failures)
        if value is not None and not float(value) < float(limit):
            failures.append(f"{pattern!r}: {value} is not below {limit}")
    for pattern, limit in args.value_at_least:
        value = first_group(pattern, out, failures)
        if value is not None and not float(value) >= float(limit):
            failures.append(f"{pattern!r}: {value} is below {limit}")
    return failures


def check_stderr(args, err):
    return [f"expected on stderr {pattern!r}" for pattern in args.expect_stderr
            if not re.search(pattern, err, re.MULTILINE)]


def main():
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--expect", action="append", default=[])
    parser.add_argument("--expect-stderr", action="append", default=[])
    parser.add_argument("--reject", action="append", default=[])
    parser.add_argument("--count", nargs=2, action="append", default=[])
    parser.add_argument("--before", nargs=2, action="append", default=[])
    parser.add_argument("--equal", nargs=2, action="append", default=[])
    parser.add_argument("--value-below", nargs=2, action="append", default=[])
    parser.add_argument("--value-at-least", nargs=2, action="append", default=[])
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--stdin", default="")
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--stacks-time", type=float, default=20)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()

    become_subreaper()
    # Its own session, so that on a time-out everything it started can be killed.
    proc = subprocess.Popen(args.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    failures = []
    try:
        # Reading to the end of stdout also waits for any child still holding it.
        out, err = proc.communicate(args.stdin, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        # A hang is diagnosed from where every process stands, not from its output.
        print(f"timed out after {args.timeout} s: $ {shlex.join(args.command)}", flush=True)
        print_stacks(proc.pid, args.stacks_time)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        failures.append(f"timed out after {args.timeout} s")

    print(f"$ {shlex.join(args.command)}\n--- stdout ---\n{out}--- stderr ---\n{err}--- exit code {proc.returncode}")
    if proc.returncode != args.exit_code:
        failures.append(f"exit code {proc.returncode}, expected {args.exit_code}")
    failures += check(args, out) + check_stderr(args, err)

    alive = leftovers(grace=2.0)
    for pid, (state, comm) in alive.items():
        failures.append(f"left behind: pid {pid} ({comm}), state {state}")
        os.kill(pid, signal.SIGKILL)
    leftovers(grace=2.0)

    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
