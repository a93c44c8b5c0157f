"""Run ``python -m cascadeflow_cli ARGS`` as a real process, forked from a warm parent.

Most CLI tests run the real entry point in a real process: their own pid, fds, exit code,
signals and ``atexit``, a fresh copy of every module's state. Spawning a new interpreter for
each one spent most of the suite's time importing the same libraries again (typer, rich
and our own package: about 0.4 s of CPU per run here). This module starts one
*zygote* per test process that imports those once and then, per run, ``fork()``s a child
that sets up the requested argv, cwd, environment and stdio and executes
``cascadeflow_cli`` as ``__main__``, exactly as ``python -m`` does. The zygote never runs
a command itself, so no cache, connection or config is shared between runs: each child
starts from the state of a process that has only imported modules.

What a fork cannot reproduce is the interpreter's own start-up: a run whose environment
changes a ``PYTHON*``, ``LANG`` or ``LC_*`` variable is spawned the ordinary way, and
``CASCADE_TEST_SPAWN=1`` spawns every run (to check that both ways agree).
Start-up itself (what a command imports) is tested with real spawns in
tests/cli/test_startup.py.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import locale
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# What the commands import anyway (measured: most of a run's start-up). Imports only: the
# zygote never runs a command. Libraries that commands import lazily and that read their
# environment when imported (numpy's BLAS threads, litellm's price map, OpenTelemetry,
# the server stack, psycopg) are left to each child, as in a real start.
PRELOAD = """
import importlib, pkgutil, sys
import rich.console, rich.table, rich.text, http.client
import cascadeflow_cli.cli, cascadeflow_cli.usecases, cascadeflow_cli.engine.cascade
import cascadeflow_cli.ledger.db
for package in (cascadeflow_cli.cli, cascadeflow_cli.usecases):
    for found in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(found.name)
LAZY = ("numpy", "litellm", "opentelemetry", "psycopg", "onnxruntime", "tokenizers", "starlette", "uvicorn",
        "httpx", "openai", "cascadeflow_cli.quality.model")
loaded = [name for name in LAZY if name in sys.modules]
if loaded:
    sys.exit(f"the preload imported what commands load lazily: {loaded}")
"""
_STARTUP_VARS = ("PYTHON", "LANG", "LC_")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def _startup_env(env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_STARTUP_VARS)}


class ForkServer:
    """One zygote process; ``run`` forks a child of it per command."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="cascade-fork-")
        self._socket = os.path.join(self._dir, "zygote.sock")
        self._env = _startup_env(os.environ)
        self._proc = subprocess.Popen(
            [sys.executable, __file__, self._socket, PRELOAD],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self._ready = False

    def usable_for(self, env: dict[str, str]) -> bool:
        return os.environ.get("CASCADE_TEST_SPAWN") != "1" and _startup_env(env) == self._env

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + 60
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the zygote exited: {self._proc.stderr.read().decode()!r}")  # type: ignore[union-attr]
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self._socket)
                self._ready = True
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if self._ready or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def run(self, argv: list[str], *, cwd: Path, env: dict[str, str], input: str | None,
            timeout: float) -> Result:
        encoding = locale.getpreferredencoding(False)
        with tempfile.TemporaryDirectory(dir=self._dir) as tmp:
            stdin_path = None
            if input is not None:
                stdin_path = os.path.join(tmp, "stdin")
                Path(stdin_path).write_bytes(input.encode(encoding))
            out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            request = {"argv": argv, "cwd": str(cwd), "env": env, "stdin": stdin_path,
                       "stdout": out, "stderr": err}
            with self._connect() as sock:
                sock.sendall(json.dumps(request).encode() + b"\n")
                sock.settimeout(timeout)
                reader = sock.makefile("r")
                pid = int(reader.readline())
                try:
                    code = int(reader.readline())
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(argv, timeout) from None
            return Result(code, _text(Path(out).read_bytes(), encoding),
                          _text(Path(err).read_bytes(), encoding))

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait()
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _text(data: bytes, encoding: str) -> str:
    """As ``subprocess.run(text=True)`` decodes: strict, universal newlines."""
    return data.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")


_server: ForkServer | None = None


def server() -> ForkServer:
    global _server
    if _server is None:
        _server = ForkServer()
        atexit.register(_server.close)
    return _server


# ---- the zygote (this file run as a script) --------------------------------------------


def _serve(path: str) -> dict[str, object]:
    """Accept requests forever; return (in a forked child only) the request it must run."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    waiting: dict[int, socket.socket] = {}
    while True:
        ready, _, _ = select.select([listener, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid)
            with contextlib.suppress(OSError):  # the client gave up (its timeout)
                conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            conn.close()
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        line = b""
        while not line.endswith(b"\n"):
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            line += chunk
        if not line.endswith(b"\n"):
            conn.close()
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: leave the zygote's loop, signals and sockets behind
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for sock in (listener, conn, *waiting.values()):
                sock.close()
            os.close(wake_r)
            os.close(wake_w)
            return request
        waiting[pid] = conn
        conn.sendall(f"{pid}\n".encode())


def _become(request: dict[str, object]) -> None:
    """Turn this forked child into ``python -m cascadeflow_cli ARGV`` in ``cwd``."""
    cwd = str(request["cwd"])
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[arg-type]
    for fd, name, flags in ((0, "stdin", os.O_RDONLY),
                            (1, "stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, "stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        target = request[name] or os.devnull
        opened = os.open(str(target), flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.path[0] = cwd  # as `python -m` puts the working directory first
    sys.argv = ["-m", *request["argv"]]  # type: ignore[misc]


if __name__ == "__main__":
    sys.path[0] = os.getcwd()
    exec(sys.argv[2])  # the preload: imports only, no command runs here
    job = _serve(sys.argv[1])
    _become(job)
    del job
    import runpy

    runpy.run_module("cascadeflow_cli", run_name="__main__", alter_sys=True)
