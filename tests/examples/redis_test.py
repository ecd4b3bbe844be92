#!/usr/bin/env python3
"""Runs the redis_writer example against a Redis server of its own.

    redis_test.py REDIS_WRITER      # or: redis_test.py --missing WHAT

Starts `redis-server` on a free port of 127.0.0.1, with no persistence,
waits until it answers PING, runs REDIS_WRITER against it (db 3, so the
example's SELECT is exercised), checks that each of the four child processes
reports its key, that the parent verified all four, and reads every key back
over its own connection. The server is shut down whatever happens. Anything
missing (redis-server, or hiredis at build time) is a failure, not a skip.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

DB = 3
WRITERS = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp(*args):
    """A command in the Redis protocol."""
    out = f"*{len(args)}\r\n"
    for arg in args:
        data = arg.encode()
        out += f"${len(data)}\r\n{arg}\r\n"
    return out.encode()


def read_reply(f):
    """One reply: str for simple and bulk strings, None for nil; errors raise."""
    line = f.readline().decode().rstrip("\r\n")
    kind, rest = line[:1], line[1:]
    if kind == "+":
        return rest
    if kind == "-":
        raise RuntimeError(f"redis: {rest}")
    if kind == ":":
        return rest
    if kind == "$":
        if int(rest) < 0:
            return None
        data = f.read(int(rest) + 2)
        return data[:-2].decode()
    raise RuntimeError(f"redis: unexpected reply {line!r}")


def query(port, *commands):
    """Runs commands on one connection; returns their replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, s.makefile("rb") as f:
        replies = []
        for command in commands:
            s.sendall(resp(*command))
            replies.append(read_reply(f))
        return replies


def wait_until_ready(port, server, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"redis-server exited with {server.returncode}")
        try:
            if query(port, ["PING"]) == ["PONG"]:
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer PING within {timeout} s")


def main():
    if sys.argv[1] == "--missing":
        print(f"FAIL: {sys.argv[2]} was not found when the build was configured: run scripts/setup.sh "
              "(it installs libhiredis-dev) and reconfigure")
        return 1
    writer = sys.argv[1]
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("FAIL: redis-server is not installed: run scripts/setup.sh (it installs redis-server)")
        return 1

    port = free_port()
    failures = []
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--daemonize", "no", "--dir", workdir],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until_ready(port, server)
            print(f"redis-server pid {server.pid} on 127.0.0.1:{port}", flush=True)
            run = subprocess.run([writer, "127.0.0.1", str(port), str(DB)], capture_output=True, text=True,
                                 timeout=30)
            out = run.stdout
            print(f"--- stdout ---\n{out}--- stderr ---\n{run.stderr}--- exit code {run.returncode}", flush=True)
            if run.returncode != 0:
                failures.append(f"exit code {run.returncode}")

            children = re.findall(r"^(Process-\d+) \(pid (\d+)\): SET (\S+), GET \3 -> (.*)$", out, re.MULTILINE)
            if len(children) != WRITERS or len({pid for _, pid, _, _ in children}) != WRITERS:
                failures.append(f"expected {WRITERS} children, each in its own process, to report; got {children}")
            verified = dict(re.findall(r"^verified (\S+) = (.*)$", out, re.MULTILINE))
            if len(verified) != WRITERS:
                failures.append(f"expected {WRITERS} keys verified by the parent, got {len(verified)}")
            if not re.search(rf"^{WRITERS} of {WRITERS} keys verified in db {DB}$", out, re.MULTILINE):
                failures.append("no final verification line")
            for _, _, key, value in children:
                if verified.get(key) != value:
                    failures.append(f"{key}: the child read {value!r}, the parent {verified.get(key)!r}")

            # The test's own look at the database.
            keys = sorted(verified)
            replies = query(port, ["SELECT", str(DB)], *[["GET", key] for key in keys])[1:]
            for key, stored in zip(keys, replies):
                print(f"GET {key} over the test's own connection -> {stored!r}")
                if stored != verified[key]:
                    failures.append(f"{key} holds {stored!r}, expected {verified[key]!r}")
            if query(port, ["DBSIZE"]) != ["0"]:
                failures.append("keys were written to db 0, not only to the chosen db")
        except Exception as error:  # noqa: BLE001 - any error is the test's failure, reported as such
            failures.append(f"{type(error).__name__}: {error}")
        finally:
            server.terminate()
            try:
                log, _ = server.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                log, _ = server.communicate()
            if failures:
                print(f"--- redis-server log ---\n{log}")

    for failure in failures:
        print(f"FAIL: {failure}")
    print("FAILED" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
