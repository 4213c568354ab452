"""Who listens on a local TCP port: `scripts/moto.sh` uses it so that it never mistakes another
process (another checkout's moto, say) for its own.

    ports.py free PORT            exit 0 when nothing listens on 127.0.0.1:PORT; else 1 and
                                  one line naming the holder (pid and command) when it can
    ports.py owner PORT           the pid listening on PORT (exit 1 when none or unknown)
    ports.py wait PID URL [SECS]  wait until URL answers (any HTTP status) while PID lives,
                                  then check that PID is the one listening on URL's port;
                                  exit 1 at once if PID exits
    ports.py listen PID PORT [SECS]
                                  wait until something listens on 127.0.0.1:PORT while PID
                                  lives (no HTTP request: for servers that log every request)

The holder is read from /proc (Linux): the LISTEN socket of the port in /proc/net/tcp{,6} and
the process whose file descriptors hold that socket. Where /proc is missing, `free` still works
(by binding the port) and `wait` checks only that PID lives and the URL answers.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

LISTEN = "0A"


def listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) < 10:
                        continue
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            continue
    return inodes


def pids_holding(inodes: set[str]) -> list[int]:
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fd_dir = f"/proc/{entry}/fd"
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(f"{fd_dir}/{fd}") in wanted:
                        found.append(int(entry))
                        break
                except OSError:
                    continue
        except OSError:
            continue
    return found


def command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def cwd_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return "?"


def port_is_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return False
        raise
    finally:
        s.close()


def holder(port: int) -> str:
    pids = pids_holding(listening_inodes(port))
    if not pids:
        return "a process this user cannot see"
    return ", ".join(f"pid {pid} ({command_of(pid)[:160]}, in {cwd_of(pid)})" for pid in pids)


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def wait(pid: int, url: str, seconds: float) -> int:
    port = urlsplit(url).port
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            print(f"process {pid} exited before {url} answered", file=sys.stderr)
            return 1
        if answers(url):
            if os.path.isdir("/proc/net") and port is not None:
                owners = pids_holding(listening_inodes(port))
                if owners and pid not in owners:
                    print(f"{url} is answered by {holder(port)}, not by process {pid}", file=sys.stderr)
                    return 1
            return 0
        time.sleep(0.1)
    print(f"{url} did not answer within {seconds:.0f} s", file=sys.stderr)
    return 1


def listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_listening(pid: int, port: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            print(f"process {pid} exited before it listened on port {port}", file=sys.stderr)
            return 1
        if listens(port):
            return 0
        time.sleep(0.1)
    print(f"nothing listened on port {port} within {seconds:.0f} s", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "free":
        port = int(argv[1])
        if port_is_free(port):
            return 0
        print(holder(port))
        return 1
    if len(argv) >= 2 and argv[0] == "owner":
        pids = pids_holding(listening_inodes(int(argv[1])))
        if not pids:
            return 1
        print(pids[0])
        return 0
    if len(argv) >= 3 and argv[0] == "listen":
        return wait_listening(int(argv[1]), int(argv[2]), float(argv[3]) if len(argv) > 3 else 20)
    if len(argv) >= 3 and argv[0] == "wait":
        return wait(int(argv[1]), argv[2], float(argv[3]) if len(argv) > 3 else 20)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
