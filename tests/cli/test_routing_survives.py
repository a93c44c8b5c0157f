"""Domain-aware routing of `cascade ask` and `batch` against the replay server on
127.0.0.1, for issue 16's must-survive inputs: what the rules see decides the chain, and a
query that shows nothing is never paid for (hostile-18)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ReplayServer
from tests.cli.support import rows
from tests.conftest import CliRunner, assert_one_error_line, config_text

ROUTED = ('[domains]\ncode = ["big"]\n\n'
          '[domains.custom.orders]\nexamples_file = "orders.txt"\nmodels = ["mini"]\n')


@pytest.fixture
def routed(tmp_path: Path, server: ReplayServer) -> CliRunner:
    # written as macOS gives it: "é" is e + U+0301
    (tmp_path / "orders.txt").write_text("re\u0301sume\u0301 de commande\nmon re\u0301sume\u0301 de colis\n",
                                         encoding="utf-8")
    config = tmp_path / "cascadeflow.toml"
    config.write_text(config_text(server.base_url, extra=ROUTED), encoding="utf-8")
    return CliRunner(tmp_path, config, tmp_path / "ledger.db")


@pytest.mark.parametrize("query", ["\u200b", "\u200d\u200f", " \ufeff\u2060 ", "\u202e\u202c"])
def test_a_query_that_shows_nothing_is_refused_before_any_call(routed: CliRunner, server: ReplayServer,
                                                               query: str) -> None:
    for run in (routed("ask", query, "--json"), routed("ask", "-", input=query + "\n")):
        assert (run.code, run.stdout) == (1, "")
        assert_one_error_line(run.stderr)
        assert "the query is empty" in run.stderr
    assert server.request_count() == 0 and rows(routed.db, "requests") == []


def test_a_batch_row_that_shows_nothing_is_an_error_not_a_paid_call(routed: CliRunner, server: ReplayServer,
                                                                    tmp_path: Path) -> None:
    path, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    path.write_text('{"id": "a", "query": "\\u200b\\u200d"}\n{"id": "b", "query": "What is 2 + 2?"}\n')
    run = routed("batch", str(path), "--output", str(out))
    assert run.code == 5, run.stderr
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert "error" in results["a"] and "query" in results["a"]["error"] and "answer" in results["b"]
    assert server.request_count() == 1 and len(rows(routed.db, "requests")) == 1


@pytest.mark.parametrize(("query", "domain", "model"), [
    ("请帮我写一个Python函数来排序列表", "code", "big"),  # was general: "Python" inside a run of Han
    ("Python으로 정렬 함수를 작성해줘", "code", "big"),
    ("où est mon r\u00e9sum\u00e9 de colis ?", "orders", "mini"),  # composed, the examples are not
])
def test_other_scripts_and_forms_route_to_their_chain(routed: CliRunner, server: ReplayServer, query: str,
                                                      domain: str, model: str) -> None:
    row = routed("ask", query, "--json").json()
    assert (row["domain"], row["model"]) == (domain, model)
    assert [c["model"] for c in row["calls"]] == [model] and server.request_count() == 1


def test_a_megabyte_query_is_routed_by_all_of_it_and_sent_whole(routed: CliRunner,
                                                                server: ReplayServer) -> None:
    prose = "the weather was pleasant and we walked along the river talking about nothing much. " * 13_000
    query = prose + 'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\nKeyError: 1'
    run = routed("ask", "-", "--json", input=query)
    assert run.code == 0, run.stderr
    row = json.loads(run.stdout)
    assert (row["domain"], row["model"]) == ("code", "big")  # only its last lines say so
    [body] = server.requests
    assert body["messages"][-1]["content"] == query  # the model gets all of it
    [request] = rows(routed.db, "requests")
    assert request["domain"] == "code"
