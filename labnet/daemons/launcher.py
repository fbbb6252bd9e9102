"""The lab's container launcher: one small process that forks every container and server.

Forking a container from the orchestrator would copy a 50 MB interpreter (pyroute2, rich,
...) for each pod: tens of milliseconds a fork, and pages each child dirties on its own.
The launcher is a fresh interpreter that imports only the built-in workload, so its forks
are cheap and share nearly all their pages. It runs in the lab's underlay namespace (where
`down` finds it even without a state file) and is the subreaper of what it starts, so every
container that exits is reaped, whichever PID 1 the machine has.

A container is started in two steps, as `unshare --fork --pid` does: a child enters the
pod's network namespace and makes new PID, mount and UTS namespaces; its own child is the
container's PID 1 (its own /proc, its hostname). The first child then exits, so PID 1 is
the only process a container costs. Requests arrive as JSON lines on a unix socket in the
lab's directory; each answer is the PID 1's pid as the root namespace sees it.

Run by labnet:  python -m labnet.daemons.launcher SOCKET
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
import sys

from labnet.daemons import forking, workload
from labnet.kernel import netns

COMM = "labnet-launcher"
LAB_MARK = "LABNET_LAB"  # labnet.daemons.state.LAB_MARK (the launcher imports only the stdlib)
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWPID = 0x00020000, 0x04000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x1000, 0x4000, 1 << 18


def _run(request: dict) -> int:
    """What a container's PID 1 (or an external host's server) runs."""
    listeners = [(p, int(n)) for p, n in (s.split(":") for s in request["serve"])]
    command = request["command"]
    if command and not listeners:
        # daemons such as dnsmasq live in sbin, which a user's PATH may lack
        os.environ["PATH"] = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        os.execvp(command[0], command)
    if command:  # a command beside the server: it runs as a child of the server
        import subprocess  # here: the launcher's own start is on every lab's path

        subprocess.Popen(command, stdin=subprocess.DEVNULL)
    return workload.serve(request["hostname"], listeners) if listeners else 0


def _pid1(request: dict) -> int:
    """PID 1 of a container: its own /proc (so `ps` shows only its processes), hostname and
    /etc/resolv.conf (kubelet's, which `ip netns exec` shows in the pod's namespace too)."""
    libc = netns._libc
    netns._check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "private /")
    resolv = os.path.join(netns.ETC_NETNS, request["netns"], "resolv.conf").encode()
    if os.path.exists(resolv):
        netns._check(
            libc.mount(resolv, b"/etc/resolv.conf", None, MS_BIND, None), "mount resolv.conf"
        )
    netns._check(
        libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
        "mount /proc",
    )
    socket.sethostname(request["hostname"])
    # PID 1 of a namespace ignores signals it has no handler for: SIGTERM must stop it
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    return _run(request)


def _child(request: dict, report: int) -> int:
    """In the fork: the namespaces, then (for a container) PID 1 forked into them."""
    forking.daemonize(request["log"], request["netns"], "labnet-serve", report)
    # the lab's mark, also on a container whose command is any program (`sleep`, dnsmasq)
    os.environ[LAB_MARK] = request["lab"]
    if not request["container"]:
        os.write(report, str(os.getpid()).encode())
        os.close(report)
        return _run(request)
    netns._check(netns._libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    pid = os.fork()
    if pid == 0:
        os.close(report)
        os._exit(_pid1(request))
    os.write(report, str(pid).encode())  # as the root namespace numbers it
    return 0


def launch(request: dict) -> int:
    """Start one container or server; its pid once it is inside its namespaces."""
    pid, answer = forking.fork_reporting(request["name"], lambda r: _child(request, r))
    if request["container"]:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # the first child exits once PID 1 is forked
    if not answer:
        raise OSError(f"{request['name']} did not start (see its log)")
    return int(answer)


def _reap(_signum: int, _frame: object) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _serve(path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    old = os.umask(0o177)  # the socket is born 0600: no moment when others may connect
    try:
        server.bind(path)
    finally:
        os.umask(old)
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rw") as stream:
            for line in stream:
                request = json.loads(line)
                try:
                    answer = {"pid": launch(request)}
                except OSError as exc:
                    answer = {"error": str(exc)}
                stream.write(json.dumps(answer) + "\n")
                stream.flush()


def main(argv: list[str]) -> int:
    gc.freeze()  # what is imported now stays shared: a child's collections never touch it
    forking.set_comm(COMM)
    netns._libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _serve(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
