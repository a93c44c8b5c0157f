"""``Cascade.run(cancel=...)``: a caller that leaves stops the cascade before the next
model (the draft it already paid for stays in the ledger), and one that left before the
first model is asked costs nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cascadeflow_cli.config import parse_config
from cascadeflow_cli.engine.cascade import Cascade
from cascadeflow_cli.engine.providers.cancel import Cancellation
from cascadeflow_cli.engine.providers.stream import StreamInterrupted
from cascadeflow_cli.engine.validators import build_validator
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.conftest import config_text, ledger_rows

QUERY = "Explain in detail how photosynthesis converts light into chemical energy."
REFUSAL = "I'm sorry, but I can't help with that."


class LeavesWhileJudged:
    """The configured validator; the caller leaves while it judges the draft (after the
    draft's call has answered, before the cascade would escalate)."""

    def __init__(self, inner: Any, cancel: Cancellation) -> None:
        self.inner, self.cancel = inner, cancel

    def validate(self, *args: Any, **kwargs: Any) -> Any:
        self.cancel.cancel()
        return self.inner.validate(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_caller_gone_after_the_draft_is_not_escalated_for(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    config = parse_config(config_text(server.base_url))
    cancel = Cancellation()
    db = tmp_path / "ledger.db"
    cascade = Cascade(config, open_ledger(db), validator=LeavesWhileJudged(build_validator(config), cancel))
    with pytest.raises(StreamInterrupted, match="the client disconnected"):
        cascade.run(QUERY, "alice", cancel=cancel)
    assert server.request_count("gpt-4o-mini") == 1 and server.request_count("gpt-4o") == 0
    [req] = ledger_rows(db, "requests")
    [draft] = ledger_rows(db, "calls")
    assert req["status"] == "interrupted" and req["error"] == "the client disconnected"
    assert draft["status"] == "ok" and draft["cost_nusd"] > 0 and req["cost_nusd"] == draft["cost_nusd"]
    assert ledger_rows(db, "reservations") == []


def test_a_caller_gone_before_any_model_costs_nothing(tmp_path: Path, server: ReplayServer) -> None:
    config = parse_config(config_text(server.base_url))
    cancel = Cancellation()
    cancel.cancel("the server is shutting down")
    db = tmp_path / "ledger.db"
    with pytest.raises(StreamInterrupted):
        Cascade(config, open_ledger(db)).run(QUERY, "alice", cancel=cancel)
    assert server.request_count() == 0
    [req] = ledger_rows(db, "requests")
    assert req["status"] == "interrupted" and req["cost_nusd"] == 0
    assert req["error"] == "the server is shutting down" and ledger_rows(db, "calls") == []
    assert ledger_rows(db, "reservations") == []
