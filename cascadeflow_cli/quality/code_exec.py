"""Run a draft's Python against the draft's OWN examples, in a sandboxed child process.

``[quality] execute_code`` (``cascade calibrate --execute-code/--no-execute-code``); unset,
on exactly where the kernel sandbox (:mod:`.sandbox`) is available: model code is
untrusted, so it never runs in our process. What it measures is general, not tied to any
benchmark: does the code the answer gives define without raising, do the usage examples
the answer shows run, and do the outputs the answer CLAIMS (``>>> f(2)`` / ``4``,
``print(f(2))  # Output: 4``, ``f(2)  # returns 4``) match what the code actually
produces. An answer whose own examples contradict its code is wrong far more often than
one whose examples hold.

The child keeps nothing of ours (it never returns into our code; its only channel back is
a pipe carrying a few counts):

* the kernel sandbox where available (:mod:`.sandbox`: namespaces, a read-only root with
  only the interpreter's files, no capabilities, a seccomp filter; set up once in a fork
  server, :mod:`.fork_server`, whose children the drafts run in): the boundary;
* every inherited file descriptor closed, stdin/stdout/stderr on /dev/null, the
  environment emptied (no API keys), its own session, ``/`` as cwd;
* resource limits: CPU seconds, address space, no file writes (``RLIMIT_FSIZE`` 0), no
  core dumps; a wall-clock timeout after which the parent kills it, a CPU-time alarm per
  block (and a wall-clock one);
* an audit hook installed before the draft runs refuses sockets, subprocesses, exec,
  fork, file writes/removal/renames, ``ctypes``, ``sqlite3``, ``mmap`` and new limits.

Without the kernel sandbox the last three are all there is, and they are no security
boundary (a draft can switch the audit hook off: it is a Python function it can reach;
tests/quality/test_sandbox.py does, then reads and deletes files, connects, kills, forks):
they keep a model's honest mistakes from touching anything. Hence opt-in there.

Pure parsing (:func:`program_of`, in :mod:`.code_claims`: every form of claim read) is
separate from the shell (:func:`run_program`); the
feature the calibrated model reads is :attr:`ExecResult.failed_share` (``exec_failed_share``
in :mod:`.features`). POSIX only (it forks); elsewhere nothing runs and the result says so.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Sequence
from contextlib import suppress as contextlib_suppress
from dataclasses import dataclass

from .code_claims import Program, block_claims, program_of

__all__ = ["ExecResult", "Program", "program_of", "run_program", "run_programs"]

TIMEOUT_S = 3.0  # wall clock for the whole child
CPU_S = 2  # CPU seconds for the whole child
# Per block, so one endless loop does not hide the others: CPU time (ITIMER_PROF), so what
# a block may compute does not depend on the machine's load or how many drafts run at once
# (a calibration's workers and serve's slots give the same result as one at a time), plus
# a wall-clock backstop for a block that waits (a sleep). 0.25 s of CPU is ~20x the slowest
# finite draft of the MBPP/GSM8K dev sets (13.9 ms for a whole draft, 211 with Python); the
# drafts past it spin for good (2 of 211: a loop that never advances, an O(n^3) search), and
# at 1 s each they were ~11 of the 15 CPU-s of `calibrate --execute-code` on 5,000 rows.
PER_BLOCK_CPU_S = 0.25
PER_BLOCK_S = 1.0
MEMORY_MB = 512
# children running at once in this process (threads of `cascade serve` / `batch`): each
# is CPU-bound, so more than the cores this process may use only makes every one slower
SLOTS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
_slots = threading.BoundedSemaphore(SLOTS)


@dataclass(frozen=True)
class ExecResult:
    """What running one draft's Python showed (all zero / False: nothing was run)."""

    ran: bool = False
    def_error: bool = False  # a block defining functions or classes raised (or timed out)
    example_error: int = 0  # example blocks / doctest lines that raised
    claims: int = 0  # outputs the answer claims for its examples
    claims_failed: int = 0  # ... that the code does not produce (raised, or never finished)
    timeout: bool = False
    calls_undefined: bool = False  # an example calls a name the code never defines

    @property
    def failed_share(self) -> float:
        """Share of the answer's claimed outputs its own code contradicts or never produces
        (out of time: a draft that never finishes is not one whose claims hold; 0 without claims)."""
        return self.claims_failed / self.claims if self.claims else 0.0


