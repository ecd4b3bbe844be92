#!/usr/bin/env python3
"""wait_with_progress() on a terminal and off one.

    progress_test.py PROGRAM

PROGRAM is examples/progress_bar. Each mode (starmap_async, then --imap) runs
twice:

  under a pseudo-terminal (stdout and stderr on its slave side): the bar is
  drawn at once and redrawn in place with '\\r' (at least twice in all), every
  draw reads `[###---]  done/total ...` with done never going back, and the
  last one, ended by a newline, shows total/total, 100% and the elapsed time;
  with --imap the first draw shows an unknown total (`0/?`);

  with stderr on a pipe: exactly one line there, the summary
  `N/N items in S s (R items/s)`, and no '\\r'.

Either way the program exits 0 and prints the right sum on stdout.
"""
import errno
import os
import pty
import re
import select
import subprocess
import sys
import time

ITEMS, MS = 600, 2
SUM = sum(x * x for x in range(ITEMS))
TIMEOUT = 60
BAR = re.compile(r"\[([#?-]{30})\]  (\d+)/(\d+|\?)(  (\d+)%)?  [0-9.]+ items/s(  ETA [0-9:?]+|  in [0-9.]+ s)?\s*")

failures = []


def fail(message):
    print(f"FAIL: {message}", flush=True)
    failures.append(message)


def run_in_pty(argv):
    """Runs argv with stdout and stderr on a new pty; returns (status, output)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            continue
        try:
            data = os.read(master, 65536)
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: every slave fd is closed
                raise
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    try:
        status = process.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        status = "timed out"
    return status, b"".join(chunks).decode(errors="replace")


def check_terminal(program, extra):
    status, output = run_in_pty([program, str(ITEMS), str(MS)] + extra)
    name = "terminal " + (" ".join(extra) or "starmap_async")
    print(f"--- {name}: {output!r}", flush=True)
    if status != 0:
        fail(f"{name}: exit status {status}")
    if f"sum of squares below {ITEMS}: {SUM}" not in output:
        fail(f"{name}: no correct sum")
    # The tty turns "\n" into "\r\n": split the draws on '\r' and drop the line ends.
    draws = [d for d in re.split(r"\r\n?", output.split("sum of squares")[0]) if d.strip()]
    if len(draws) < 2:
        fail(f"{name}: {len(draws)} bar draw(s), expected the first one and at least one redraw")
    last_done = -1
    for draw in draws:
        match = BAR.fullmatch(draw)
        if not match:
            fail(f"{name}: not a bar: {draw!r}")
            continue
        done = int(match.group(2))
        if done < last_done:
            fail(f"{name}: done went back from {last_done} to {done}")
        last_done = done
    final = draws[-1] if draws else ""
    match = BAR.fullmatch(final)
    if not (match and match.group(2) == str(ITEMS) and match.group(3) == str(ITEMS) and match.group(5) == "100"
            and match.group(6) and "in " in match.group(6) and "#" * 30 == match.group(1)):
        fail(f"{name}: the last draw is not the full bar {ITEMS}/{ITEMS} with its time: {final!r}")
    if not re.search(rf"\]  {ITEMS}/{ITEMS}  100%[^\r]*\r?\n", output):
        fail(f"{name}: the full bar does not end with a newline")
    if "--imap" in extra and not (draws and re.match(r"\[\?{30}\]  0/\?  ", draws[0])):
        fail(f"{name}: the first draw does not show an unknown total: {draws[:1]!r}")


def check_pipe(program, extra):
    name = "pipe " + (" ".join(extra) or "starmap_async")
    process = subprocess.run([program, str(ITEMS), str(MS)] + extra, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=TIMEOUT)
    print(f"--- {name}: stdout {process.stdout!r} stderr {process.stderr!r}", flush=True)
    if process.returncode != 0:
        fail(f"{name}: exit status {process.returncode}")
    if process.stdout != f"sum of squares below {ITEMS}: {SUM}\n":
        fail(f"{name}: stdout {process.stdout!r}")
    if "\r" in process.stderr:
        fail(f"{name}: a '\\r' on a pipe")
    lines = process.stderr.splitlines()
    if len(lines) != 1 or not re.fullmatch(rf"{ITEMS}/{ITEMS} items in [0-9.]+ s \([0-9.]+ items/s\)", lines[0]):
        fail(f"{name}: stderr is not one summary line: {process.stderr!r}")


def main():
    program = sys.argv[1]
    for extra in ([], ["--imap"]):
        check_terminal(program, extra)
        check_pipe(program, extra)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
