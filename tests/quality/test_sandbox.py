"""The kernel sandbox around a draft's code (quality/sandbox.py): each escape a draft can
make past the Python-level guards of code_exec (which a draft can switch off from inside:
its audit hook is a Python function it can reach) works without the kernel sandbox and
fails inside it, for root and for an unprivileged user; where namespaces are unavailable
the child runs as it did before."""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cascadeflow_cli.quality import fork_server, sandbox
from cascadeflow_cli.quality.code_exec import program_of, run_program
from tests.conftest import no_user_namespaces

pytestmark = pytest.mark.skipif(
    not sandbox.support().available, reason=f"no kernel sandbox here: {sandbox.support().reason}"
)

# What a hostile draft does first: neuter code_exec's audit hook (a Python function the
# draft can reach through sys.modules), then use ctypes at will.
ESCAPE = (
    "import sys\n"
    "sys.modules['cascadeflow_cli.quality.code_exec']._audit.__code__ = (lambda event, args: None).__code__\n"
    "import ctypes, errno\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
)


def escaped(body: str, *, kernel: bool) -> bool:
    """Whether ``body`` (statements ending in ``return <truthy on success>``) succeeded in
    the child: the draft claims True, so a claim that holds is an escape that worked."""
    lines = "".join(f"        {line}\n" for line in body.strip().splitlines())
    text = (
        f"```python\n{ESCAPE}\ndef attempt():\n    try:\n{lines}    except Exception:\n"
        "        return False\n```\n```python\nprint(attempt())  # True\n```\n"
    )
    result = run_program(program_of(text), kernel_sandbox=kernel)
    assert result.ran and result.claims == 1, result
    return result.claims_failed == 0


def forks_can_unshare() -> bool:
    """Whether a plain fork of this process can make a user namespace: not once a library
    loaded by an earlier test (OpenTelemetry's BatchSpanProcessor) starts a thread in every
    forked child; the sandbox then uses a fresh server (see the last test), but a child
    entering it by itself, a setuid fork or a fork with a limit cannot."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reported by the exit status
        os._exit(0 if ctypes.CDLL(None).unshare(sandbox.CLONE_NEWUSER) == 0 else 1)
    return os.waitpid(pid, 0)[1] == 0


def threaded_forks(test: Callable[..., None]) -> Callable[..., None]:
    """A test that needs a plain fork of this process to make a user namespace: in a worker
    whose forks start threads (an earlier test loaded OpenTelemetry), it runs again in a
    fresh interpreter instead, so it is never skipped for want of one."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        if forks_can_unshare():
            test(*args, **kwargs)
            return
        node = os.environ["PYTEST_CURRENT_TEST"].rsplit(" (", 1)[0]
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", node],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
        ran = done.returncode == 0 and "1 passed" in done.stdout and "skipped" not in done.stdout
        assert ran, done.stdout[-4000:] + done.stderr[-2000:]

    return run


ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """A directory under /tmp that an unprivileged user may read (tmp_path is root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="cascade-sandbox-"))
    path.chmod(0o777)
    return path


def read_secret(secret: Path) -> str:
    return f"return open({str(secret)!r}).read() == 's3cret'"


def read_secret_natively(secret: Path) -> str:
    return (
        f"fd = libc.open({str(secret).encode()!r}, 0)\nbuf = ctypes.create_string_buffer(16)\n"
        "return fd >= 0 and libc.read(fd, buf, 16) == 6"
    )


def delete(victim: Path) -> str:
    return f"return libc.unlink({str(victim).encode()!r}) == 0"


def create_dir(made: Path) -> str:
    return f"return libc.mkdir({str(made).encode()!r}, 0o755) == 0"


def create_file(path: Path) -> str:
    return f"fd = libc.open({str(path).encode()!r}, 0o101, 0o644)\nreturn fd >= 0"  # O_WRONLY | O_CREAT


def other_fds() -> str:
    """Open descriptors besides stdin/out/err and the result pipe: none, or the draft could
    reach what they lead to (the fork server's control socket above all)."""
    return "return sum(libc.fcntl(fd, 1) != -1 for fd in range(3, 4096)) > 1"  # F_GETFD


def connect(port: int) -> str:
    # struct sockaddr_in: family, port (network order), 127.0.0.1
    return (
        "fd = libc.socket(2, 1, 0)\n"
        f"addr = (2).to_bytes(2, 'little') + ({port}).to_bytes(2, 'big')\n"
        "addr += bytes([127, 0, 0, 1]) + bytes(8)\n"
        "return fd >= 0 and libc.connect(fd, addr, 16) == 0"
    )


def kill(pid: int) -> str:
    return f"return libc.kill({pid}, 15) == 0"


def fork() -> str:
    return "pid = libc.fork()\nif pid == 0:\n    libc._exit(0)\nreturn pid > 0"


def listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.5)
    return server


