"""The `cascade` command: global options, command registration, and the one place that
turns errors into a single stderr line and the documented exit code."""

from __future__ import annotations

import copy
import errno
import functools
import sys
from pathlib import Path
from typing import Annotated

import typer

from cascadeflow_cli.cli.context import AppContext, app_context
from cascadeflow_cli.errors import CascadeError, InterruptedRequest
from cascadeflow_cli.ledger import storage

app = typer.Typer(
    name="cascade",
    help="Answer each query with the cheapest LLM that is good enough, under per-user "
    "budgets, with every call recorded in a local SQLite ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", help="Config file (else $CASCADE_CONFIG, "
                                                 "./cascadeflow.toml, the user config dir).")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Ledger file or postgresql:// URL (else "
                                            "$CASCADE_DB, the config's ledger.url or ledger.path, "
                                            "the user data dir).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    context = app_context(ctx)  # main() made it; the options are known only now
    context.config_path = config
    context.db_path = db
    context.debug = debug


def _register() -> None:
    from cascadeflow_cli.cli import ask, budget_cmd, config_cmd, demo, logs, models

    app.command("ask")(ask.ask)
    app.command("logs")(logs.logs)
    app.command("models")(models.models)
    app.command("demo")(demo.demo)
    app.add_typer(config_cmd.config_app, name="config")
    app.add_typer(budget_cmd.budget_app, name="budget")
    from cascadeflow_cli.cli import batch_cmd, export_cmd, import_cmd, usage_cmd

    app.command("batch")(batch_cmd.batch)
    app.command("usage")(usage_cmd.usage)
    app.command("export")(export_cmd.export)
    app.command("import")(import_cmd.import_)
    from cascadeflow_cli.cli import anomalies_cmd, forecast_cmd
    app.command("forecast")(forecast_cmd.forecast)
    app.command("anomalies")(anomalies_cmd.anomalies)
    from cascadeflow_cli.cli import domain_cmd, quality_cmd
    app.command("domain")(domain_cmd.domain)
    app.add_typer(quality_cmd.quality_app, name="quality")
    from cascadeflow_cli.cli import calibrate_cmd, feedback_cmd

    app.command("calibrate")(calibrate_cmd.calibrate)
    app.command("feedback")(feedback_cmd.feedback)
    from cascadeflow_cli.cli import key_cmd, ledger_cmd, serve_cmd

    app.command("serve")(serve_cmd.serve)
    app.add_typer(key_cmd.key_app, name="key")
    app.add_typer(ledger_cmd.ledger_app, name="ledger")


_register()


def _secrets(context: AppContext) -> list[str]:
    """Values that must never be shown: the configured key variables' (when the config
    was loaded) and every secret-looking variable's."""
    from cascadeflow_cli.redact import secret_values

    config = context.__dict__.get("config")  # the cached_property, only if already loaded
    names = [m.api_key_env for m in config.models.values() if m.api_key_env] if config else []
    return secret_values(names)


def _fail(context: AppContext, message: str, code: int) -> int:
    """The one error renderer: one line on stderr, secrets redacted."""
    from cascadeflow_cli.redact import redact

    text = _one_line(" ".join(redact(message, _secrets(context)).split("\n")))
    sys.stderr.write(f"error: {text}\n")
    return code


def _traceback(context: AppContext, exc: BaseException, code: int) -> int:
    """--debug: the traceback, through the same redaction as every error line."""
    import traceback

    from cascadeflow_cli.redact import redact

    sys.stderr.write(redact("".join(traceback.format_exception(exc)), _secrets(context)))
    return code


def _one_line(message: str) -> str:
    """Control characters a bad input brought into the message (a vertical tab in a CSV
    header, a newline in a user name) escaped, so the error stays one line."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() or c == "\t" else ascii(c)[1:-1] for c in message)


def _usage_line(exc: Exception) -> str:
    """A click usage error as one line, pointing at the command's help."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} -h`)" if ctx is not None else ""
    return f"{message}{where}"