# ------------------------------------------------------------------ the child process

# Audit events refused inside the child (prefixes): no network, no processes, no changes
# to files, no native code, no way to lift the limits.
_BLOCKED = (
    "socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
    "os.fork", "os.forkpty", "os.remove", "os.rename", "os.rmdir", "os.mkdir",
    "os.unlink", "os.link", "os.symlink", "os.truncate", "os.chmod", "os.chown",
    "os.kill", "os.killpg", "os.putenv", "os.unsetenv", "shutil.", "ctypes.",
    "resource.setrlimit", "resource.prlimit", "sys.addaudithook", "os.chdir", "os.utime",
    "pty.", "webbrowser.", "urllib.", "http.", "ftplib.", "smtplib.", "sqlite3.", "mmap.",
)  # fmt: skip


# /proc files that still show what the child shed: the environment block the process was
# started with (os.environ.clear() does not touch it: measured, an API key set before
# start was readable there) and the memory of the process
_PROC_SECRET_RE = re.compile(r"^/proc/[^/]+/(?:task/[^/]+/)?(?:environ|mem)$")
# native modules whose process creation raises no audit event (_posixsubprocess.fork_exec
# started /bin/sh from a draft past the hook before this list): not importable afresh
_NATIVE_SPAWN = ("_posixsubprocess",)


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open":
        mode = args[1] if len(args) > 1 else "r"
        flags = args[2] if len(args) > 2 else 0
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        ):
            raise PermissionError("sandbox: no file writes")
        path = args[0] if args else None
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if isinstance(path, str) and _PROC_SECRET_RE.match(os.path.normpath(path)):
            raise PermissionError("sandbox: no process environment or memory")
    elif event == "import" and args and args[0] in _NATIVE_SPAWN:
        raise PermissionError(f"sandbox: import {args[0]}")
    elif event.startswith(_BLOCKED):
        raise PermissionError(f"sandbox: {event}")


_ALIASES: tuple[int, list[tuple[str, str]]] = (-1, [])


def _spawn_aliases() -> list[tuple[str, str]]:
    """(module, name) of every unaudited process-creation entry point the loaded modules
    hold (the native module's own and any alias, e.g. subprocess's). Found in the parent,
    before the fork, and kept until more modules load: the child then deletes just these
    instead of reading every module's namespace, which touched (and so copied, after the
    fork) the pages of every module-level object (measured with numpy loaded, a two-block
    draft: child CPU 6.6-7.3 ms -> 1.7 ms, wall 17-29 ms -> 4-6 ms at load 5)."""
    global _ALIASES
    if _ALIASES[0] == len(sys.modules):
        return _ALIASES[1]
    native = [sys.modules[name] for name in _NATIVE_SPAWN if name in sys.modules]
    entries = {id(getattr(m, "fork_exec", None)) for m in native} - {id(None)}
    found: list[tuple[str, str]] = []
    if entries:
        for name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if isinstance(namespace, dict):
                found.extend((name, k) for k, v in list(namespace.items()) if id(v) in entries)
    _ALIASES = (len(sys.modules), found)
    return found


def _disarm(aliases: list[tuple[str, str]]) -> None:
    """In the child: drop the entry points :func:`_spawn_aliases` found, so a draft finds
    none of them; a fresh import is refused by :func:`_audit`."""
    for module_name, key in aliases:
        namespace = getattr(sys.modules.get(module_name), "__dict__", None)
        if isinstance(namespace, dict):
            namespace.pop(key, None)