def accepted(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
        return True
    except TimeoutError:
        return False


def check_escapes(kernel: bool) -> dict[str, bool]:
    """Every escape, run once; what happened, as seen in the child and from outside."""
    where = shared_dir()
    secret, victim, made = where / "secret.txt", where / "victim.txt", where / "made"
    secret.write_text("s3cret")
    victim.write_text("data")
    for f in (secret, victim):
        f.chmod(0o666)
    server = listener()
    sibling = subprocess.Popen(["sleep", "30"])
    try:
        seen = {
            "read": escaped(read_secret(secret), kernel=kernel),
            "read natively": escaped(read_secret_natively(secret), kernel=kernel),
            "delete": escaped(delete(victim), kernel=kernel) and not victim.exists(),
            "create": escaped(create_dir(made), kernel=kernel) and made.exists(),
            "connect": escaped(connect(server.getsockname()[1]), kernel=kernel) and accepted(server),
            "fork": escaped(fork(), kernel=kernel),
        }
        # a file in a directory the sandbox does show (the interpreter's site-packages)
        site = Path(sysconfig.get_paths()["purelib"])
        planted = site / f"cascade-sandbox-{os.getpid()}.txt"
        if os.access(site, os.W_OK):
            seen["write a shown dir"] = escaped(create_file(planted), kernel=kernel) and planted.exists()
            planted.unlink(missing_ok=True)
        seen["kill"] = escaped(kill(sibling.pid), kernel=kernel)
        seen["kill"] = seen["kill"] and sibling.wait(timeout=5) == -signal.SIGTERM
    finally:
        sibling.kill()
        sibling.wait()
        server.close()
        shutil.rmtree(where, ignore_errors=True)  # /tmp, not tmp_path: nothing else removes it
    return seen


@pytest.mark.parametrize("where", ["fork server", "own child"])
@threaded_forks
def test_every_escape_works_without_the_kernel_sandbox_and_none_inside_it(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if where == "own child":  # a program too large for the server: the child enters it itself
        monkeypatch.setattr(fork_server, "_MAX_REQUEST", 0)
    before = check_escapes(kernel=False)
    assert all(before.values()), before  # the guards a draft can switch off do not hold
    after = check_escapes(kernel=True)
    assert not any(after.values()), after


def test_a_fork_server_that_died_is_replaced() -> None:
    good = "```python\ndef f():\n    return 1\n```\n```python\nprint(f())  # 1\n```\n"
    assert run_program(program_of(good)).claims_failed == 0
    server = fork_server._server
    assert server is not None and server.owner == os.getpid()
    os.kill(server.pid, signal.SIGKILL)
    result = run_program(program_of(good))
    assert (result.ran, result.claims, result.claims_failed) == (True, 1, 0)
    assert fork_server._server is not None and fork_server._server.pid != server.pid


def test_the_draft_holds_no_descriptor_but_its_result_pipe() -> None:
    assert not escaped(other_fds(), kernel=True)


def test_the_user_s_home_the_ledger_and_temp_files_are_not_there() -> None:
    text = (
        "```python\nimport os\n"
        "print([os.path.exists(p) for p in ('/root', '/home', '/tmp', '/proc', '/work', '/var', '/run', "
        f"{os.path.expanduser('~')!r}, {os.getcwd()!r})])  # [False] * 9\n```\n"
    )
    # the interpreter's own directories are bound in, so compare what is visible
    result = run_program(program_of(text.replace("# [False] * 9", "# " + repr(expected_visible()))))
    assert (result.claims, result.claims_failed) == (1, 0)


def expected_visible() -> list[bool]:
    """/root (or $HOME) is there only as the parent of a bound Python directory."""
    sources = sandbox.bind_sources()[0]
    paths = ["/root", "/home", "/tmp", "/proc", "/work", "/var", "/run", os.path.expanduser("~"), os.getcwd()]
    return [any(s == p or s.startswith(p.rstrip("/") + "/") for s in sources) for p in paths]


def test_the_draft_s_ordinary_work_still_runs_inside_it() -> None:
    text = (
        "```python\nimport heapq, collections, fractions, decimal, json, threading\n"
        "def top(xs, k):\n    return heapq.nlargest(k, xs)\n"
        "t = threading.Thread(target=lambda: None)\nt.start()\nt.join()\n```\n"
        "```python\nprint(top([3, 1, 4, 1, 5], 2))  # [5, 4]\n"
        "print(collections.Counter('abca')['a'])  # 2\n```\n"
    )
    result = run_program(program_of(text))
    assert (result.claims, result.claims_failed, result.def_error) == (2, 0, False)


def in_child(job: Callable[[], object], *, setup: Callable[[], None]) -> object:
    """``job()``'s repr, computed in a forked process after ``setup()`` (a setuid, a limit)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reported through the pipe
        try:
            setup()
            sandbox.support.cache_clear()  # probed again, as this user / with this limit
            os.write(wfd, repr(job()).encode())
        except BaseException as exc:
            os.write(wfd, f"error {exc!r}".encode())
        finally:
            os._exit(0)
    os.close(wfd)
    out = b""
    while chunk := os.read(rfd, 65536):
        out += chunk
    os.close(rfd)
    os.waitpid(pid, 0)
    return out.decode()


def become_nobody() -> None:
    # what run_program imports before its fork, loaded while the interpreter's files can be
    # read: this machine's Python lives under /root (pyenv), which nobody may not read
    import doctest  # noqa: F401
    import resource  # noqa: F401

    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    # a setuid leaves the process non-dumpable (its /proc files root's); a user's own
    # process, started by a login, is dumpable
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE


@threaded_forks
@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become an unprivileged user")
def test_an_unprivileged_user_gets_the_same_sandbox() -> None:
    def job() -> object:
        before = check_escapes(kernel=False)
        return (os.getuid(), sandbox.support().available, before, check_escapes(kernel=True))

    seen = in_child(job, setup=become_nobody)
    uid, available, before, after = eval(seen)
    assert uid == 65534 and available
    # nobody may not read /proc/<root's pid>, so the kill of root's sibling fails outside too
    assert all(v for k, v in before.items() if k != "kill"), before
    assert not any(after.values()), after


@threaded_forks
def test_where_namespaces_are_unavailable_the_child_runs_as_before() -> None:
    def job() -> object:
        return (sandbox.support(), check_escapes(kernel=True))

    seen = in_child(job, setup=no_user_namespaces)
    assert "available=False" in seen and "max_user_namespaces" in seen, seen
    assert "'read': True" in seen and "'connect': True" in seen  # the code still ran, unsandboxed


def test_the_filter_is_valid_bpf_for_each_architecture() -> None:
    for arch in sandbox._ARCHES.values():
        code = sandbox._filter(arch)
        assert len(code) % 8 == 0 and len(code) // 8 < 4096
    assert sys.platform != "linux" or sandbox.support().available


def threads_after_fork() -> None:
    """What a library such as OpenTelemetry's BatchSpanProcessor does: an at-fork hook that
    starts a thread in every forked child (which then cannot unshare a user namespace)."""
    import threading
    import time

    def sleeper() -> None:
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()

    os.register_at_fork(after_in_child=sleeper)


def test_a_process_whose_forks_start_threads_gets_a_fresh_server() -> None:
    def job() -> object:
        found = sandbox.support()
        server = fork_server._server
        fresh = server is not None and server.owner == os.getpid() and server.proc is not None
        return (found.available, fresh, check_escapes(kernel=True))

    available, fresh, after = eval(in_child(job, setup=threads_after_fork))
    assert available and fresh
    assert not any(after.values()), after
