"""A throwaway PostgreSQL cluster for the test session (and for bench/ scripts).

``initdb`` + ``pg_ctl`` into a fresh temporary directory, listening on a Unix socket in
that directory and on 127.0.0.1 at a free port, stopped (and deleted) at exit. initdb
refuses to run as root, so as root the cluster belongs to the ``postgres`` system user
and every server command runs through ``runuser -u postgres --``.

Where the binaries are: ``$CASCADE_PG_BIN`` (a directory), else ``initdb`` on PATH, else
Debian's ``/usr/lib/postgresql/<version>/bin`` (not on PATH there). ``$CASCADE_TEST_PG_URL``
points the tests at a server of your own instead (a superuser URL: each test creates and
drops its own database).

Run ``python -m tests.pg_server`` to get a server for a benchmark: it prints the URL and
keeps the cluster until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "postgres"
# a login role with a password, reached over TCP with scram-sha-256 (the wrong-password tests)
PASSWORD_ROLE, PASSWORD = "cascade_pw", "s3cret-pw"


class Unavailable(Exception):
    """No PostgreSQL to test against; the message says why and what to do."""


def find_bin_dir(env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    if env.get("CASCADE_PG_BIN"):
        return Path(env["CASCADE_PG_BIN"])
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    def version(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if debian:
        return Path(debian[-1]).parent
    raise Unavailable("no PostgreSQL server binaries (initdb not on PATH nor in /usr/lib/postgresql/*/bin): "
                      "install Debian's `postgresql` package (apt-get install -y postgresql), set "
                      "$CASCADE_PG_BIN, or point $CASCADE_TEST_PG_URL at a server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running cluster. ``url(db)`` reaches database ``db`` as the superuser over the
    socket; ``tcp_url(db, ...)`` over TCP (password auth)."""

    socket_dir: str
    port: int
    root: Path | None = None  # the temp dir we own (None: someone else's server)
    bin_dir: Path | None = None
    external: str | None = None  # $CASCADE_TEST_PG_URL
    _as_postgres: list[str] = field(default_factory=list)

    def url(self, db: str = "postgres") -> str:
        if self.external:
            base = self.external.rsplit("/", 1)[0]
            return f"{base}/{db}"
        return f"postgresql://{SUPERUSER}@/{db}?host={quote(self.socket_dir, safe='')}&port={self.port}"

    def tcp_url(self, db: str, user: str = PASSWORD_ROLE, password: str | None = None) -> str:
        auth = f"{user}:{quote(password, safe='')}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def execute(self, sql: str, db: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        if self.external is None:
            self.execute(f'GRANT ALL ON DATABASE "{name}" TO {PASSWORD_ROLE}')
            self.execute(f"GRANT ALL ON SCHEMA public TO {PASSWORD_ROLE}", db=name)
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.root is None or self.bin_dir is None:
            return
        data = self.root / "data"
        if data.exists():
            subprocess.run([*self._as_postgres, str(self.bin_dir / "pg_ctl"), "-D", str(data),
                            "-m", "immediate", "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None


def start(env: dict[str, str] | os._Environ[str] = os.environ, *, durable: bool = False) -> PgServer:
    """A running server: the one in ``$CASCADE_TEST_PG_URL``, else a new cluster.
    ``durable``: with PostgreSQL's default fsync, synchronous_commit and full_page_writes
    (every commit waits for its WAL flush, as on a real server: what benchmarks time);
    the tests' cluster turns them off, a crash of a throwaway cluster losing nothing of value."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("psycopg is not installed: pip install -e '.[dev]' (or '.[postgres]')") from None
    if env.get("CASCADE_TEST_PG_URL"):
        return PgServer(socket_dir="", port=0, external=env["CASCADE_TEST_PG_URL"])
    bin_dir = find_bin_dir(env)
    as_postgres: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="cascade-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the postgres user
        runuser = shutil.which("runuser")
        if runuser is None:
            raise Unavailable("running as root without `runuser`: cannot start PostgreSQL as user postgres")
        as_postgres = [runuser, "-u", SUPERUSER, "--"]
        shutil.chown(root, user=SUPERUSER)
    os.chmod(root, 0o755)  # the socket in it must be reachable by us (and the data dir is 0700)
    server = PgServer(socket_dir=str(root), port=_free_port(), root=root, bin_dir=bin_dir,
                      _as_postgres=as_postgres)
    atexit.register(server.stop)
    data = root / "data"
    pwfile = root / "pw"
    try:
        pwfile.write_text(PASSWORD + "\n")
        if as_postgres:
            shutil.chown(pwfile, user=SUPERUSER)
        _run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-E", "UTF8",
              "--locale=C", "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256",
              f"--pwfile={pwfile}"])
        # throwaway: no durability unless asked, little memory; TCP on loopback only, plus our socket dir
        options = (f"-c port={server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
                   "-c shared_buffers=64MB -c max_connections=200")
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
              "-l", str(root / "server.log"), "-w", "-t", "60", "start"])
    except Unavailable:
        server.stop()
        raise
    server.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
    return server


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        program = next(Path(c).name for c in cmd if Path(c).name in ("initdb", "pg_ctl"))
        raise Unavailable(f"{program} failed (exit {proc.returncode}): {' | '.join(tail)}")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    try:
        server = start(durable="--durable" in sys.argv)
    except Unavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    db = server.create_database("bench")
    print(server.url(db), flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        signal.pause()  # until Ctrl-C or SIGTERM
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