class _Alarm(BaseException):
    """A block ran past its time (raised from SIGALRM / SIGPROF, not catchable as Exception)."""


def _norm(text: str) -> tuple[str, object]:
    import ast

    s = str(text).strip().rstrip(".,;").strip("`").strip()
    try:
        value = ast.literal_eval(s)
    except Exception:
        value = s
    if isinstance(value, str):  # a quoted string and the same text printed are one claim
        return ("s", " ".join(value.strip().rstrip(".,;").replace("'", '"').split()))
    return ("v", value)


def _same(got: str, want: str) -> bool:
    a, b = _norm(got), _norm(want)
    if a[0] == b[0] == "v":
        x, y = a[1], b[1]
        try:
            if x == y:
                return True
            return (
                isinstance(x, float) and isinstance(y, int | float) and abs(x - y) <= 1e-6 * max(1.0, abs(y))
            )
        except Exception:
            return False
    return a[1] == b[1] or (a[0] == "v" and repr(a[1]) == b[1])


class _Capped:
    """A stdout that keeps the first 100,000 characters (a draft printing in a loop must
    not fill the child's memory) and drops the rest."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        if self.size < 100_000:
            self.parts.append(text[: 100_000 - self.size])
            self.size += len(self.parts[-1])
        return len(text)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self.parts)


def _execute(program: Program, aliases: list[tuple[str, str]] | None = None) -> dict[str, object]:
    """Run the blocks in one namespace (in the sandboxed child); the counts of what held."""
    import contextlib
    import doctest
    import io
    import signal

    res: dict[str, object] = {
        "def_error": False, "example_error": 0, "claims": 0, "claims_failed": 0,
        "timeout": False, "calls_undefined": False,
    }  # fmt: skip
    g: dict[str, object] = {"__name__": "__draft__"}

    def claim(expr: str, want: str, printed: bool) -> None:
        res["claims"] += 1  # type: ignore[operator]
        try:
            if printed:  # print(a, b) shows "a b"
                try:
                    args = eval(f"({expr},)", g)
                except SyntaxError:  # print(..., sep=...)
                    args = (eval(expr, g),)
                value = args[0] if len(args) == 1 else None
                got = " ".join(map(str, args))
            else:
                value = eval(expr, g)
                got = repr(value)
            ok = _same(got, want) or (
                value is not None and (_same(repr(value), want) or _same(str(value), want))
            )
        except Exception:
            ok = False
        except _Alarm:  # the claimed output never came: not confirmed
            res["claims_failed"] += 1  # type: ignore[operator]
            raise
        if not ok:
            res["claims_failed"] += 1  # type: ignore[operator]

    def alarm(signum: int, frame: object) -> None:
        raise _Alarm

    g["__claim__"] = claim
    signal.signal(signal.SIGALRM, alarm)
    signal.signal(signal.SIGPROF, alarm)
    checker = doctest.OutputChecker()
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    parser = doctest.DocTestParser()
    _disarm(_spawn_aliases() if aliases is None else aliases)
    sys.addaudithook(_audit)  # from here on the draft's rules apply to us too
    printed = ""  # what the last block printed (an output block after it is its claim)
    cut = False  # the last block ran out of time
    for kind, src in program.blocks:
        if kind == "stdout":
            if printed.strip() or cut:  # the output of a block that never finished: unconfirmed
                res["claims"] += 1  # type: ignore[operator]
                res["claims_failed"] += 0 if _same_output(printed, src) else 1  # type: ignore[operator]
            continue
        sink, seen, cut = _Capped(), res["claims"], False
        signal.setitimer(signal.ITIMER_PROF, PER_BLOCK_CPU_S)
        signal.setitimer(signal.ITIMER_REAL, PER_BLOCK_S)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(io.StringIO()):
                if kind != "doctest":
                    exec(compile(src, "<draft>", "exec"), g)
                    continue
                for ex in parser.get_examples(src):
                    want = ex.want.strip()
                    res["claims"] += 1 if want else 0  # type: ignore[operator]
                    buf = io.StringIO()
                    try:
                        with contextlib.redirect_stdout(buf):
                            exec(compile(ex.source, "<draft>", "single"), g)
                        ok = not want or checker.check_output(ex.want, buf.getvalue(), flags)
                        ok = ok or _same(buf.getvalue(), want)
                    except _Alarm:
                        res["claims_failed"] += 1 if want else 0  # type: ignore[operator]
                        raise
                    except BaseException as exc:
                        ok = ex.exc_msg is not None  # an exception the draft said it raises
                        if not ok:
                            res["example_error"] += 1  # type: ignore[operator]
                            res["calls_undefined"] = res["calls_undefined"] or isinstance(exc, NameError)
                    if want and not ok:
                        res["claims_failed"] += 1  # type: ignore[operator]
        except BaseException as exc:
            # the claims the block never reached are not confirmed: a draft that never
            # finishes, or raises before its examples, is not one whose claims all hold
            # (a claim whose own call raises already fails inside __claim__)
            unreached = max(0, block_claims(kind, src) - (res["claims"] - seen))  # type: ignore[operator]
            res["claims"] += unreached  # type: ignore[operator]
            res["claims_failed"] += unreached  # type: ignore[operator]
            if isinstance(exc, _Alarm):
                res["timeout"] = cut = True
            if kind == "def":
                res["def_error"] = True
            else:
                res["example_error"] += 1  # type: ignore[operator]
                res["calls_undefined"] = res["calls_undefined"] or isinstance(exc, NameError)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.setitimer(signal.ITIMER_PROF, 0)
            printed = sink.getvalue()
    return res


def _same_output(printed: str, shown: str) -> bool:
    """Whether a block's printed output is the output block shown after it: the same
    lines up to whitespace, or the same values line by line."""
    got = [ln.strip() for ln in printed.strip().split("\n") if ln.strip()]
    want = [ln.strip() for ln in shown.strip().split("\n") if ln.strip()]
    if " ".join(" ".join(got).split()) == " ".join(" ".join(want).split()):
        return True
    return len(got) == len(want) and all(_same(a, b) for a, b in zip(got, want, strict=True))


def _mapped_bytes() -> int:
    """This process's virtual size (Linux: /proc/self/statm), 0 where unknown."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


