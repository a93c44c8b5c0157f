"""`cascade ask`: one query through the cascade."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cascadeflow_cli.cli.context import app_context, default_user, is_terminal, stderr_console
from cascadeflow_cli.cli.options import check_domain
from cascadeflow_cli.money import MAX_COUNT
from cascadeflow_cli.text import escape_controls


def _chain(value: str) -> list[str]:
    return [m.strip() for m in value.split(",")]


def _check_chain(value: str | None) -> str | None:
    """An empty entry is refused: ``--models ""`` or ``,,`` fell back to the default
    chain, and ``" , mini"`` silently dropped a name."""
    if value is None:
        return None
    names = _chain(value)
    if not any(names):
        raise typer.BadParameter("no model named (give e.g. mini,big)")
    if not all(names):
        raise typer.BadParameter(f"empty model name at position {names.index('') + 1} in {value!r}")
    return value


def ask(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="The question. Use - to read it from stdin.")],
    user: Annotated[
        str | None,
        typer.Option(
            "--user", "-u", help="Who is asking (budgets, ledger). Default: $CASCADE_USER or 'default'."
        ),
    ] = None,
    domain: Annotated[str | None, typer.Option("--domain", callback=check_domain,
                                               help="Route with this domain's chain.")] = None,
    models: Annotated[
        str | None, typer.Option("--models", callback=_check_chain,
                                 help="Comma-separated chain, cheapest first.")
    ] = None,
    system: Annotated[str | None, typer.Option("--system", help="System prompt.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=1, max=MAX_COUNT, help="Output token limit per call.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Print the answer as it arrives.")] = False,
) -> None:
    """Answer QUERY with the cheapest model that is good enough."""
    import sys
    from contextlib import nullcontext

    from cascadeflow_cli.cli.telemetry_hook import telemetry
    from cascadeflow_cli.errors import NotRecordedError
    from cascadeflow_cli.text import decode_text
    from cascadeflow_cli.usecases.requests import ask as run
    from cascadeflow_cli.usecases.requests import make_cascade, wait_for_checks

    if query == "-":
        from cascadeflow_cli.errors import InputError
        from cascadeflow_cli.files import MAX_TEXT_BYTES, TooLargeError, read_capped

        try:
            raw = read_capped(sys.stdin.buffer, MAX_TEXT_BYTES, "the query on stdin")
        except TooLargeError as exc:
            raise InputError(str(exc)) from None
        query = decode_text(raw, "the query on stdin")
    # `--user ""` (an empty $VAR in a script) was charged to 'default', past the user's own
    # budget: only an absent --user means the default; the name is checked by the cascade
    who = default_user() if user is None else user
    context = app_context(ctx)
    # before the ledger: a bad endpoint stops us with nothing written
    on_record = telemetry(context, one_shot=True)
    err = stderr_console()
    # one line per provider retry, so a rate limit or a hanging server is never silent
    cascade = make_cascade(
        context.config,
        context.ledger(),
        on_record=on_record,
        on_retry=lambda notice: err.print(notice.describe(), markup=False, highlight=False),
    )
    chain = _chain(models) if models is not None else None
    if stream and not as_json:  # JSON is one object at the end: nothing to stream
        from cascadeflow_cli.cli.ask_stream import ask_streamed
        from cascadeflow_cli.cli.render import ask_summary

        result = ask_streamed(cascade, query, who, domain=domain, models=chain, system=system,
                              max_tokens=max_tokens)
        err.print(ask_summary(result))
        _wait_for_checks(wait_for_checks)
        return
    spinner = err.status("thinking…", spinner="dots") if is_terminal() and not as_json else nullcontext()
    try:
        with spinner:
            result = run(cascade, query, who, domain=domain, models=chain, system=system,
                         max_tokens=max_tokens)
    except NotRecordedError as exc:  # paid for: the answer is shown, then exit 4 says it waits
        if exc.result is not None:
            _show(exc.result, as_json, err)
        raise
    _show(result, as_json, err)
    _wait_for_checks(wait_for_checks)


def _wait_for_checks(wait: Any) -> None:
    """The shadow verifications in flight (usecases.requests.wait_for_checks), then a
    warning for each paid one the ledger could not take (it waits in the journal)."""
    import sys
    from contextlib import suppress

    with suppress(KeyboardInterrupt):  # the answer is out and recorded: leaving loses only a label
        for line in wait():
            sys.stderr.write(f"warning: {line}\n")


def _show(result: Any, as_json: bool, err: Any) -> None:
    import sys

    from cascadeflow_cli.cli.render import ask_summary

    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
    else:
        answer = result.answer.rstrip("\n")  # raw into a pipe; on a terminal, not its commands
        sys.stdout.write((escape_controls(answer) if sys.stdout.isatty() else answer) + "\n")
        err.print(ask_summary(result))
    sys.stdout.flush()  # the answer is out before any shadow verification is waited for