_GLOBAL_VALUED = ("--config", "--db")


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let the global options stand anywhere (`cascade logs --db x` as well as
    `cascade --db x logs`) by moving them in front of the command. Stops at `--`."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in _GLOBAL_VALUED and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 2
            continue
        if arg == "--debug" or arg.startswith(tuple(f"{o}=" for o in _GLOBAL_VALUED)):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _damaged_ledger_line(context: AppContext, exc: Exception) -> str:
    ledger = context._ledger
    where = f"{ledger.path}: " if ledger is not None else ""
    return (f"{where}cannot open ledger: {exc} (the file is damaged: restore a backup, or salvage it "
            "with `sqlite3 FILE .recover`)")


@functools.cache
def _command(only: str | None = None) -> typer.core.TyperGroup:
    """The click command tree, built once per process (in-process callers such as the
    property tests run main() thousands of times); every text parameter checked.

    ``only``: the tree with just that top-level command (and the global options). typer
    builds a command by evaluating every parameter's annotations: the whole tree of 26
    commands cost 190M instructions (callgrind), about 50 ms, on every invocation that
    runs one of them. ``--help``, a mistyped name and anything else get the whole tree."""
    from cascadeflow_cli.cli.textparams import guard_text_params

    if only is None:
        return guard_text_params(typer.main.get_command(app))
    one = copy.copy(app)
    one.registered_commands = [c for c in app.registered_commands if c.name == only]
    one.registered_groups = [g for g in app.registered_groups if g.name == only]
    return guard_text_params(typer.main.get_command(one))