# the child's exit status when the kernel sandbox was asked for and could not be entered:
# nothing ran (not a failed draft)
_NO_SANDBOX_EXIT = 86


def _child(
    program: Program, wfd: int, aliases: list[tuple[str, str]], kernel: str, mem: int | None = None
) -> None:
    """In the forked child: shed everything of the parent's, limit, run, report, exit.
    ``kernel``: "enter" the kernel sandbox here, "seal" the one a fork server's child is
    already in (:mod:`.fork_server`), or "" (process limits only). ``mem``: the address
    space allowed (else measured here)."""
    code = 1
    try:
        import resource

        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, wfd)
        os.closerange(wfd + 1, 65536)
        os.environ.clear()  # API keys and the like are the parent's business
        # address space: what the fork already maps (a parent with numpy loaded maps
        # hundreds of MB) plus MEMORY_MB for the draft (read before /proc is gone)
        mem = mem or _mapped_bytes() + MEMORY_MB * 1024 * 1024
        if kernel:
            from . import sandbox  # loaded already (run_program)

            try:  # no /proc, /tmp, $HOME... after this: see there
                sandbox.enter() if kernel == "enter" else sandbox.seal()
            except OSError:
                code = _NO_SANDBOX_EXIT
                return
        os.chdir("/")  # not tempfile.gettempdir(): in a fresh child it probes dirs (~60 ms)
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_S, CPU_S))
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > mem:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        res = _execute(program, aliases)
        os.write(wfd, json.dumps(res).encode())
        code = 0
    except BaseException:
        pass
    finally:
        os._exit(code)


