"""Hostile inputs to `cascade serve` on a PostgreSQL ledger (a real server, tests/pg_server.py):
whatever a client sends, a request that was paid for lands in the ledger."""

from __future__ import annotations

from pathlib import Path

from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.ledger.keys import create_key
from cascadeflow_cli.replay.server import ReplayServer
from cascadeflow_cli.server import ServeSettings, build_app
from tests.pg_fixtures import table_rows
from tests.server.conftest import ThreadServer, write_config

REFUSE = ("create function refuse() returns trigger language plpgsql as "
          "$$ begin raise exception 'disk full'; end $$; "
          "create trigger refuse before insert on requests execute function refuse()")


def serve_on(url: str, server: ReplayServer, tmp_path: Path) -> tuple[str, ThreadServer]:
    """alice's key and a serve app on the ledger at ``url`` (not started)."""
    config = write_config(tmp_path, server)
    store = open_store(url)
    key, _ = create_key(store, "alice")
    store.close()
    app = build_app(ServeSettings(str(config), url, concurrency=2), write_log=lambda _: None)
    return key, ThreadServer(app)


def execute(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def test_a_prompt_holding_nul_characters_is_recorded_on_postgresql(
    pg_ledger_url: str, server: ReplayServer, tmp_path: Path
) -> None:
    # PostgreSQL's text cannot hold U+0000: the paid answer went out "not recorded", and its
    # journal entry could never be written, so every later command on this host was refused
    import openai

    key, app = serve_on(pg_ledger_url, server, tmp_path)
    with app as srv:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="cascade", messages=[{"role": "user", "content": "What is\x00 the capital of France?"}]
        )
        assert raw.headers.get("x-cascade-recorded") != "false"
        answer = raw.parse()
    [row] = table_rows(pg_ledger_url, "requests")
    assert row["id"] == answer.cascade["request_id"]  # type: ignore[attr-defined]
    assert row["query"] == "What is\ufffd the capital of France?" and row["cost_nusd"] > 0
    again = open_store(pg_ledger_url)
    try:
        assert again.journal_waiting == 0  # type: ignore[attr-defined]
        again.check_writable()  # type: ignore[attr-defined]
    finally:
        again.close()


def test_an_answer_the_database_refuses_waits_in_the_journal_on_a_fresh_host(
    pg_url: str, server: ReplayServer, tmp_path: Path
) -> None:
    # the journal of a database ledger lives in the user data dir; on a host where cascade
    # never ran that dir did not exist, so the paid request was "recorded nowhere"
    import openai

    from cascadeflow_cli.config import user_data_dir

    assert not user_data_dir().exists()  # a fresh $HOME (tests/conftest.py)
    key, app = serve_on(pg_url, server, tmp_path)
    execute(pg_url, REFUSE)
    with app as srv:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="cascade", messages=[{"role": "user", "content": "What is the capital of France?"}]
        )
        assert raw.headers["x-cascade-recorded"] == "false"
        request_id = raw.headers["x-cascade-request-id"]
    execute(pg_url, "drop trigger refuse on requests")
    assert table_rows(pg_url, "requests") == []
    again = open_store(pg_url)  # replays the journal
    try:
        assert again.journal_waiting == 0  # type: ignore[attr-defined]
    finally:
        again.close()
    [row] = table_rows(pg_url, "requests")
    assert row["id"] == request_id and row["cost_nusd"] > 0


def test_ledger_copy_takes_the_keys_and_what_each_key_spent(
    pg_ledger_url: str, stack_factory: object, tmp_path: Path
) -> None:
    # `ledger copy` left api_keys behind: moved to PostgreSQL, every key was a 401, and a
    # key re-made there started its own --total budget from $0 (spent twice over)
    from datetime import UTC, datetime

    from typer.testing import CliRunner as TyperRunner

    from cascadeflow_cli.cli.app import app
    from cascadeflow_cli.ledger.budgets import BudgetConfig
    from cascadeflow_cli.ledger.keys import authenticate
    from cascadeflow_cli.windows import window
    from tests.server.conftest import make_key

    stack = stack_factory()  # type: ignore[operator]
    capped = make_key(stack.config, stack.db, "bob", budget=BudgetConfig(total=1.0))
    body = {"model": "cascade", "messages": [{"role": "user", "content": "Capital of France?"}]}
    assert stack.post(body, key=capped).status_code == 200
    run = TyperRunner().invoke(app, ["ledger", "copy", str(stack.db), pg_ledger_url])
    assert run.exit_code == 0, run.output
    total = window("total", datetime.now(UTC), "UTC")
    spent = []
    for where in (str(stack.db), pg_ledger_url):
        store = open_store(where)
        try:
            assert authenticate(store, stack.key) is not None
            found = authenticate(store, capped)
            assert found is not None and found.user == "bob" and found.budget == BudgetConfig(total=1.0)
            with store.budget_lock("bob") as txn:
                spent.append(txn.key_window_spend(found.prefix, total))  # type: ignore[attr-defined]
        finally:
            store.close()
    assert spent[0] > 0 and spent[1] == spent[0]


def test_a_serve_process_records_what_the_database_refused_once_it_takes_writes_again(
    pg_url: str, server: ReplayServer, tmp_path: Path
) -> None:
    # the journal was read only when the ledger was opened: a long-running serve went on
    # paying for requests while its refused one sat in the journal, its spend in no budget
    # once its reservation expired, until the process restarted
    import httpx

    key, app = serve_on(pg_url, server, tmp_path)
    execute(pg_url, REFUSE)
    body = {"model": "cascade", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    with app as srv:
        def post() -> httpx.Response:
            return httpx.post(f"http://127.0.0.1:{srv.port}/v1/chat/completions", json=body,
                              headers={"Authorization": f"Bearer {key}"}, timeout=30)

        first = post()
        assert first.status_code == 200 and first.headers["x-cascade-recorded"] == "false"
        sent = len(server.requests)
        refused = post()  # the journal still holds a paid request the ledger cannot take
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "ledger_unavailable"
        assert len(server.requests) == sent  # nothing was paid for
        execute(pg_url, "drop trigger refuse on requests")
        again = post()
        assert again.status_code == 200 and "x-cascade-recorded" not in again.headers
    ids = {row["id"] for row in table_rows(pg_url, "requests")}
    assert ids == {first.headers["x-cascade-request-id"], again.headers["x-cascade-request-id"]}


def test_a_key_checked_while_the_database_is_away_is_a_503_in_openai_shape(
    pg_server: object, pg_url: str, server: ReplayServer, tmp_path: Path
) -> None:
    # PostgreSQL restarting under load: the key lookup's LedgerUnavailableError escaped as
    # a text/plain "Internal Server Error" and a traceback in serve's log
    import httpx

    key, app = serve_on(pg_url, server, tmp_path)
    name = pg_url.split("/")[-1].split("?")[0]
    away = f"{name}_away"
    with app as srv:
        pg_server.execute(  # type: ignore[attr-defined]
            f"select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'")
        pg_server.execute(f'alter database "{name}" rename to "{away}"')  # type: ignore[attr-defined]
        try:
            response = httpx.post(f"http://127.0.0.1:{srv.port}/v1/chat/completions",
                                  json={"model": "cascade", "messages": [{"role": "user", "content": "hi"}]},
                                  headers={"Authorization": f"Bearer {key}"}, timeout=30)
        finally:
            pg_server.execute(f'alter database "{away}" rename to "{name}"')  # type: ignore[attr-defined]
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "ledger_unavailable" and key not in response.text
    assert server.requests == []  # nothing was sent, so nothing paid for is lost
