"""The cascade behind the HTTP endpoint: requests run in a bounded pool of threads,
each with its own Cascade and SQLite connection, so the ledger is written off the event
loop (the reservation before the provider call and the record after it are the same
transactions `cascade ask` makes: this is `Cascade.run`, not a copy of it)."""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.engine.cascade import Cascade, CascadeResult
from cascadeflow_cli.engine.providers.cancel import Cancellation
from cascadeflow_cli.engine.providers.stream import StreamInterrupted, StreamSink
from cascadeflow_cli.engine.shadow import should_shadow
from cascadeflow_cli.engine.streaming import stream_answer
from cascadeflow_cli.errors import (
    BudgetBlockedError,
    CascadeError,
    InputError,
    LedgerError,
    NotRecordedError,
    ProviderBadRequestError,
    ProviderError,
    RevokedKeyError,
)
from cascadeflow_cli.ledger.enforcement import BudgetGate, Decision
from cascadeflow_cli.ledger.keys import ApiKey, authenticate, hash_key
from cascadeflow_cli.ledger.records import LaterCall
from cascadeflow_cli.redact import redact
from cascadeflow_cli.server.limits import limiter_for
from cascadeflow_cli.server.shapes import ApiError, ChatCall, query_of

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.ledger.db import Ledger
    from cascadeflow_cli.ledger.records import RequestRecord


@dataclass
class Outcome:
    """One answered request: the cascade's result, its ledger record (None if it could
    not be recorded), and the final call's finish reason."""

    result: CascadeResult
    record: RequestRecord | None
    recorded: bool = True

    @property
    def finish_reason(self) -> str | None:
        if self.record is None or not self.record.calls:
            return None
        return self.record.calls[-1].finish_reason


@dataclass
class _Observed:
    """What the current request told the gate and the ledger."""

    decision: Decision | None = None
    record: RequestRecord | None = None
    on_start: Callable[[str, Decision], None] | None = None
    key: ApiKey | None = None  # the caller's key: its own budget is checked with its user's
    cached: bool = False  # the key came from the runner's cache: the reservation confirms it
    parent: Any = None  # the caller's trace context (an incoming traceparent), for telemetry


# the request a pool thread or a bridged greenlet is running (each has its own context)
_current: contextvars.ContextVar[_Observed] = contextvars.ContextVar("cascade_serve_request")


class _ObservedGate:
    """The budget gate, noting each decision for the thread that asked (the 429's
    Retry-After is the refusing window's reset, which the error alone does not carry)."""

    def __init__(self, gate: BudgetGate) -> None:
        self._gate = gate

    def reserve(self, *args: Any, **kwargs: Any) -> Decision:
        seen = _current.get(None)  # None: not a served request's (a shadow verification's)
        decision = self._gate.reserve(
            *args, key=seen.key if seen else None, verify_key=seen.cached if seen else False, **kwargs
        )
        if seen is None:
            return decision
        seen.decision = decision
        request_id = kwargs.get("request_id", args[1] if len(args) > 1 else "")
        if seen.on_start is not None and decision.action != "block":
            seen.on_start(request_id, decision)
        return decision

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gate, name)


def trace_parent(traceparent: str | None, tracestate: str | None) -> Any:
    """The caller's W3C trace context as telemetry's parent, or None (no header, a
    malformed one, or a telemetry package without trace-context support)."""
    if not traceparent:
        return None
    try:
        from cascadeflow_cli.telemetry.context import parent_from_traceparent  # type: ignore[import-not-found]
    except ImportError:
        return None
    return parent_from_traceparent(traceparent, tracestate)


_MAX_CACHED_KEYS = 10_000  # then the cache starts over (keys are few; this bounds a flood)


def _bad_key(key: str | None) -> ApiError:
    message = (
        # not "Bearer <key>": the redaction every error goes through made it "Bearer [redacted]"
        "you didn't provide an API key: send one in an 'Authorization: Bearer' header"
        if not key
        else "incorrect API key provided (create one with `cascade key create USER`)"
    )
    return ApiError(401, message, code="invalid_api_key")


def _left(cancel: Cancellation) -> ApiError:
    """The answer to a client that has gone (for the access log: nobody reads it)."""
    return ApiError(499, cancel.reason, type="client_closed_request", code="client_closed")


def _unavailable(exc: LedgerError) -> ApiError:
    return ApiError(503, redact(str(exc)), type="server_error", code="ledger_unavailable")


