"""A key's own budget (`cascade key create USER --daily/--weekly/--monthly/--total`):
checked with its user's in the same transaction, never overspent by concurrent clients,
answered with OpenAI's 429; the user's other keys are not held to it."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import openai
from typer.testing import CliRunner

from cascadeflow_cli.cli.app import app
from cascadeflow_cli.ledger.budgets import BudgetConfig
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.replay.server import ModelBehavior
from tests.conftest import GOOD_ANSWER, ledger_rows
from tests.server.conftest import Stack, make_key


def test_key_create_stores_the_keys_own_budget_and_list_shows_it(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "cascadeflow.toml").write_text("", encoding="utf-8")
    env = {"CASCADE_DB": str(tmp_path / "ledger.db"), "CASCADE_CONFIG": str(tmp_path / "cascadeflow.toml")}
    made = runner.invoke(app, ["key", "create", "alice", "--daily", "0.5", "--total", "2", "--json"], env=env)
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    listed = runner.invoke(app, ["key", "list", "--json"], env=env)
    [row] = json.loads(listed.stdout)
    assert row["prefix"] == created["prefix"] and row["budget"] == {"daily": "0.5", "total": "2"}
    bad = runner.invoke(app, ["key", "create", "alice", "--daily", "-1"], env=env)
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert len(json.loads(runner.invoke(app, ["key", "list", "--json"], env=env).stdout)) == 1


def test_concurrent_clients_on_a_capped_key_never_overspend_it(stack_factory: object) -> None:
    stack: Stack = stack_factory('\n[budgets]\nmode = "block"\n')  # type: ignore[operator]
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    body = {"model": "cascade", "messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 16}
    first = stack.post(body)
    assert first.status_code == 200
    cost = Decimal(first.headers["x-cascade-cost"])
    limit = cost * 6  # six answers' worth: the worst-case reservation refuses some earlier
    capped = make_key(stack.config, stack.db, budget=BudgetConfig(total=limit))

    def ask(_: int) -> tuple[int, str]:
        client = stack.client(capped)
        try:
            client.chat.completions.create(**body)  # type: ignore[call-overload]
        except openai.RateLimitError as exc:
            assert exc.body["code"] == "budget_exceeded"  # type: ignore[index]
            assert exc.response.headers.get("retry-after") is None  # a total never resets
            return 429, str(exc.body["message"])  # type: ignore[index]
        return 200, ""

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, range(16)))
    served = sum(1 for status, _ in results if status == 200)
    refused = [message for status, message in results if status == 429]
    assert 1 <= served <= 6 and len(refused) == 16 - served
    assert all(message.startswith("blocked: this key's total budget") for message in refused), refused
    ledger = open_ledger(stack.db)
    try:
        linked = {r["request_id"] for r in ledger.db.query("select request_id from api_key_requests")}
    finally:
        ledger.close()
    spent = sum(r["cost_nusd"] for r in ledger_rows(stack.db, "requests") if r["id"] in linked)
    assert 0 < spent <= limit * 10**9  # overspend $0
    assert ledger_rows(stack.db, "reservations") == []
    assert stack.post(body).status_code == 200  # alice's other key is not held to the capped key's budget
