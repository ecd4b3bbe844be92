#!/usr/bin/env python3
"""Runs the process-per-connection TCP server example with its client.

    tcp_test.py SERVER CLIENT

Starts SERVER on 127.0.0.1, port 0, and reads the port it bound. Two CLIENTs
connect at once: while both are connected the server has one handler process
for each. Their replies must be their lines upper-cased. Once they have
hung up, the server must have reaped both handlers (no child left, not even a
zombie). A third client stays connected while the server gets SIGTERM: the
server must cut it off, exit with status 0, and leave no process behind.
Last, a server killed with SIGKILL must take its (daemon) handlers along.
"""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_example  # noqa: E402  (its /proc scan)

failures = []


def fail(message):
    print(f"FAIL: {message}", flush=True)
    failures.append(message)


def children_of(pid):
    """{pid: state} of the processes whose parent is pid."""
    return {child: state for child, (state, _comm) in run_example.children_of(pid).items()}


def wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def read_line(stream, timeout, what):
    """One line from a pipe, or None after timeout seconds."""
    import selectors
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            fail(f"{what}: nothing within {timeout} s")
            return None
    return stream.readline().rstrip("\n")


def start_client(client, port):
    return subprocess.Popen([client, "127.0.0.1", str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)


def ask(proc, line, name):
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    reply = read_line(proc.stdout, 10, f"{name} reply to {line!r}")
    print(f"{name}: {line!r} -> {reply!r}", flush=True)
    if reply is not None and reply != line.strip().upper():
        fail(f"{name}: {line!r} came back as {reply!r}")


def finish_client(proc, lines, name):
    """Sends the remaining lines at once, closes stdin and checks every reply."""
    out, err = proc.communicate("".join(line + "\n" for line in lines), timeout=20)
    expected = [line.strip().upper() for line in lines if line.strip()]
    shown = [line if len(line) <= 40 else f"{line[:20]}... ({len(line)} chars)" for line in out.splitlines()]
    print(f"{name} replies: {shown!r} stderr: {err!r} exit {proc.returncode}", flush=True)
    if out.splitlines() != expected:
        fail(f"{name}: replies {out.splitlines()!r}, expected {expected!r}")
    if proc.returncode != 0:
        fail(f"{name}: exit code {proc.returncode}")


def main():
    server_exe, client_exe = sys.argv[1], sys.argv[2]
    # Handlers orphaned by a dying server come back to this script, where they can be seen.
    run_example.become_subreaper()

    server = subprocess.Popen([server_exe, "127.0.0.1", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, bufsize=1)
    clients = []
    try:
        first = read_line(server.stdout, 10, "server start") or ""
        print(f"server: {first}", flush=True)
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)", first)
        if not match or match.group(1) == "0":
            fail(f"server did not report its port: {first!r}")
            return
        port = int(match.group(1))

        one, two = start_client(client_exe, port), start_client(client_exe, port)
        clients += [one, two]
        ask(one, "hello", "client 1")
        ask(two, "  world  ", "client 2")
        # Both connected at once: one handler process each.
        if not wait_for(lambda: len(children_of(server.pid)) == 2, 5):
            fail(f"with two clients connected the server has children {children_of(server.pid)}, expected 2")
        else:
            print(f"server children while both clients are connected: {sorted(children_of(server.pid))}", flush=True)
        finish_client(one, ["procpool", "", "Mixed Case 123", "x" * 3000], "client 1")
        finish_client(two, ["one process per connection", "bye"], "client 2")

        # The handlers have ended with their clients; the server must have reaped them.
        if not wait_for(lambda: not children_of(server.pid), 5):
            fail(f"after both clients hung up the server still has children {children_of(server.pid)}")
        else:
            print("no children left after the clients hung up", flush=True)

        # A connection still open when the server is told to stop.
        three = start_client(client_exe, port)
        clients.append(three)
        ask(three, "still here", "client 3")
        server.send_signal(signal.SIGTERM)
        try:
            out, err = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            fail("server did not exit within 10 s of SIGTERM")
            return
        print(f"server output after start:\n{out}server stderr: {err!r}\nserver exit code {server.returncode}",
              flush=True)
        for pattern in [r"^connection from 127\.0\.0\.1:\d+: Process-\d+ \(pid \d+\)$",
                        r"^Process-\d+ \(pid \d+\) finished, exitcode 0$",
                        r"^signal 15: shutting down$",
                        r"^server stopped, active children: 0$"]:
            if not re.search(pattern, out, re.MULTILINE):
                fail(f"server output lacks {pattern!r}")
        if len(re.findall(r"^connection from", out, re.MULTILINE)) != 3:
            fail("expected 3 connections in the server's output")
        if server.returncode != 0:
            fail(f"server exit code {server.returncode}, expected 0")
        # The third client sees the connection cut when its handler is terminated.
        out3, err3 = three.communicate("after shutdown\n", timeout=10)
        print(f"client 3 after shutdown: stdout {out3!r} stderr {err3!r} exit {three.returncode}", flush=True)
        # It learns on its next recv (EOF) or, if the reset came first, on its send.
        if three.returncode != 1 or not re.search(r"closed the connection|send:", err3):
            fail("client 3 should have seen the server close the connection")

        # Handlers are daemons: killed with SIGKILL, the server still takes them along.
        server = subprocess.Popen([server_exe, "127.0.0.1", "0"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1)
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)", read_line(server.stdout, 10, "server start") or "")
        if not match:
            fail("second server did not report its port")
            return
        four = start_client(client_exe, int(match.group(1)))
        clients.append(four)
        ask(four, "about to be cut off", "client 4")
        handlers = children_of(server.pid)
        if len(handlers) != 1:
            fail(f"the second server has children {handlers}, expected its one handler")
        server.kill()
        server.wait()
        if not wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") and children_of(os.getpid()).get(pid) != "Z"
                                        for pid in handlers), 5):
            fail(f"handlers {sorted(handlers)} outlived a server killed with SIGKILL")
        else:
            print(f"server killed with SIGKILL: its handler {sorted(handlers)} went with it", flush=True)
    finally:
        for proc in clients + [server]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        # Anything still alive here was orphaned by the server: a handler it left behind.
        def alive():
            left = {}
            for pid, state in children_of(os.getpid()).items():
                if state == "Z":
                    os.waitpid(pid, os.WNOHANG)
                else:
                    left[pid] = state
            return left
        if not wait_for(lambda: not alive(), 3):
            for pid in alive():
                fail(f"process {pid} left behind")
                os.kill(pid, signal.SIGKILL)

    print("FAILED" if failures else "OK")


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