class Runner:
    """Runs chat calls through the cascade on ``concurrency`` threads, or, ``bridged``,
    whole answers in the request's own task (server/bridge.py: needs greenlet, and a
    ledger whose writes the tasks can await: SQLite's group commit)."""

    def __init__(
        self,
        config: AppConfig,
        ledger: Ledger,
        *,
        concurrency: int,
        on_record: Callable[[RequestRecord], None] | None = None,
        bridged: bool = False,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="cascade-serve")
        self.limiter = limiter_for(ledger)  # the rpm windows every server on the ledger shares
        gate = BudgetGate(ledger, config)
        if bridged:  # the reservation's own transaction reads the budget again (SQLite)
            gate.budgets = {}
        self._gate = _ObservedGate(gate)
        self._on_record = on_record
        self._traced: dict[str, Any] = {}  # request id -> its caller's trace, until its shadow call
        self._local = threading.local()
        self._bridge: Any = None
        self._bridged: Cascade | None = None
        self._running: set[asyncio.Future[Any]] = set()
        # key hash -> key, bridged (SQLite) only: a chat request's key lookup was ~5% of its
        # CPU (py-spy, 50 clients); a cached key is confirmed active inside the transaction
        # that reserves its budget (BudgetGate.reserve, verify_key), so a revoked one is
        # still refused before any provider call, on every server sharing the ledger
        self._keys: dict[str, ApiKey] | None = {} if bridged else None
        self._exec_pool: ThreadPoolExecutor | None = None
        if bridged:
            from cascadeflow_cli.engine.validators import build_validator, code_execution
            from cascadeflow_cli.server import bridge

            self._bridge = bridge
            validator = None
            if config.quality.calibration is not None and code_execution(config.quality):
                # a draft's code runs in a forked child for up to its time limit: waited for
                # on these threads, not the loop (as many as the sandbox runs at once)
                from cascadeflow_cli.quality.code_exec import SLOTS, run_program

                self._exec_pool = ThreadPoolExecutor(SLOTS, thread_name_prefix="cascade-exec")
                validator = build_validator(config, run_code=bridge.off_loop(run_program, self._exec_pool))
            self._bridged = Cascade(
                config,
                ledger,
                validator=validator,  # type: ignore[arg-type]
                gate=self._gate,  # type: ignore[arg-type]
                on_record=self._recorded,
                provider_lookup=bridge.Providers(self.pool),
                sleep=bridge.sleep,
            )

    @property
    def traced(self) -> bool:
        """Whether a caller's trace context is used (telemetry is on): else not read."""
        return self._on_record is not None

    @property
    def bridged(self) -> bool:
        return self._bridged is not None

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` off the loop's own code: bridged in this task, else on a pool thread."""
        if self._bridge is not None:
            return await self._bridge.run(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def start(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """``fn()`` started as ``call`` would run it, without waiting for it."""
        if self._bridge is not None:
            task = asyncio.ensure_future(self._bridge.run(fn))
            self._running.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._running.discard)
            return task
        return asyncio.get_running_loop().run_in_executor(self.pool, fn)

    def _cascade(self) -> Cascade:
        if self._bridged is not None and self._bridge.active():
            return self._bridged  # one for every task: its state per request lives in run()
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = Cascade(
                self.config,
                self.ledger,
                gate=self._gate,
                on_record=self._recorded,  # type: ignore[arg-type]
            )
        return cascade

    def _recorded(self, record: RequestRecord | LaterCall) -> None:
        seen = _current.get(None)
        if isinstance(record, LaterCall):  # a shadow call, in its own thread: in its request's trace
            parent = self._traced.pop(record.request_id, None)
            if self._on_record is not None:
                self._on_record(record, parent)  # type: ignore[call-arg]
            return
        if seen is not None:
            seen.record = record
        if self._on_record is None:
            return
        if seen is not None and seen.parent is not None:  # continue the caller's trace (telemetry/context.py)
            if record.draft_accepted and should_shadow(record.id, self.config.quality.shadow_rate):
                if len(self._traced) >= _MAX_CACHED_KEYS:  # shadows skipped (MAX_PENDING) leave theirs
                    self._traced.clear()
                self._traced[record.id] = seen.parent  # its shadow's span goes in that trace too
            self._on_record(record, seen.parent)  # type: ignore[call-arg]
        else:
            self._on_record(record)

    def authenticate(self, key: str | None) -> ApiKey:
        """The caller's key (in a pool thread: it reads the ledger), else a 401."""
        return self._authenticate(key)[0]

    def _authenticate(self, key: str | None, *, cache: bool = False) -> tuple[ApiKey, bool]:
        """The caller's key and whether it came from the cache (``cache``: the request
        will reserve, and the reservation confirms a cached key), else a 401."""
        found, cached = None, False
        if key:
            keys = self._keys if cache else None
            digest = hash_key(key) if keys is not None else ""
            found = keys.get(digest) if keys is not None else None
            cached = found is not None
            if found is None:
                try:
                    found = authenticate(self.ledger, key)
                except LedgerError as exc:  # PostgreSQL restarting: a 503, not a bare 500 (hostile-10)
                    raise _unavailable(exc) from None
                if found is not None and keys is not None:
                    if len(keys) >= _MAX_CACHED_KEYS:
                        keys.clear()
                    keys[digest] = found
        if found is None:
            raise _bad_key(key)
        try:
            self.limiter.check(found)
        except LedgerError as exc:  # the window is in the database (PostgreSQL), away as above
            raise _unavailable(exc) from None
        return found, cached

    def answer(
        self,
        key: str | None,
        call: ChatCall,
        sink: StreamSink | None = None,
        on_start: Callable[[str, Decision], None] | None = None,
        on_whole: Callable[[Outcome], None] | None = None,
        traceparent: tuple[str | None, str | None] = (None, None),
        cancel: Cancellation | None = None,
    ) -> tuple[ApiKey, Outcome]:
        """Authenticate, then run ``call`` as the key's user (in a pool thread). Errors
        come out as ApiError; with ``sink``, the answer streams into it. ``on_start``
        hears the request id and budget decision before any provider is called, ``on_whole``
        of an answer complete before its first piece is streamed (an accepted draft).
        ``cancel`` (an answer not streamed): the client left, the cascade stops (a 499)."""
        gone = cancel or sink
        if gone is not None and gone.cancelled:  # it left while queued: nothing is asked
            raise _left(gone)
        caller, cached = self._authenticate(key, cache=True)
        seen = _Observed(on_start=on_start, key=caller, cached=cached)
        seen.parent = trace_parent(*traceparent) if self._on_record is not None else None
        _current.set(seen)
        cascade = self._cascade()

        def run(into: StreamSink | None = None) -> CascadeResult:
            return cascade.run(
                query_of(call.messages),
                caller.user,
                domain=call.target.domain,
                models=call.target.models,
                max_tokens=call.max_tokens,
                conversation=call.messages,
                sink=into,
                cancel=cancel,
                stop=call.stop,
            )

        try:
            if sink is None:
                result = run()
            else:
                whole = (lambda r: on_whole(Outcome(r, seen.record))) if on_whole else None
                result = stream_answer(run, sink, whole)
        except NotRecordedError as exc:  # answered and paid for: the answer still goes out
            if not isinstance(exc.result, CascadeResult):
                raise self.error(exc, seen) from None
            return caller, Outcome(exc.result, seen.record, recorded=False)
        except StreamInterrupted:
            if sink is not None or cancel is None:  # the stream's reader decides (server/app.py)
                raise
            # recorded as interrupted; as a KeyboardInterrupt it must not reach the event
            # loop (asyncio re-raises one out of the loop: the server would end)
            raise _left(cancel) from None
        except RevokedKeyError:
            if self._keys is not None:
                self._keys.pop(hash_key(key or ""), None)
            raise _bad_key(key) from None
        except CascadeError as exc:
            error = self.error(exc, seen)
            # a refused or failed request names its caller in the access log, as a served one does
            error.caller = (caller.prefix, caller.user, seen.record.id if seen.record else None)
            raise error from None
        return caller, Outcome(result, seen.record)

    def error(self, exc: CascadeError, seen: _Observed) -> ApiError:
        """A cascade error as the HTTP error to answer (its message redacted)."""
        message = redact(str(exc))
        if isinstance(exc, BudgetBlockedError):
            return ApiError(
                429,
                message,
                type="insufficient_quota",
                code="budget_exceeded",
                headers=self._retry_after(seen.decision),
            )
        if isinstance(exc, InputError):
            return ApiError(400, message)
        if isinstance(exc, ProviderBadRequestError) and exc.status == 400:
            # the request as sent was refused (a max_tokens above a limit we do not know, a
            # prompt past the context): a 502 the SDK retried twice for nothing (hostile-11)
            return ApiError(400, message, code="provider_bad_request")
        if isinstance(exc, ProviderError):
            # the provider's own Retry-After (a 429 or 503 after our retries), passed on: else
            # the SDK retried the 502 at once, at a provider that asked for a pause (hostile-10)
            wait = {} if exc.retry_after is None else {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
            return ApiError(502, message, type="api_error", code="provider_error", headers=wait)
        if isinstance(exc, LedgerError):
            return _unavailable(exc)
        return ApiError(500, message, type="server_error", code=type(exc).__name__)

    def _retry_after(self, decision: Decision | None) -> dict[str, str]:
        """Seconds until the refusing window resets; none for the total (it never does)."""
        window = decision.window if decision is not None else None
        if window is None or window.resets_at is None:
            return {}
        seconds = (window.resets_at - self.ledger.clock.now()).total_seconds()
        return {"Retry-After": str(max(1, math.ceil(seconds)))}

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self._exec_pool is not None:
            self._exec_pool.shutdown(wait=True)
