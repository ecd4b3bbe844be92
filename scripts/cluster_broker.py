#!/usr/bin/env python3
"""The simulated cluster's "sshd" (scripts/cluster.sh).

    cluster_broker.py serve SOCKET CLUSTER_SH   (cluster.sh up starts it)
    cluster_broker.py call SOCKET ARGS...        runs `cluster.sh ARGS...` outside

A process on a node lives in the node's pid namespace, and from there no
process can be started in another node's (setns wants a descendant pid
namespace), nor can another node's processes be seen. So `cluster.sh exec
node2 ...` run on node1 (as Open MPI's rsh agent does) asks this server,
which runs in the machine's own namespaces, to run the same cluster.sh
command there. Like ssh, the command's stdin, stdout and stderr are the
caller's own (passed over the socket), its exit status comes back, and
SIGTERM, SIGINT and SIGHUP sent to the caller go on to the command (to its
process group). A caller that dies leaves its command running, as ssh
without a terminal does; `cluster.sh down` ends every node's processes.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def serve(path, cluster_sh):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)  # only its owner (root) may run commands through it
    listener.bind(path)
    os.umask(old)
    listener.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=run_one, args=(conn, cluster_sh), daemon=True).start()


def receive_request(conn):
    """(request dict, [stdin, stdout, stderr]) from the caller's first message."""
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < 4 or len(fds) != 3:
        raise ValueError("bad request")
    size = struct.unpack("!I", data[:4])[0]
    data = data[4:]
    while len(data) < size:
        more = conn.recv(size - len(data))
        if not more:
            raise ValueError("truncated request")
        data += more
    return json.loads(data), fds


def run_one(conn, cluster_sh):
    with conn:
        try:
            request, fds = receive_request(conn)
        except (OSError, ValueError) as e:
            print(f"cluster_broker: {e}", file=sys.stderr)
            return
        try:
            proc = subprocess.Popen([cluster_sh] + request["args"], stdin=fds[0], stdout=fds[1], stderr=fds[2],
                                    cwd=request["cwd"], env=request["env"], start_new_session=True)
        except OSError as e:
            os.write(fds[2], f"cluster_broker: cannot run cluster.sh: {e}\n".encode())
            conn.sendall(struct.pack("!i", 255))
            return
        finally:
            for fd in fds:
                os.close(fd)

        def forward_signals():
            while True:
                try:
                    sig = conn.recv(1)
                except OSError:
                    return
                if not sig:
                    return  # the caller is gone: its command goes on
                try:
                    os.killpg(proc.pid, sig[0])
                except OSError:
                    pass

        threading.Thread(target=forward_signals, daemon=True).start()
        code = proc.wait()
        try:
            conn.sendall(struct.pack("!i", 128 - code if code < 0 else code))
        except OSError:
            pass


def call(path, args):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError as e:
        print(f"cluster.sh: cannot reach the cluster's broker at {path}: {e}", file=sys.stderr)
        return 255
    # Lone surrogates (undecodable bytes) survive json's escapes and come back as the same bytes.
    request = json.dumps({"args": args, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [struct.pack("!I", len(request)) + request], [0, 1, 2])

    def forward(sig, _frame):
        try:
            conn.send(bytes([sig]))
        except OSError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    status = b""
    while len(status) < 4:
        more = conn.recv(4 - len(status))
        if not more:
            print("cluster.sh: the cluster's broker went away", file=sys.stderr)
            return 255
        status += more
    return struct.unpack("!i", status)[0]


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "call":
        sys.exit(call(sys.argv[2], sys.argv[3:]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