def _command_for(args: list[str]) -> typer.core.TyperGroup:
    """The tree for ``args`` (global options already in front): just the command named,
    when it is one of ours and nothing asks for the root's help."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] in ("-h", "--help"):
            return _command()
        i += 2 if args[i] in _GLOBAL_VALUED else 1
    name = args[i] if i < len(args) else None
    known = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    return _command(name) if name in known else _command()


class _Signals:
    """Ctrl-C and SIGTERM: the first interrupts (KeyboardInterrupt, so the request in
    flight records its paid calls and releases its reservation); a second one during that
    cleanup is ignored, so it cannot tear the ledger close into a traceback; a third
    leaves at once (SQLite's commit is atomic; a reservation left behind is reclaimed by
    the next command, its process being dead)."""

    def __init__(self) -> None:
        self.seen = 0

    def install(self) -> None:
        import signal

        self.seen = 0
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def quiet(self) -> None:
        """From here on (error rendering, closing the ledger) signals do not interrupt."""
        self.seen = max(self.seen, 1)

    def _handle(self, signum: int, frame: object) -> None:
        import os
        import signal

        self.seen += 1
        if self.seen == 1:
            raise InterruptedRequest() if signum == signal.SIGTERM else KeyboardInterrupt()
        if self.seen >= 3:
            sys.stderr.write("error: interrupted\n")
            os._exit(130)


_signals = _Signals()
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG})


def _unexpected(context: AppContext, exc: Exception) -> int:
    if context.debug:
        return _traceback(context, exc, 1)
    return _fail(context, f"unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)", 1)


def _reader_left(exc: SystemExit) -> bool:
    """typer ends a command whose output met EPIPE with sys.exit(1) (even outside
    standalone mode), so a closed pipe reached main() as exit 1, never as the
    BrokenPipeError below: every `cascade ... | head -1` exited 1."""
    cause = exc.__context__
    return exc.code == 1 and isinstance(cause, OSError) and cause.errno == errno.EPIPE


def _silence_stdout() -> None:
    """Drop what stdout still holds (and point it at /dev/null), so the interpreter's
    final flush cannot fail again into a second message and exit code 120."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _stdout_that_encodes() -> None:
    """An ASCII stdout (LC_ALL=C with PYTHONUTF8=0) made `budget list` of a user 'Zoë' an
    'unexpected UnicodeEncodeError': it writes UTF-8, as Python itself does for the C
    locale by default (PEP 540). Another non-UTF-8 stdout (latin-1) keeps its encoding
    and spells out what it cannot hold (\\u65e5, valid in JSON too). stderr likewise: its
    lines read 'budget for Zo\\xeb' beside a stdout that printed 'Zoë'."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if encoding.startswith("utf") or not hasattr(stream, "reconfigure"):
            continue
        try:
            if encoding in ("ascii", "ansix3.41968", "usascii"):
                stream.reconfigure(encoding="utf-8", errors=stream.errors)
            else:
                stream.reconfigure(errors="backslashreplace")
        except (OSError, ValueError):
            pass


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, map every failure to one line and an exit code.

    main() owns the invocation: it makes the AppContext (handed to click as ``obj``, so
    every command finds it on its ``typer.Context``) because it still needs it after the
    command has failed, to redact the error line and then close the ledger."""
    _signals.install()
    _stdout_that_encodes()
    args = hoist_global_options(sys.argv[1:] if argv is None else argv)
    command = _command_for(args)
    context = AppContext(debug="--debug" in args)
    try:
        result = command.main(args=args or ["--help"], prog_name="cascade", standalone_mode=False,
                              obj=context)
        sys.stdout.flush()  # here, not at exit: a full disk under stdout is one error line too
        code = result if isinstance(result, int) else 0
        if code == 130:  # typer turns Ctrl-C into exit code 130 without a word
            _fail(context, "interrupted", 130)
    except typer.Exit as exc:
        code = exc.exit_code
    except SystemExit as exc:
        if not _reader_left(exc):
            raise
        _silence_stdout()
        code = 0  # errors.md: `cascade usage | head -1`, the reader left: nothing is wrong
    except typer.Abort:
        _signals.quiet()
        code = _fail(context, "aborted", 130)
    except typer.TyperException as exc:  # typer's own click: bad flags, missing arguments
        if type(exc).__name__ == "NoArgsIsHelpError":  # `cascade budget`: show its help
            sys.stdout.write(exc.ctx.get_help() + "\n")  # type: ignore[attr-defined]
            code = 0
        else:
            code = _fail(context, _usage_line(exc), 1)  # CLI.md: usage errors exit 1, one line
    except CascadeError as exc:
        code = (_traceback(context, exc, exc.exit_code) if context.debug
                else _fail(context, str(exc), exc.exit_code))
    except KeyboardInterrupt:
        _signals.quiet()
        code = _fail(context, "interrupted", 130)
    except storage.DatabaseError as exc:  # a damaged page met mid-read, past the checks at open
        code = (_traceback(context, exc, 1) if context.debug
                else _fail(context, _damaged_ledger_line(context, exc), 1))
    except BrokenPipeError:
        _silence_stdout()  # what stdout still buffers must not fail again at exit (code 120)
        code = 0  # `cascade logs | head`: the reader left, nothing is wrong
    except MemoryError:  # what the caps of files.py do not bound: one line, not `unexpected`
        code = _fail(context, "out of memory (an input too large to hold, or one that never ends "
                     "such as /dev/zero?)", 1)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG and exc.filename is not None and not context.debug:
            # a path from a config key or a file's row (options are checked at parsing)
            name = str(exc.filename)
            code = _fail(context, f"{name[:60]}...: {exc.strerror}" if len(name) > 80
                         else f"{name}: {exc.strerror}", 1)
        elif exc.filename is not None or exc.errno not in _OUTPUT_ERRNOS or context.debug:
            code = _unexpected(context, exc)
        else:  # a write to stdout or stderr (no file name): a full disk, a device that refuses
            _silence_stdout()
            paid = " (the answer is recorded in the ledger: `cascade logs`)" if "ask" in args else ""
            code = _fail(context, f"cannot write the output: {exc.strerror}{paid}", 1)
    except Exception as exc:
        code = _unexpected(context, exc)
    finally:
        _signals.quiet()
        context.close()
    sys.exit(code)
