"""One long-lived, already sandboxed child that forks the children running drafts' code.

Entering the kernel sandbox (:mod:`.sandbox`) costs a child ~0.9 ms of CPU (new user and
mount namespaces, the new root's mounts, pivot_root) plus their teardown at exit: about
1.3 ms a draft, +27% on the 4.9 ms a draft's child costs, measured with
``bench/quality_overhead.py --exec-only``. Done once here instead, each draft's child is a
fork of this server, already inside; it only installs the seccomp filter (~0.09 ms).

The server is forked from the process that runs drafts (on first use; again after that
process forks, e.g. a calibration's workers, or if it died). It sheds what the parent
had (file descriptors, environment), enters the sandbox without the filter, and then
only answers requests on a Unix socket pair: a pickled program and two pipe ends (the
child's result, its exit status), answered with the child's pid. Nothing of a draft runs
in the server itself. It exits when the parent's end of the socket closes.
"""

from __future__ import annotations

import atexit
import os
import pickle
import socket
import struct
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from . import sandbox

__all__ = ["Spawned", "cpu_seconds", "spawn"]

_MAX_REQUEST = 4 * 1024 * 1024  # a larger program is run by a child of our own


@dataclass(frozen=True)
class Spawned:
    """A draft's child started by the server: its pid (ours to kill, not to wait for),
    the read end of its result pipe, and the pipe its exit status arrives on."""

    pid: int
    result_fd: int
    status_fd: int

    def status(self, timeout: float = 5.0) -> int | None:
        """The child's wait status once the server reaped it (None: the server is gone)."""
        import select

        try:
            ready, _, _ = select.select([self.status_fd], [], [], timeout)
            data = os.read(self.status_fd, 4) if ready else b""
        finally:
            os.close(self.status_fd)
        return struct.unpack("=i", data)[0] if len(data) == 4 else None


@dataclass
class _Server:
    pid: int
    control: socket.socket
    owner: int  # the process that started it (a fork of that process starts its own)
    proc: Any = None  # the Popen of a server started as a fresh interpreter


_lock = threading.Lock()
_server: _Server | None = None
_failed_in: int | None = None  # the process in which starting it failed: not tried again


def spawn(program: Any, child: Callable[..., None], args: tuple[Any, ...]) -> Spawned | None:
    """Have the server fork a child running ``child(program, result_fd, *args)``, inside
    the sandbox (``child`` must :func:`.sandbox.seal` itself before running a draft).
    ``child`` and ``args`` are the ones given when the server started (they describe the
    server's own state: its modules, its memory). None: no server here (no kernel sandbox,
    or the program too large): the caller runs the child itself."""
    payload = pickle.dumps(program)
    if len(payload) > _MAX_REQUEST:
        return None
    rfd, wfd = os.pipe()
    sfd_r, sfd_w = os.pipe()
    spawned = None
    try:
        with _lock:
            for _ in range(2):  # once more with a fresh server if the old one died
                server = _current(child, args)
                if server is None:
                    break
                try:
                    socket.send_fds(server.control, [payload], [wfd, sfd_w])
                    reply = server.control.recv(8)
                except OSError:
                    reply = b""
                if len(reply) == 4:
                    spawned = Spawned(struct.unpack("=i", reply)[0], rfd, sfd_r)
                    break
                _stop(server)
    finally:
        os.close(wfd)
        os.close(sfd_w)
        if spawned is None:
            os.close(rfd)
            os.close(sfd_r)
    return spawned


