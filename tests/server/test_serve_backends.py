"""Two `cascade serve` processes on one ledger, SQLite and PostgreSQL alike: keys made by
`cascade key` on that ledger work in both, a key's own budget holds across them (overspend
$0.00), and a revocation reaches both."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner as TyperRunner

from cascadeflow_cli.cli.app import app
from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from cascadeflow_cli.windows import window
from tests.conftest import GOOD_ANSWER, CliRunner, config_text
from tests.server.test_serve_cmd import chat, start, stopper  # noqa: F401  (stopper: a fixture)


def key_cli(*args: str, env: dict[str, str]) -> dict[str, str]:
    """`cascade key ...` in this process (typer's runner: the real entry point, no start-up)."""
    run = TyperRunner().invoke(app, ["key", *args], env=env)
    assert run.exit_code == 0, run.output
    return json.loads(run.stdout) if "--json" in args else {}


def test_two_serve_processes_share_keys_and_a_keys_budget(
    ledger_url: str, server: ReplayServer, tmp_path: Path, stopper: list[subprocess.Popen[str]]  # noqa: F811
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    config = tmp_path / "cascadeflow.toml"
    config.write_text(config_text(server.base_url, extra='\n[budgets]\nmode = "block"\n'), encoding="utf-8")
    cli = CliRunner(tmp_path, config, ledger_url)  # type: ignore[arg-type]  # a path or a URL
    made = key_cli("create", "alice", "--json", env=cli.env())
    key = made["key"]
    first, url1 = start(cli)
    second, url2 = start(cli)
    stopper += [first, second]
    probe = chat(url1, key, max_tokens=16)
    assert probe.status_code == 200, probe.text
    limit = Decimal(probe.headers["x-cascade-cost"]) * 5
    capped = key_cli("create", "bob", "--total", str(limit), "--json", env=cli.env())
    statuses: list[int] = []

    def load(url: str) -> None:
        for _ in range(5):
            statuses.append(chat(url, capped["key"], max_tokens=16).status_code)

    threads = [threading.Thread(target=load, args=(u,)) for u in (url1, url2, url1, url2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(set(statuses)) == [200, 429] and statuses.count(200) >= 1
    store = open_store(ledger_url)
    try:
        with store.budget_lock("bob") as txn:
            total = window("total", datetime.now(UTC), "UTC")
            spent = txn.key_window_spend(capped["prefix"], total)  # type: ignore[attr-defined]
    finally:
        store.close()
    assert 0 < spent <= limit * 10**9  # overspend $0.00, across both processes
    assert chat(url2, key).status_code == 200
    key_cli("revoke", made["prefix"], env=cli.env())
    assert chat(url1, key).status_code == 401 and chat(url2, key).status_code == 401
    for proc in (first, second):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
