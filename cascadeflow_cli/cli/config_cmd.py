"""`cascade config path|show|init`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cascadeflow_cli.cli.context import app_context

config_app = typer.Typer(help="Find, show and create the configuration file.", no_args_is_help=True)


@config_app.command("path")
def path(ctx: typer.Context) -> None:
    """Print the config file in use (or where one would be read from)."""
    from cascadeflow_cli.config import find_config, user_config_path

    found, _ = find_config(app_context(ctx).config_path)
    if found is None:
        sys.stdout.write(f"{user_config_path()}\n")
        sys.stderr.write(
            "(no config file yet: built-in defaults are in use; `cascade config init` creates one there)\n"
        )
    else:
        sys.stdout.write(f"{found}\n")


@config_app.command("show")
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON instead of TOML.")] = False,
) -> None:
    """Print the effective configuration (file values plus defaults)."""
    import tomli_w

    from cascadeflow_cli.config import config_to_dict
    from cascadeflow_cli.dburl import mask_url
    from cascadeflow_cli.redact import redact

    context = app_context(ctx)
    data = config_to_dict(context.config)
    where = context.resolved_location  # a URL shown with its password masked
    data["ledger"]["url" if where.is_postgres else "path"] = where.display()
    # a key put into a provider's or the collector's URL (user:KEY@host, ?api_key=KEY) was
    # printed as written (hostile-4): shown like the ledger URL, masked and redacted
    for model in data.get("models") or []:
        if isinstance(model.get("api_base"), str):
            model["api_base"] = redact(mask_url(model["api_base"]))
    telemetry = data.get("telemetry") or {}
    if isinstance(telemetry.get("endpoint"), str):
        telemetry["endpoint"] = redact(mask_url(telemetry["endpoint"]))
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        source = context.config.source or "built-in defaults"
        sys.stdout.write(f"# effective configuration (from {source})\n" + tomli_w.dumps(data))


@config_app.command("init")
def init(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Option("--path", help="Where to write it (default: --config, else $CASCADE_CONFIG, "
                     "else the user config dir; use --path cascadeflow.toml for this directory)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter cascadeflow.toml."""
    from cascadeflow_cli.config import starter_config, user_config_path
    from cascadeflow_cli.errors import InputError
    from cascadeflow_cli.files import is_special

    env_config = os.environ.get("CASCADE_CONFIG")
    given = path or app_context(ctx).config_path
    target = given or (Path(env_config) if env_config else None) or user_config_path()
    if target.exists() and not force:
        raise InputError(f"{target}: already exists (use --force to overwrite)")
    if is_special(target):  # a FIFO nobody reads held `config init --force` for ever (hostile-21's fuzz)
        raise InputError(f"{target}: not a regular file: the configuration is written to a file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(starter_config(), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {exc.strerror or exc}") from None
    sys.stdout.write(f"{target}\n")
    _say_which_file_is_read(target, app_context(ctx).config_path)


def _say_which_file_is_read(written: Path, config_path: Path | None) -> None:
    """A file written where the lookup order does not reach it (a ./cascadeflow.toml here
    comes before the user config dir) would be ignored without a word: say so."""
    from cascadeflow_cli.config import find_config

    in_use, _ = find_config(config_path)
    if in_use is not None and in_use.resolve() == written.resolve():
        return
    if in_use is None:
        sys.stderr.write(f"note: commands read {written} only when given --config {written} "
                         "or $CASCADE_CONFIG\n")
        return
    sys.stderr.write(f"note: commands run here read {in_use}, not this file: the lookup order is "
                     "--config, $CASCADE_CONFIG, ./cascadeflow.toml, the user config dir "
                     f"(use --config {written} to read this one)\n")
