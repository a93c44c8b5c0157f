"""Where the config and the ledger are: flag, environment, this directory, the user's
dirs; and loading the config found."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cascadeflow_cli.config.parse import parse_config
from cascadeflow_cli.config.settings import APP_NAME, CONFIG_FILENAME, AppConfig, default_config
from cascadeflow_cli.errors import ConfigError, InputError
from cascadeflow_cli.files import TooLargeError, expanded, path_problem, read_path_capped

if TYPE_CHECKING:
    from cascadeflow_cli.dburl import LedgerLocation

# --- locating ---------------------------------------------------------------------


def user_config_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME)) / CONFIG_FILENAME


def user_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def find_config(
    explicit: Path | None = None, env: Mapping[str, str] = os.environ
) -> tuple[Path | None, bool]:
    """Where the config is: ``(path, must_exist)``. Order: flag, $CASCADE_CONFIG,
    ./cascadeflow.toml, the user config dir. An explicitly named file must exist;
    the implicit places are optional (``path`` is None when none of them has one)."""
    if explicit is not None:
        return expanded(explicit), True
    if env.get("CASCADE_CONFIG"):
        return expanded(Path(env["CASCADE_CONFIG"])), True
    for candidate in (Path.cwd() / CONFIG_FILENAME, user_config_path()):
        if candidate.is_file():
            return candidate, False
    return None, False


def resolve_db_path(explicit: Path | None, config: AppConfig, env: Mapping[str, str] = os.environ) -> Path:
    """Ledger location: flag, $CASCADE_DB, the config's ``ledger.path``, the user data dir."""
    if explicit is not None:
        return expanded(explicit)
    if env.get("CASCADE_DB"):
        return expanded(Path(env["CASCADE_DB"]))
    if config.ledger.path is not None:
        return config.ledger.path
    return user_data_dir() / "ledger.db"


def _named(location: str | Path, what: str) -> str | Path:
    """A ledger path that can name a file (files.path_problem); a URL is the URL parser's."""
    text = str(location)
    problem = None if "://" in text else path_problem(text)
    if problem is not None:
        raise InputError(f"{what}: {problem}")
    return location


def resolve_ledger_location(
    explicit: str | Path | None, config: AppConfig, env: Mapping[str, str] = os.environ
) -> LedgerLocation:
    """Like ``resolve_db_path``, for either backend: ``--db`` or ``$CASCADE_DB`` may be a
    path or a URL, and the config's ``ledger.url`` comes before its ``ledger.path``."""
    from cascadeflow_cli.dburl import LedgerLocation, parse_location

    password_env = config.ledger.password_env
    if explicit is not None:
        if not str(explicit).strip():  # it was read as ".": 'is a directory, not a ledger file'
            raise InputError("--db is empty: give a ledger file or a postgresql:// URL")
        return parse_location(_named(explicit, "--db"), password_env=password_env)
    if env.get("CASCADE_DB"):
        return parse_location(_named(env["CASCADE_DB"], "$CASCADE_DB"), password_env=password_env)
    if config.ledger.url is not None:
        base = config.source.parent if config.source else None
        return parse_location(config.ledger.url, base=base, password_env=password_env)
    return LedgerLocation(path=resolve_db_path(None, config, env))


def load_config(explicit: Path | None = None, env: Mapping[str, str] = os.environ) -> AppConfig:
    path, must_exist = find_config(explicit, env)
    if path is None:
        return default_config()
    if not path.exists() and must_exist:
        raise ConfigError(f"{path}: config file not found")
    try:
        # utf-8-sig: a file saved by Windows Notepad starts with a BOM, which TOML refuses
        # ("Invalid statement (at line 1, column 1)", hostile-4); CRLF lines TOML takes
        text = read_path_capped(path).decode("utf-8-sig")
    except TooLargeError as exc:
        raise ConfigError(f"{exc}: not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_config(text, path)
