"""Run one request through the cascade (`cascade ask`), and what every command that
runs requests shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.engine.cascade import Cascade, CascadeResult
    from cascadeflow_cli.ledger.db import Ledger
    from cascadeflow_cli.ledger.records import LaterCall, RequestRecord

OnRecord = Callable[["RequestRecord | LaterCall"], None]  # a request, or a shadow call after it
OnRetry = Callable[[Any], None]


def make_cascade(config: AppConfig, ledger: Ledger, *, on_record: OnRecord | None = None,
                 on_retry: OnRetry | None = None, call_slots: Any = None) -> Cascade:
    """A cascade on ``ledger`` with its budget gate; ``on_record`` sees each finished
    request (telemetry), ``on_retry`` hears of each provider retry before its wait;
    ``call_slots``: the semaphore held while models are called (`cascade batch`)."""
    from cascadeflow_cli.engine.cascade import Cascade

    return Cascade(config, ledger, on_record=on_record, on_retry=on_retry, call_slots=call_slots)


def ask(cascade: Cascade, query: str, user: str, *, domain: str | None = None,
        models: Sequence[str] | None = None, system: str | None = None,
        max_tokens: int | None = None) -> CascadeResult:
    """Answer ``query`` for ``user`` with the cheapest model that is good enough
    (NotRecordedError carries the paid-for result when the ledger cannot take it)."""
    return cascade.run(query, user, domain=domain, models=list(models) if models else None, system=system,
                       max_tokens=max_tokens)


def wait_for_checks() -> list[str]:
    """Let the shadow verifications of accepted drafts still in flight (issue 9) finish,
    within their deadline: they label the drafts the calibration learns from. Returns a
    line for each paid shadow call the ledger could not take (it waits in the journal)."""
    from cascadeflow_cli.engine.shadow import unrecorded, wait_pending

    wait_pending()
    return unrecorded()
