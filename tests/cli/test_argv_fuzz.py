"""Every command survives any argv: hypothesis draws a command from the app's own command
tree (walked, not listed) and options from that command's own parameters, with hostile
values (empty, blank, '-', very long, NUL, line breaks, bidi and invisible characters,
undecodable bytes, negative, zero, huge, NaN, inf, impossible dates, directories, missing
paths, /dev/null, /dev/full, FIFOs). Whatever it draws, through the real entry point:

- the exit code is one docs/errors.md documents (5 only from batch);
- stderr holds no traceback and no 'unexpected', and a failure is one `error:` line;
- the ledger passes PRAGMA integrity_check and foreign_key_check, and one that a failing
  command had no business writing (exit 1) is byte-for-byte unchanged;
- nothing connects beyond 127.0.0.1: the models are a local replay server, telemetry a
  closed loopback port, and an audit hook refuses any other address.

In process (tests/properties/harness.py: main() itself, exit code included), so a few
hundred runs fit in seconds. ``CASCADE_FUZZ_EXAMPLES=200`` explores further.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import sqlite3
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascadeflow_cli.cli.app import _command
from cascadeflow_cli.replay.server import ReplayServer
from tests.cli.support import rows
from tests.conftest import config_text
from tests.properties.harness import fingerprint, run, scratch

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("CASCADE_FUZZ_EXAMPLES", "5"))
HANG_S = 30.0  # a run still going after this is a hang (a FIFO opened twice, say)
DOCUMENTED_EXITS = {0, 1, 2, 3, 4}  # docs/errors.md; 5 is batch's alone, 130 needs a signal
# `serve` serves until it is stopped: a valid draw never returns (tests/server drive it);
# --help and --debug print help and tracebacks by design.
NOT_DRAWN_COMMANDS = {("serve",)}
NOT_DRAWN_OPTIONS = {"--help", "--debug"}
UNEXPECTED = re.compile(r"\bunexpected [A-Za-z_][\w.]*:")  # main()'s line for a bug


# typer 0.28 carries its own click (typer._click): the tree is read by duck typing
def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "commands"):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, (*path, name))
    else:
        yield path, command


TREE = _command()
COMMANDS = {path: cmd for path, cmd in _walk(TREE) if path not in NOT_DRAWN_COMMANDS}


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option" and p.opts[0] not in NOT_DRAWN_OPTIONS]


GLOBAL = _options(TREE)


# --- hostile values -------------------------------------------------------------------

TEXTS = ["", " ", "\t", "-", "--", "x" * 100_000, "a\x00b", "one\ntwo", "\r", "日本語", "Zoë",
         "\u202eevil", "\u200b", "\udce9", "ann\u0301", "\x1b[31mred", "--json", "-n", "1,2,,",
         "mini,nope", " , mini", "ann", "big"]
NUMBERS = ["-1", "0", "1", "-0", "0.5", "10.5", "1e309", "-1e309", "1e-400", "99999999999999999999999",
           "9" * 5000, "NaN", "nan", "inf", "-inf", "Infinity", "0x10", "1_000", "١٢", "$5", "5,00"]
DATES = ["2026-02-30", "0000-01-01", "9999-12-31", "1969-12-31", "1970-01-01", "2026-13-01",
         "2026-03-29T02:30:00", "2026-05-01T24:00:00", "2016-12-31T23:59:60Z", "2026-05-01T10:00:00+25:00",
         "yesterday", "2026-05-01", "9998-12-31T23:59:59-14:00"]
PATH_KINDS = ["dir", "missing", "/dev/null", "/dev/full", "/dev/zero", "fifo", "file", "empty"]
# What a command writes to: its FIFO has a reader (a FIFO read by nobody blocks its writer,
# as `echo x > fifo` does), and /dev/zero is no input there
OUTPUT_KINDS = ["dir", "missing", "/dev/null", "/dev/full", "outfifo", "file", "empty"]
DEVICES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7)}
OUTPUT_NAMES = ("output", "plot", "to")


@dataclass
class Place:
    """A scratch directory holding every kind of path a value may name."""

    root: Path
    db: Path

    def path(self, kind: str) -> str:
        if kind in DEVICES:  # our own node of that device where we can make one (_devices)
            own = self.root / "dev" / kind.rsplit("/", 1)[1]
            return str(own) if own.exists() else kind
        return str({"dir": self.root / "a-dir", "missing": self.root / "missing" / "x.jsonl",
                    "fifo": self.root / "in.fifo", "outfifo": self.root / "out.fifo",
                    "file": self.root / "rows.jsonl",
                    "empty": self.root / "empty.csv"}[kind])


def _value(param: Any) -> st.SearchStrategy[str]:
    """Values for ``param``: what its type takes, mixed with what no type takes."""
    kind = param.type
    name = (param.name or "").lower()
    output = name in OUTPUT_NAMES or (name == "path" and param.param_type_name == "option")  # config init
    paths = st.sampled_from(OUTPUT_KINDS if output else PATH_KINDS).map(lambda k: "@" + k)
    pool: list[st.SearchStrategy[str]] = [st.sampled_from(TEXTS), st.sampled_from(NUMBERS),
                                          st.sampled_from(DATES), paths]
    if getattr(kind, "choices", None):
        pool.append(st.sampled_from([str(c) for c in kind.choices]))
    if kind.name.startswith(("integer", "float")):
        pool.append(st.sampled_from(NUMBERS))
    if any(word in name for word in ("since", "until", "as_of", "date")):
        pool.append(st.sampled_from(DATES))
    if kind.name == "path" or any(w in name for w in ("file", "path", "output", "input", "db")):
        pool += [paths] * 2
    pool.append(st.text(max_size=12))
    return st.one_of(pool)


@st.composite
def _argv(draw: st.DrawFn, path: tuple[str, ...]) -> list[str]:
    command = COMMANDS[path]
    args: list[str] = []
    for option in GLOBAL:
        if draw(st.integers(0, 9)) == 0:
            args += [option.opts[0], draw(_value(option))]
    args += list(path)
    options = _options(command)
    for option in draw(st.lists(st.sampled_from(options), max_size=4, unique_by=id)) if options else []:
        name = draw(st.sampled_from(option.opts + option.secondary_opts))
        if option.is_flag or option.count:
            args.append(name)
        else:
            args += [name, *(draw(_value(option)) for _ in range(max(option.nargs, 1)))]
    for argument in (p for p in command.params if p.param_type_name == "argument"):
        if argument.required or draw(st.booleans()):
            args += [draw(_value(argument)) for _ in range(max(argument.nargs, 1))]
    if draw(st.integers(0, 9)) == 0:
        args.append(draw(st.sampled_from([*TEXTS, "--nope", "-h"])))  # a stray word
    return args


# --- the world a run happens in ---------------------------------------------------------


class _LoopbackOnly:
    """An audit hook (installed once, it cannot be removed) that refuses, while armed, any
    connection or name lookup beyond loopback, and remembers what it refused."""

    def __init__(self) -> None:
        self.armed = False
        self.refused: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed or event not in ("socket.connect", "socket.getaddrinfo"):
            return
        address = args[1] if event == "socket.connect" else args
        host = address[0] if isinstance(address, tuple) and address else address
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        if not isinstance(host, str) or host.startswith("/") or host == "localhost":
            return  # a Unix socket, or the loopback name
        try:
            if ipaddress.ip_address(host.split("%")[0]).is_loopback:
                return
        except ValueError:
            pass
        self.refused.append(f"{event} {host}")
        raise ConnectionRefusedError(f"test: no network beyond 127.0.0.1 ({host})")


_GUARD: _LoopbackOnly | None = None


def _loopback_only() -> _LoopbackOnly:
    global _GUARD
    if _GUARD is None:
        _GUARD = _LoopbackOnly()
    return _GUARD


class _FifoPeer:
    """The other end of ``fifo``, in a thread: each open by a command for reading gets a
    few hostile lines, then EOF (``writes``), or each open for writing is read to its end.
    Stopped by opening it once more ourselves, from the side that unblocks it."""

    def __init__(self, fifo: Path, *, writes: bool) -> None:
        self.fifo, self.writes = fifo, writes
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                with open(self.fifo, "wb" if self.writes else "rb") as fh:  # blocks for a peer
                    if self.stop.is_set():
                        return
                    if self.writes:
                        fh.write(b'{"id": "1", "query": "What is 2+2?"}\nnot json\n')
                    else:
                        while fh.read(1 << 16):
                            pass
            except OSError:
                continue

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            os.close(os.open(self.fifo, (os.O_RDONLY if self.writes else os.O_WRONLY) | os.O_NONBLOCK))
        self.thread.join(5)


class _Hang(BaseException):
    """Raised by the alarm in the main thread: a run that never ended."""


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def ring(signum: int, frame: object) -> None:
        raise _Hang(f"still running after {seconds:.0f}s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Path, Path]]:
    """A replay server, a config naming it, and a seeded ledger to copy for each run."""
    with scratch("argv-fuzz-") as tmp, ReplayServer() as server:
        root = Path(tmp)
        config = root / "cascadeflow.toml"
        config.write_text(config_text(server.base_url, extra="[budgets.default]\ndaily = 5.0\n"),
                          encoding="utf-8")
        seed = root / "seed.db"
        history = root / "seed.csv"
        history.write_text("timestamp,user,model,cost\n" + "".join(
            f"2026-04-{d:02d}T10:00:00Z,ann,mini,0.{d:02d}\n" for d in range(1, 29)), encoding="utf-8")
        with _env(CASCADE_CONFIG=str(config)):
            assert run("--db", str(seed), "import", str(history)).code == 0
        yield config, seed


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _place(seed: Path, config: Path) -> Iterator[Place]:
    with scratch("argv-run-") as tmp:
        root = Path(tmp)
        db = root / "ledger.db"
        shutil.copyfile(seed, db)
        (root / "a-dir").mkdir()
        (root / "rows.jsonl").write_text('{"id": "1", "query": "What is 2+2?"}\n', encoding="utf-8")
        (root / "empty.csv").write_bytes(b"")
        peers = []
        for name, writes in (("in.fifo", True), ("out.fifo", False)):
            os.mkfifo(root / name)
            peers.append(_FifoPeer(root / name, writes=writes))
        shutil.copyfile(config, root / "cascadeflow.toml")  # `config init --force` may replace it
        _devices(root / "dev")
        cwd = os.getcwd()
        os.chdir(root)
        try:
            yield Place(root, db)
        finally:
            os.chdir(cwd)
            for peer in peers:
                peer.close()


def _devices(where: Path) -> None:
    """Root may replace /dev/null itself: `demo --db /dev/zero` did, so the fuzz names its
    own nodes of the same devices (another user cannot replace the real ones)."""
    if os.geteuid() != 0:
        return
    where.mkdir()
    for name, (major, minor) in DEVICES.items():
        node = where / name.rsplit("/", 1)[1]
        try:
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            node.open("rb").close()
        except OSError:  # a file system mounted nodev: no devices drawn
            node.unlink(missing_ok=True)
            pytest.skip("cannot make device nodes here, and root could replace the real ones")


def _resolved(args: list[str], place: Place) -> list[str]:
    kinds = {*PATH_KINDS, *OUTPUT_KINDS}
    return [place.path(a[1:]) if a.startswith("@") and a[1:] in kinds else a for a in args]


def _consistent(db: Path) -> None:
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert conn.execute("pragma foreign_key_check").fetchall() == []
    finally:
        conn.close()


def check_run(args: list[str], config: Path, seed: Path) -> None:
    guard = _loopback_only()
    with _place(seed, config) as place, _env(CASCADE_CONFIG=str(place.root / "cascadeflow.toml"),
                                             CASCADE_DB=str(place.db),
                                     OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"):
        argv = _resolved(args, place)
        before = fingerprint(place.db)
        guard.armed, guard.refused = True, []
        try:
            with _alarm(HANG_S):
                result = run(*argv)
        finally:
            guard.armed = False
        shown = [a if len(a) < 40 else a[:37] + "..." for a in argv]
        where = f"cascade {' '.join(map(repr, shown))} -> {result.code}\n{result.stderr[-3000:]}"
        assert not guard.refused, f"{where}\nconnected beyond loopback: {guard.refused}"
        exits = DOCUMENTED_EXITS | ({5} if "batch" in args else set())
        assert result.code in exits, where
        assert "Traceback" not in result.stderr and not UNEXPECTED.search(result.stderr), where
        errors = [line for line in result.lines if line.startswith("error: ")]
        if result.code == 1:
            assert len(errors) == 1 and errors[0] == result.lines[-1], where
        else:
            assert len(errors) <= 1, where
        if place.db.exists():
            _consistent(place.db)
            if result.code == 1 and not {"ask", "batch", "calibrate", "feedback"} & set(args):
                assert fingerprint(place.db) == before, f"{where}\nthe ledger changed"


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_any_argv(path: tuple[str, ...], world: tuple[Path, Path]) -> None:
    config, seed = world

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(args=_argv(path))
    def check(args: list[str]) -> None:
        check_run(args, config, seed)

    check()


def test_the_walk_finds_every_command() -> None:
    """The tree walk is what the fuzz draws from: it must see the nested commands too."""
    assert {("ask",), ("import",), ("budget", "set"), ("quality", "check"), ("ledger", "copy"),
            ("key", "revoke"), ("config", "init")} <= set(COMMANDS)


@pytest.mark.parametrize(("args", "says"), [
    # each was 'unexpected OSError: [Errno 36] File name too long' (batch, import, demo --db,
    # ledger copy, export -o, config init --path, domain/quality --input, --config)
    (["batch", "x" * 5000], "Invalid value for 'file': the path is 5,000 bytes long"),
    (["import", "--", "x" * 5000], "the path is 5,000 bytes long"),
    (["--config", "x" * 5000, "logs"], "Invalid value for '--config': the path is 5,000 bytes"),
    (["ledger", "copy", "9" * 5000, "b.db"], "999...: File name too long"),  # main()'s net
    (["export", "-o", "d/" + "y" * 300 + ".csv"], "a file name in the path is 304 bytes long"),
    (["--db", "9" * 5000, "demo"], "999...: File name too long"),
    (["--db", "a/" + "y" * 300, "logs"], "--db: a file name in the path is 300 bytes long"),
    # 'unexpected ValueError: PosixPath('.') has an empty name'
    (["calibrate", "--output", "", "rows.jsonl"], "Invalid value for '--output': the path is empty"),
    # 'unexpected ValueError: embedded null byte' (from an environment or in-process caller:
    # exec refuses a NUL in argv)
    (["--config", "\x00", "config", "show"], "the path holds a NUL byte"),
    # '.: is a directory, not a ledger file'
    (["--db", "", "logs"], "--db is empty"),
])
def test_found_by_the_fuzz(args: list[str], says: str, tmp_path: Path) -> None:
    with _env(CASCADE_DB=str(tmp_path / "l.db")):
        line = run(*args).one_error_line()
    assert says in line and len(line) < 400, line
    assert not (tmp_path / "l.db").exists()


def test_a_long_ledger_path_from_the_environment(tmp_path: Path) -> None:
    with _env(CASCADE_DB="x" * 5000):
        line = run("budget", "list").one_error_line()
    assert line == "error: $CASCADE_DB: the path is 5,000 bytes long, more than the 4,096 a path may hold"


def test_demo_deletes_only_a_demo_ledger(tmp_path: Path) -> None:
    """`cascade demo --db PATH` deleted PATH first, whatever it was: the user's own ledger
    with every paid request in it, and (as root) /dev/zero, which became a ledger file."""
    with seeded_world_ledger(tmp_path) as db:
        before = fingerprint(db)
        line = run("--db", str(db), "demo", "--limit", "1").one_error_line()
        assert "a ledger with the requests of ann" in line and "would delete them" in line, line
        assert fingerprint(db) == before
    fifo = tmp_path / "f.db"
    os.mkfifo(fifo)
    line = run("--db", str(fifo), "demo", "--limit", "1").one_error_line()
    assert "not a regular file" in line and stat.S_ISFIFO(os.stat(fifo).st_mode), line
    fresh = tmp_path / "demo.db"
    for _ in range(2):  # the demo's own ledger is made afresh each run
        assert run("--db", str(fresh), "demo", "--limit", "1").code == 0
    assert {r["user"] for r in rows(fresh, "requests")} == {"demo"} and len(rows(fresh, "requests")) == 1


@contextlib.contextmanager
def seeded_world_ledger(where: Path) -> Iterator[Path]:
    db = where / "mine.db"
    history = where / "h.csv"
    history.write_text("timestamp,user,model,cost\n2026-05-01T10:00:00Z,ann,m,0.5\n", encoding="utf-8")
    assert run("--db", str(db), "import", str(history)).code == 0
    yield db


def test_a_home_of_nobody(tmp_path: Path) -> None:
    """`~0` names the home of a user '0': 'unexpected RuntimeError: Could not determine home
    directory' from every path that expands '~'."""
    for args in (["ledger", "copy", str(tmp_path / "a.db"), "~0"], ["--db", "~0/x.db", "logs"],
                 ["--config", "~nobody-here/c.toml", "logs"]):
        line = run(*args).one_error_line()
        assert "on this system for '~" in line, line
