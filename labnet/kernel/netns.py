"""Named network namespaces, the way iproute2 keeps them (/run/netns/<name> bind mounts).

pyroute2's own netns helpers fork a child for every namespace and every socket (tens of
milliseconds each on a 2-core machine); entering a namespace with setns() in the calling
thread costs well under a millisecond. Sockets made while a thread is inside a namespace
stay there, so this module creates namespaces, netlink sockets and sysctl writes in-thread,
then returns the thread to where it was. Nothing here touches the root namespace's own
configuration.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from collections.abc import Callable, Iterator

from labnet.kernel import crashpoint

TYPE_CHECKING = False  # not typing's: the launcher imports this module and must start fast
if TYPE_CHECKING:
    import subprocess

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_REC, MS_BIND, MS_SHARED = 0x4000, 0x1000, 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str, name: str = "") -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", name)


def path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def list_names() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


def _prepare_run_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns add` does."""
    os.makedirs(NETNS_RUN_DIR, exist_ok=True)
    d = NETNS_RUN_DIR.encode()
    if _libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    _check(_libc.mount(d, d, b"none", MS_BIND | MS_REC, None), "bind /run/netns")
    _check(_libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None), "share /run/netns")


def _setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread inside namespace `name`, then come back."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path(name), os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def popen(name: str, argv: list[str], **kwargs) -> subprocess.Popen:
    """A program started directly inside namespace `name` (a subprocess.Popen): the child
    is forked from this thread while it is inside, so it needs no `nsenter` or
    `ip netns exec` in front (each an exec of its own, milliseconds of CPU). It keeps the
    host's mounts, as `nsenter --net` does."""
    import subprocess

    with entered(name):
        return subprocess.Popen(argv, **kwargs)


def run(name: str, argv: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run, output captured, with the program started inside namespace `name`
    (as popen() does; this thread only waits for it meanwhile)."""
    import subprocess

    with entered(name):
        return subprocess.run(argv, capture_output=True, timeout=timeout, **kwargs)


def reserve(names: list[str]) -> None:
    """The files that `create(..., reserved=True)` mounts namespaces on: the first a new
    file, the others hard links to it (FileExistsError names one taken by someone else).

    A mount covers a name, not an inode, so each name still gets a namespace of its own,
    and `ip netns` and teardown see nothing different. One inode instead of hundreds: with
    /run on ext4 without a journal, allocating an inode skips (reading each one's block)
    every inode freed in the last 30 s, so the files of a 552-namespace lab made right after
    a down can cost seconds of CPU; the links cost milliseconds."""
    _prepare_run_dir()
    first = path(names[0])
    os.close(os.open(first, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    for name in names[1:]:
        os.link(first, path(name))


def create(name: str, inside: Callable[[], None] | None = None, reserved: bool = False) -> None:
    """Create a named namespace (fails if it exists) and leave this thread where it was;
    `reserved`: its file was made by reserve(). `inside()` runs in between, with the thread
    in the new namespace: no setns() of its own. If it fails, the namespace stays (its name
    is already recorded) and the error is raised."""
    if not reserved:
        reserve([name])
    p = path(name)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    mounted = False
    try:
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare", name)
            me = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            _check(_libc.mount(me, p.encode(), b"none", MS_BIND, None), "mount", name)
            mounted = True
            if inside is not None:
                inside()
        finally:
            _setns(home)
        crashpoint.step(f"namespace {name} created")
    except OSError:
        if not mounted:
            with contextlib.suppress(OSError):
                os.unlink(p)
        raise
    finally:
        os.close(home)


def delete(name: str) -> bool:
    """Remove a named namespace; False when it was already gone."""
    p = path(name)
    if not os.path.exists(p):
        return False
    if _libc.umount2(p.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL,):
        _check(-1, "umount", name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(p)
    crashpoint.step(f"namespace {name} deleted")
    return True


def write_net_sysctls(items: list[tuple[str, str]]) -> None:
    """Write sysctls under net/ of the current thread's namespace, (key, value) pairs.

    /proc/sys/net is looked up once for them all: the lookup walks an entry per namespace
    that opened the name, so with hundreds of namespaces each one costs.
    """
    net = os.open("/proc/sys/net", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for key, value in items:
            if not key.startswith("net/"):
                raise ValueError(f"not a net/ sysctl: {key}")
            fd = os.open(key.removeprefix("net/"), os.O_WRONLY, dir_fd=net)
            try:
                os.write(fd, str(value).encode())
            finally:
                os.close(fd)
    finally:
        os.close(net)


ETC_NETNS = "/etc/netns"  # `ip netns exec NAME` mounts /etc/netns/NAME/* over /etc/*
# in /etc/netns when labnet made it: the last lab's `down` removes it, whichever lab made it
ETC_MARK = os.path.join(ETC_NETNS, ".labnet")


def etc_paths(name: str, filename: str) -> list[str]:
    """What write_etc() would create: the directories still missing, then the file (a lab
    records them before writing, so a crash in between leaves nothing unrecorded)."""
    missing = [d for d in (ETC_NETNS, os.path.join(ETC_NETNS, name)) if not os.path.isdir(d)]
    return missing + [os.path.join(ETC_NETNS, name, filename)]


def write_etc(name: str, filename: str, text: str) -> None:
    """A file that `ip netns exec` (and a container of the namespace) sees in /etc."""
    try:
        os.makedirs(ETC_NETNS)
    except FileExistsError:  # there already (another lab's, or the machine's own)
        pass
    else:
        open(ETC_MARK, "w").close()
    os.makedirs(os.path.join(ETC_NETNS, name), exist_ok=True)
    with open(os.path.join(ETC_NETNS, name, filename), "w") as f:
        f.write(text)


def remove_etc(paths: list[str]) -> None:
    """Remove what write_etc() created, newest first; a directory only once empty."""
    for target in reversed(paths):
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(target) if os.path.isdir(target) else os.unlink(target)
    with contextlib.suppress(FileNotFoundError, OSError):  # labnet's, and nothing left in it
        if os.listdir(ETC_NETNS) == [os.path.basename(ETC_MARK)]:
            os.unlink(ETC_MARK)
            os.rmdir(ETC_NETNS)


def inode(name: str) -> int:
    return os.stat(path(name)).st_ino


def pids_inside(name: str) -> list[int]:
    """Processes whose network namespace is `name` (alive or not yet reaped)."""
    return pids_by_namespace([name])[name]


def pids_by_namespace(names: list[str]) -> dict[str, list[int]]:
    """name -> the processes inside it, from one pass over /proc (a lab has hundreds)."""
    wanted: dict[tuple[int, int], str] = {}
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(path(name))
            wanted[(st.st_dev, st.st_ino)] = name
    found: dict[str, list[int]] = {name: [] for name in names}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            st = os.stat(f"/proc/{entry}/ns/net")
            name = wanted.get((st.st_dev, st.st_ino))
            if name is not None:
                found[name].append(int(entry))
    return found


def enter_for_good(name: str) -> None:
    """Move the calling thread into `name` for the rest of its life (forked daemons)."""
    fd = os.open(path(name), os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)