def cpu_seconds() -> float:
    """CPU time of this process's server and the children it has reaped (user + system,
    from /proc; 0 without a server): what a benchmark must add, since those children are
    not ours to wait for."""
    server = _server
    if server is None or server.owner != os.getpid():
        return 0.0
    try:
        with open(f"/proc/{server.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def _current(child: Callable[..., None], args: tuple[Any, ...]) -> _Server | None:
    global _server, _failed_in
    me = os.getpid()
    if _server is not None and _server.owner == me:
        return _server
    if _failed_in == me or not sandbox.support().available:
        return None
    _server = _start(child, args)
    if _server is None:
        _failed_in = me
    return _server


def _stop(server: _Server) -> None:
    global _server
    with suppress(OSError):
        server.control.close()
    with suppress(ChildProcessError, OSError):
        server.proc.wait() if server.proc is not None else os.waitpid(server.pid, 0)
    _server = None


def _start(child: Callable[..., None], args: tuple[Any, ...]) -> _Server | None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MAX_REQUEST + 65536)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the server never returns
        code = 1
        try:
            ours.close()
            os.close(ready_r)
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            keep = sorted((theirs.fileno(), ready_w))
            os.closerange(3, keep[0])
            os.closerange(keep[0] + 1, keep[1])
            os.closerange(keep[1] + 1, 65536)
            os.environ.clear()
            sandbox.enter(sealed=False)
            os.write(ready_w, b"ok")
            os.close(ready_w)
            _serve(theirs, child, args)
            code = 0
        except BaseException:  # the parent sees no "ok" and runs its own children
            pass
        finally:
            os._exit(code)
    theirs.close()
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as fh:
        ok = fh.read(2) == b"ok"
    if not ok:
        ours.close()
        os.waitpid(pid, 0)
        return start_fresh()
    server = _Server(pid, ours, os.getpid())
    atexit.register(_exit, server)
    return server


def start_fresh() -> _Server | None:
    """The server as a fresh interpreter, where a fork of this process cannot enter the
    sandbox: a library's at-fork hook starts a thread in every forked child (measured:
    OpenTelemetry's BatchSpanProcessor; unshare(CLONE_NEWUSER) then fails with EINVAL).
    ~0.13 s once. Kept as this process's server; None if it does not start."""
    import subprocess
    import sys

    global _server
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MAX_REQUEST + 65536)
    env = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}  # no keys, nothing else
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cascadeflow_cli.quality.fork_server", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, cwd="/", start_new_session=True,
        )  # fmt: skip
    except OSError:
        ours.close()
        theirs.close()
        return None
    theirs.close()
    assert proc.stdout is not None
    ok = proc.stdout.read(2) == b"ok"
    proc.stdout.close()
    if not ok:
        ours.close()
        proc.wait()
        return None
    _server = _Server(proc.pid, ours, os.getpid(), proc)
    atexit.register(_exit, _server)
    return _server


def _main(argv: list[str]) -> None:
    """``python -m cascadeflow_cli.quality.fork_server FD``: the fresh server."""
    import doctest  # noqa: F401 - loaded once, for every draft's child
    import resource  # noqa: F401
    import sys

    from . import code_exec

    control = socket.socket(fileno=int(argv[1]))
    args = (code_exec._spawn_aliases(), "seal", code_exec._mapped_bytes() + code_exec.MEMORY_MB * 1024 * 1024)
    sandbox.enter(sealed=False)
    sys.stdout.buffer.write(b"ok")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    _serve(control, code_exec._child, args)


def _exit(server: _Server) -> None:
    """At our exit: the server sees its socket close, exits, and is reaped by us."""
    if server.owner == os.getpid() and _server is server:
        _stop(server)


def _serve(control: socket.socket, child: Callable[..., None], args: tuple[Any, ...]) -> None:
    """The server's loop: fork a child per request, report each child's wait status."""
    import select
    import signal

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    statuses: dict[int, int] = {}  # child pid -> the pipe its status goes to
    while True:
        ready, _, _ = select.select([control, wake_r], [], [])
        if wake_r in ready:
            with suppress(BlockingIOError):
                os.read(wake_r, 4096)
        while statuses:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            fd = statuses.pop(pid, None)
            if fd is not None:
                with suppress(OSError):
                    os.write(fd, struct.pack("=i", status))
                os.close(fd)
        if control not in ready:
            continue
        msg, fds, _, _ = socket.recv_fds(control, _MAX_REQUEST, 2)
        if not msg:
            return  # the parent is gone
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            control.send(b"")
            continue
        result_fd, status_fd = fds
        program = pickle.loads(msg)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the draft's child never returns
            os.close(wake_r)
            os.close(wake_w)
            os.close(status_fd)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            child(program, result_fd, *args)
            os._exit(1)
        os.close(result_fd)
        statuses[pid] = status_fd
        control.send(struct.pack("=i", pid))


if __name__ == "__main__":  # pragma: no cover - the fresh server (start_fresh)
    import sys

    _main(sys.argv)