def _run_one(program: Program, kernel: bool) -> ExecResult:
    with _slots:
        return _fork_and_wait(program, kernel)


def _fork_and_wait(program: Program, kernel: bool = False) -> ExecResult:
    import select
    import signal
    import time

    if not hasattr(os, "fork"):
        return ExecResult()  # no sandboxed child on this platform: not measured
    from . import fork_server

    aliases = _spawn_aliases()  # before the fork: see there
    # in the kernel sandbox: a child of the fork server, already inside (~1.2 ms of CPU a
    # draft less than entering it here: see fork_server); else, or without it, our own
    limit = _mapped_bytes() + MEMORY_MB * 1024 * 1024
    spawned = fork_server.spawn(program, _child, (aliases, "seal", limit)) if kernel else None
    if spawned is not None:
        pid, rfd = spawned.pid, spawned.result_fd
    else:
        rfd, wfd = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(rfd)
            os.close(wfd)
            return ExecResult()
        if pid == 0:  # pragma: no cover - the child never returns
            os.close(rfd)
            _child(program, wfd, aliases, "enter" if kernel else "")
        os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([rfd], [], [], left)
            if not ready:
                continue
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        if timed_out:
            with contextlib_suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1] if spawned is None else spawned.status()
    if status is None:  # the server died with it: as if killed
        status = signal.SIGKILL
    if kernel and os.WIFEXITED(status) and os.WEXITSTATUS(status) == _NO_SANDBOX_EXIT and not chunks:
        return ExecResult()  # the sandbox could not be entered: nothing ran
    # a child that never reported (out of time, killed by a limit) confirmed none of its claims
    n = program.claims
    if timed_out:
        return ExecResult(ran=True, timeout=True, def_error=True, claims=n, claims_failed=n)
    try:
        res = json.loads(b"".join(chunks).decode()) if chunks else None
    except ValueError:
        res = None
    if not isinstance(res, dict):  # killed by a limit (CPU, memory) or the draft broke out
        return ExecResult(ran=True, def_error=True, timeout=os.WIFSIGNALED(status), claims=n, claims_failed=n)
    return ExecResult(
        ran=True,
        def_error=bool(res.get("def_error")),
        example_error=int(res.get("example_error", 0)),
        claims=int(res.get("claims", 0)),
        claims_failed=int(res.get("claims_failed", 0)),
        timeout=bool(res.get("timeout")),
        calls_undefined=bool(res.get("calls_undefined")),
    )


def run_program(program: Program, *, kernel_sandbox: bool = True) -> ExecResult:
    """Run one program in a sandboxed child; an empty program runs nothing. The child
    enters the kernel sandbox (:mod:`.sandbox`) wherever this machine allows it;
    ``kernel_sandbox=False``: only the process limits and Python-level guards (what ran
    before the kernel sandbox, and where it is unavailable)."""
    if program.empty:
        return ExecResult()
    # imported once here, so each forked child has them loaded (importing resource in
    # the child cost ~0.8 of its ~1.9 ms CPU for a one-line draft)
    import doctest  # noqa: F401
    import resource  # noqa: F401

    from . import sandbox  # here, not at import: ~2 ms of ctypes, socket, pickle for every check

    kernel = kernel_sandbox and sandbox.support().available
    if kernel_sandbox and not kernel and (line := sandbox.note_once()):
        sys.stderr.write(line + "\n")  # said once: what runs the code here is weaker
    return _run_one(program, kernel)


def run_programs(programs: Sequence[Program]) -> list[ExecResult]:
    """:func:`run_program` of each, in order (one child at a time: each is short, and
    the children of a parallel calibration already run on every core)."""
    return [run_program(p) for p in programs]
