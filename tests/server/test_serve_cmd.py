"""The `cascade serve` process itself: start-up line, SIGTERM with a stream in flight,
and `cascade key` around it (two processes on one ledger: test_serve_backends.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import DETAILED, LONG_ANSWER, QUERY
from tests.conftest import CliRunner, ledger_rows


def start(cli: CliRunner, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = cli.popen("serve", "--port", "0", *args)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise AssertionError(line + proc.stderr.read())
    return proc, line.removeprefix("listening on ").strip()


@pytest.fixture
def key(cli: CliRunner) -> str:
    run = cli("key", "create", "alice", "--name", "tests", "--json")
    assert run.code == 0, run.stderr
    data = run.json()
    assert set(data) == {"user", "key", "prefix"} and data["key"].startswith(data["prefix"])  # type: ignore[index]
    return data["key"]  # type: ignore[index]


@pytest.fixture
def stopper() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def chat(url: str, key: str, **body: object) -> httpx.Response:
    body = {"model": "cascade", "messages": [{"role": "user", "content": QUERY}], **body}
    return httpx.post(
        f"{url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_keys_are_stored_as_hashes_and_revocable(cli: CliRunner, key: str) -> None:
    [row] = ledger_rows(cli.db, "api_keys")
    assert row["user"] == "alice" and row["name"] == "tests" and key not in json.dumps(row)
    listed = cli("key", "list", "--json").json()
    assert [k["prefix"] for k in listed] == [row["prefix"]] and key not in json.dumps(listed)  # type: ignore[union-attr]
    assert cli("key", "revoke", str(row["prefix"])).code == 0
    assert cli("key", "list", "--json").json()[0]["active"] is False  # type: ignore[index]
    missing = cli("key", "revoke", "sk-cf-nothing")
    assert missing.code == 1 and missing.stderr.startswith("error: ")


def test_key_list_spells_out_a_name_an_older_version_stored(cli: CliRunner, key: str) -> None:
    """`key create` refuses such a user or key name now; `key list` printed an older
    ledger's raw (ESC drove the terminal, a CR hid the name)."""
    import sqlite3

    with sqlite3.connect(cli.db) as conn:  # as an older version stored it
        conn.execute("update api_keys set user = ?, name = ?", ("b\x1b[2Job", "t\rx"))
    listed = cli("key", "list")
    assert listed.code == 0, listed.stderr
    assert "b\\x1b[2Job" in listed.stdout and "t\\x0dx" in listed.stdout, listed.stdout
    assert "\x1b" not in listed.stdout and "\r" not in listed.stdout


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_finishes_or_records_what_is_in_flight(
    cli: CliRunner, server: ReplayServer, key: str, stopper: list[subprocess.Popen[str]], workers: str
) -> None:
    # a stream that stalls is cut once the grace period is over, in a worker process too
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, stall_after=2))
    proc, url = start(cli, "--grace", "1", "--workers", workers)
    stopper.append(proc)
    assert chat(url, key).status_code == 200
    got: list[str] = []
    opened = threading.Event()

    def reader() -> None:
        body = {"model": "big", "stream": True, "messages": [{"role": "user", "content": DETAILED}]}
        try:
            with httpx.stream(
                "POST",
                f"{url}/chat/completions",
                json=body,
                timeout=30,
                headers={"Authorization": f"Bearer {key}"},
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        got.append(line)
                        if len(got) >= 3:
                            opened.set()
        except httpx.HTTPError:
            pass
        opened.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert opened.wait(20)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""
    thread.join(10)
    assert "the server is shutting down" in got[-1]  # cut at the grace period's end, not timed out
    rows = {r["model"]: r for r in ledger_rows(cli.db, "requests")}
    assert rows["mini"]["status"] == "ok"
    assert rows["big"]["status"] == "interrupted" and rows["big"]["cost_nusd"] > 0
    assert ledger_rows(cli.db, "reservations") == []


def test_serve_without_a_ledger_it_can_open_fails_in_one_line(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-ledger.db"
    bad.write_text("hello", encoding="utf-8")
    run = cli("--db", str(bad), "serve", "--port", "0")
    assert run.code == 1 and run.stderr.count("\n") == 1 and run.stderr.startswith("error: ")


@pytest.mark.parametrize("args, culprit", [
    (["--host", ""], "--host"),  # listened on every interface (0.0.0.0)
    (["--host", "  "], "--host"),
    (["--workers", "99999999999999999999"], "--workers"),  # forked until the machine stalled
    (["--grace", "1e300"], "--grace"),  # an OverflowError traceback at SIGTERM
], ids=["empty-host", "blank-host", "huge-workers", "huge-grace"])
def test_serve_options_that_cannot_work_are_refused_before_listening(
    cli: CliRunner, args: list[str], culprit: str
) -> None:
    run = cli("serve", "--port", "0", *args)
    assert run.code == 1 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: ") and culprit in run.stderr
    assert "listening" not in run.stderr


def test_startup_line_then_requests_then_sigterm_exits_zero(
    cli: CliRunner, key: str, stopper: list[subprocess.Popen[str]]
) -> None:
    proc, url = start(cli)
    stopper.append(proc)
    assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def test_workers_share_the_port_and_the_ledger(
    cli: CliRunner, key: str, stopper: list[subprocess.Popen[str]]
) -> None:
    proc, url = start(cli, "--workers", "2")
    stopper.append(proc)
    assert [chat(url, key).status_code for _ in range(6)] == [200] * 6
    assert len(ledger_rows(cli.db, "requests")) == 6
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_under_load_leaves_nothing_half_written(
    cli: CliRunner, server: ReplayServer, key: str, stopper: list[subprocess.Popen[str]], workers: str
) -> None:
    # with --workers 2 each worker's write-ahead log was left in the journal directory
    # (settled, but there for the next command to read back)
    server.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.2))
    proc, url = start(cli, "--grace", "5", "--workers", workers)
    stopper.append(proc)
    answered: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                response = chat(url, key)
            except httpx.HTTPError as exc:  # refused once it stopped listening
                failed.append(type(exc).__name__)
                return
            if response.status_code != 200:
                failed.append(str(response.status_code))
                return
            answered.append(response.headers["x-cascade-request-id"])

    threads = [threading.Thread(target=load) for _ in range(12)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(answered) < 12 and time.monotonic() < deadline:  # under load: requests in flight
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    stop.set()
    for t in threads:
        t.join(30)
    requests = {r["id"]: r for r in ledger_rows(cli.db, "requests")}
    calls = ledger_rows(cli.db, "calls")
    assert set(answered) <= set(requests)  # every answer that went out is in the ledger
    assert all(r["status"] in ("ok", "interrupted") for r in requests.values())
    assert {c["request_id"] for c in calls} == set(requests)  # no request without its calls
    assert all(r["cost_nusd"] == sum(c["cost_nusd"] for c in calls if c["request_id"] == i)
               for i, r in requests.items())
    assert ledger_rows(cli.db, "reservations") == []
    journal = cli.db.with_name(cli.db.name + ".journal")
    assert not journal.exists() or not list(journal.iterdir())


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_keys_rpm_limit_holds_across_workers(
    cli: CliRunner, stopper: list[subprocess.Popen[str]], workers: str
) -> None:
    """Each worker counted alone once: with --workers 2 every key had twice its limit."""
    run = cli("key", "create", "alice", "--rpm", "3", "--json")
    assert run.code == 0, run.stderr
    key = run.json()["key"]  # type: ignore[index]
    proc, url = start(cli, "--workers", workers)
    stopper.append(proc)
    statuses = [chat(url, key).status_code for _ in range(8)]  # a new connection each: both workers
    assert statuses == [200] * 3 + [429] * 5, statuses
    assert len(ledger_rows(cli.db, "requests")) == 3
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


@pytest.mark.parametrize(
    ("head", "words"),
    [
        # both framings (RFC 9112 section 6.3: a smuggling vector): uvicorn answered text/plain
        ("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
         "both Content-Length and Transfer-Encoding"),
        ("NOT HTTP AT ALL\r\n\r\n", "not valid HTTP"),
    ],
    ids=["content-length-and-transfer-encoding", "garbage"],
)
def test_a_request_the_http_parser_refuses_gets_openai_s_error_shape(
    cli: CliRunner, stopper: list[subprocess.Popen[str]], head: str, words: str
) -> None:
    import socket

    proc, url = start(cli)
    stopper.append(proc)
    host, port = url.removeprefix("http://").removesuffix("/v1").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line.split()[1] == b"400", data
    assert b"content-type: application/json" in headers.lower(), data
    error = json.loads(body)["error"]
    assert words in error["message"] and error["type"] == "invalid_request_error", error
    assert "\n" not in error["message"]
