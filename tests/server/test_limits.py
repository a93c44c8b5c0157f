"""Per-key requests-per-minute limit (`cascade key create --rpm N`)."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from cascadeflow_cli.ledger.keys import ApiKey
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from cascadeflow_cli.server.limits import RateLimiter, SharedRateLimiter, rate_dir
from cascadeflow_cli.server.shapes import ApiError, _amount
from tests.conftest import GOOD_ANSWER, CliRunner, config_text
from tests.server.test_serve_backends import key_cli
from tests.server.test_serve_cmd import chat, start, stopper  # noqa: F401  (stopper: a fixture)


def test_a_key_gets_rpm_requests_a_minute_then_429_with_the_wait() -> None:
    now = [1000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    key = ApiKey("sk-cf-abcdefgh", "alice", None, "2026-01-01T00:00:00Z", rpm=3)
    for _ in range(3):
        limiter.check(key)
        now[0] += 1
    with pytest.raises(ApiError) as caught:
        limiter.check(key)
    assert caught.value.status == 429 and caught.value.code == "rate_limit_exceeded"
    assert caught.value.headers["Retry-After"] == "57"  # the first of the three leaves the window then
    now[0] += 57
    limiter.check(key)  # allowed again
    limiter.check(ApiKey("sk-cf-other000", "bob", None, "2026-01-01T00:00:00Z"))  # no limit: never refused


def test_a_limit_of_one_request_reads_as_one_request() -> None:
    limiter = RateLimiter(clock=lambda: 1000.0)
    key = ApiKey("sk-cf-abcdefgh", "alice", None, "2026-01-01T00:00:00Z", rpm=1)
    limiter.check(key)
    with pytest.raises(ApiError) as caught:
        limiter.check(key)
    assert caught.value.message == "this key may make 1 request per minute"


@pytest.mark.parametrize(
    ("nusd", "text"),
    [(0, "0"), (30_000, "0.00003"), (-1_500_000_000, "-1.5"), (2 * 10**9, "2"), (1, "0.000000001")],
)
def test_header_amounts_are_exact_decimals(nusd: int, text: str) -> None:
    assert _amount(nusd) == text


def test_starts_stamped_before_the_hosts_last_boot_do_not_count(tmp_path: Path) -> None:
    """The window's file outlives a reboot, which starts the monotonic clock again: the
    old starts then lie in the future, and are not this minute's."""
    now = [1_000_000.0]
    before = SharedRateLimiter(tmp_path, clock=lambda: now[0])
    key = ApiKey("sk-cf-abcdefgh", "alice", None, "2026-01-01T00:00:00Z", rpm=2)
    before.check(key)
    before.check(key)
    now[0] = 50.0  # booted again
    after = SharedRateLimiter(tmp_path, clock=lambda: now[0])
    after.check(key)
    after.check(key)
    with pytest.raises(ApiError):
        after.check(key)


def test_a_sqlite_ledgers_windows_live_beside_it(tmp_path: Path) -> None:
    assert rate_dir(tmp_path / "ledger.db") == tmp_path / "ledger.db.rpm"
    assert (tmp_path / "ledger.db.rpm").stat().st_mode & 0o777 == 0o700
    assert rate_dir(tmp_path / "missing" / "ledger.db") is None  # then each server counts alone


def test_workers_sharing_a_directory_share_each_keys_window(tmp_path: Path) -> None:
    """Two limiters on one directory stand for two worker processes (each opens and
    flocks the key's file itself): together they admit rpm requests, not rpm each."""
    now = [1000.0]
    workers = [SharedRateLimiter(tmp_path, clock=lambda: now[0]) for _ in range(2)]
    key = ApiKey("sk-cf-abcdefgh", "alice", None, "2026-01-01T00:00:00Z", rpm=3)
    for turn in range(3):
        workers[turn % 2].check(key)
        now[0] += 1
    for worker in workers:
        with pytest.raises(ApiError) as caught:
            worker.check(key)
        assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "57"
    now[0] += 57
    workers[1].check(key)  # the first start left the window: one more is allowed
    with pytest.raises(ApiError):
        workers[0].check(key)
    unlimited = ApiKey("sk-cf-other000", "bob", None, "2026-01-01T00:00:00Z")
    workers[0].check(unlimited)
    assert sorted(p.name for p in tmp_path.iterdir()) == [b"sk-cf-abcdefgh".hex()]  # no file for bob


def test_two_serve_processes_on_one_ledger_admit_a_keys_rpm_once_between_them(
    ledger_url: str, server: ReplayServer, tmp_path: Path, stopper: list[subprocess.Popen[str]]  # noqa: F811
) -> None:
    """Two `cascade serve` processes on one ledger (on PostgreSQL they stand for two
    hosts), hammered at once with one key limited to 6 requests a minute: 6 are served
    between them, not 6 each (12 before), and every other answer is a 429 with its wait."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    config = tmp_path / "cascadeflow.toml"
    config.write_text(config_text(server.base_url), encoding="utf-8")
    cli = CliRunner(tmp_path, config, ledger_url)  # type: ignore[arg-type]  # a path or a URL
    made = key_cli("create", "alice", "--rpm", "6", "--json", env=cli.env())
    first, url1 = start(cli)
    second, url2 = start(cli)
    stopper += [first, second]
    answers: list[httpx.Response] = []

    def load(url: str) -> None:
        for _ in range(6):
            answers.append(chat(url, made["key"], max_tokens=16))

    threads = [threading.Thread(target=load, args=(u,)) for u in (url1, url2, url1, url2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = [a.status_code for a in answers]
    assert len(statuses) == 24 and set(statuses) == {200, 429}
    assert statuses.count(200) == 6  # within one minute: the key's 6, across both servers
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(refused.headers["Retry-After"]) <= 61  # the window counted by the second
    for proc in (first, second):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
