#!/usr/bin/env python3
"""Runs the pool_trace example and checks the Chrome trace it writes.

    trace_test.py PROGRAM

PROGRAM writes its trace to a temporary file and prints its stats. The file
must be valid JSON ({"traceEvents": [...]}) in which every event has ph, ts,
pid and tid; every task the pool counted as submitted (ids 1..N) has exactly
one run ("X", args.task) and one queue wait ("b" and "e" with the task's
id), the wait ending where the run starts; runs on one worker's track do not
overlap; every worker track is named "worker <slot> (pid <tid>)"; the worker
the crashing task killed has a death marker (signal 9) and the run of that
task is marked lost on its track; its replacement has a start marker.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict

failures = []


def fail(message):
    print(f"FAIL: {message}", flush=True)
    failures.append(message)


def main():
    program = sys.argv[1]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trace.json")
        run = subprocess.run([program, path], capture_output=True, text=True, timeout=60)
        print(run.stdout, end="")
        if run.returncode != 0:
            fail(f"exit status {run.returncode}; stderr: {run.stderr}")
        match = re.search(r"^tasks: (\d+) submitted, (\d+) completed, (\d+) failed, (\d+) cancelled$",
                          run.stdout, re.M)
        if not match:
            fail("no tasks line")
            return
        submitted, completed, failed, cancelled = map(int, match.groups())
        if (submitted, completed, failed, cancelled) != (81, 80, 1, 0):
            fail(f"stats {match.group(0)!r}, expected 81 submitted, 80 completed, 1 failed")
        if not re.search(r"^workers replaced: [1-9]", run.stdout, re.M):
            fail("no worker replaced")
        with open(path) as f:
            trace = json.load(f)
    check_trace(trace, submitted)


def check_trace(trace, submitted):
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        fail("not {\"traceEvents\": [...]}")
        return
    events = trace["traceEvents"]
    for e in events:
        if not all(k in e for k in ("ph", "ts", "pid", "tid")) or not isinstance(e["ts"], (int, float)):
            fail(f"event without ph/ts/pid/tid: {e}")
            return
    pool_pids = {e["pid"] for e in events}
    if len(pool_pids) != 1:
        fail(f"events of several processes: {pool_pids}")

    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    runs = [e for e in events if e["ph"] == "X"]
    run_ids = Counter(e["args"]["task"] for e in runs)
    begins = Counter(e["id"] for e in events if e["ph"] == "b")
    ends = {e["id"]: e for e in events if e["ph"] == "e"}
    expected = set(range(1, submitted + 1))
    if set(run_ids) != expected or any(n != 1 for n in run_ids.values()):
        fail(f"runs: missing {sorted(expected - set(run_ids))}, repeated {[i for i, n in run_ids.items() if n != 1]}")
    if set(begins) != expected or any(n != 1 for n in begins.values()) or set(ends) != expected:
        fail("queue waits: not exactly one b and one e per task")
    by_track = defaultdict(list)
    for e in runs:
        by_track[e["tid"]].append(e)
        name = names.get(e["tid"], "")
        if not re.fullmatch(rf"worker \d+ \(pid {e['tid']}\)", name):
            fail(f"task {e['args']['task']} runs on track {e['tid']} named {name!r}")
        end = ends.get(e["args"]["task"])
        if end and abs(end["ts"] - e["ts"]) > 0.0015:
            fail(f"task {e['args']['task']}: its wait ends at {end['ts']}, its run starts at {e['ts']}")
        if e["dur"] < 0:
            fail(f"task {e['args']['task']}: negative duration")
    for tid, track in by_track.items():
        track.sort(key=lambda e: e["ts"])
        for a, b in zip(track, track[1:]):
            if a["ts"] + a["dur"] > b["ts"] + 0.0015:
                fail(f"runs overlap on track {tid}: tasks {a['args']['task']} and {b['args']['task']}")

    starts = [e for e in events if e["ph"] == "i" and e["name"] == "worker started"]
    deaths = [e for e in events if e["ph"] == "i" and e["name"] == "worker ended" and e["args"]["signal"] == 9]
    lost = [e for e in runs if e["args"].get("lost")]
    if len(deaths) != 1 or len(lost) != 1:
        fail(f"{len(deaths)} deaths by SIGKILL and {len(lost)} lost runs, expected one each")
    elif lost[0]["tid"] != deaths[0]["tid"]:
        fail("the lost run is not on the killed worker's track")
    elif "SIGKILL" not in deaths[0]["args"]["cause"]:
        fail(f"death cause {deaths[0]['args']['cause']!r}")
    if len(starts) != 3:
        fail(f"{len(starts)} worker starts, expected 3 (two, then the replacement)")
    elif deaths and not any(s["ts"] >= deaths[0]["ts"] - 1000 and s["tid"] != deaths[0]["tid"] for s in starts[2:]):
        fail("no start marker for the replacement")
    if any(e.get("s") != "t" for e in events if e["ph"] == "i"):
        fail("an instant event not scoped to its track")
    print(f"trace: {len(events)} events, {len(runs)} runs on {len(by_track)} worker tracks")


if __name__ == "__main__":
    main()
    if failures:
        sys.exit(1)
    print("ok")
