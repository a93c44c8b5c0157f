"""Ledger locations: a path or sqlite:// URL is SQLite, postgresql:// is PostgreSQL, and a
password never shows in a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadeflow_cli.config import parse_config, resolve_ledger_location
from cascadeflow_cli.dburl import LedgerLocation, mask_url, parse_location
from cascadeflow_cli.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("ledger.db", Path("ledger.db")),
        ("/tmp/x/ledger.db", Path("/tmp/x/ledger.db")),
        ("sqlite:///rel/ledger.db", Path("rel/ledger.db")),
        ("sqlite:////abs/ledger.db", Path("/abs/ledger.db")),
        ("SQLITE:////abs/ledger.db", Path("/abs/ledger.db")),
    ],
)
def test_paths_and_sqlite_urls_are_sqlite(text: str, path: Path) -> None:
    location = parse_location(text)
    assert location == LedgerLocation(path=path)
    assert not location.is_postgres


@pytest.mark.parametrize("url", ["postgresql://u@h:5432/db", "postgres://h/db", "postgresql:///db?host=/tmp"])
def test_postgresql_urls_are_postgresql(url: str) -> None:
    location = parse_location(url)
    assert location.is_postgres and location.url == url and location.path is None


def test_a_relative_path_is_taken_from_the_config_directory(tmp_path: Path) -> None:
    assert parse_location("sqlite:///l.db", base=tmp_path).path == tmp_path / "l.db"
    assert parse_location("/abs.db", base=tmp_path).path == Path("/abs.db")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:hunter2@db:5432/cascade", "postgresql://alice:***@db:5432/cascade"),
        ("postgresql://alice@db/cascade", "postgresql://alice@db/cascade"),
        ("postgresql://db/cascade?sslmode=require&password=hunter2", "postgresql://db/cascade?sslmode=require&password=***"),
        ("postgresql://:p%40ss@db/c", "postgresql://:***@db/c"),
        ("postgresql://db:5432/c?application_name=a@b", "postgresql://db:5432/c?application_name=a@b"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert parse_location(url).display() == shown
    assert "hunter2" not in str(parse_location(url))


@pytest.mark.parametrize("text", ["mysql://h/db", "sqlite://ledger.db", "postgresql://u:pw@h:port/db"])
def test_bad_urls_are_refused_without_showing_the_password(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_location(text)
    assert "pw@" not in str(err.value)


@pytest.mark.parametrize("url", ["postgresql://alice:hun/ter?2@db/c", "postgresql://alice:hun#ter2@db/c",
                                 "postgresql://alice:hun@ter2@db/c"])
def test_a_password_holding_url_delimiters_as_typed_is_masked_whole_and_refused(url: str) -> None:
    assert mask_url(url) == "postgresql://alice:***@db/c"
    with pytest.raises(ConfigError, match="percent-encode") as err:
        parse_location(url)
    assert "hun" not in str(err.value) and "ter" not in str(err.value)


def test_password_env_is_read_at_connect_time_and_must_be_set() -> None:
    location = parse_location("postgresql://u@h/db", password_env="LEDGER_PW")
    assert location.password({"LEDGER_PW": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match=r"\$LEDGER_PW is not set") as err:
        location.password({})
    assert "s3cret" not in str(err.value)
    assert parse_location("postgresql://u@h/db").password({}) is None  # libpq's own sources


def test_resolution_order_flag_env_url_path(tmp_path: Path) -> None:
    config = parse_config('[ledger]\nurl = "postgresql://u@h/team"\npassword_env = "PW"\n',
                          tmp_path / "cascadeflow.toml")
    assert resolve_ledger_location(None, config, {}) == LedgerLocation(url="postgresql://u@h/team",
                                                                       password_env="PW")
    assert resolve_ledger_location(None, config, {"CASCADE_DB": "/e.db"}).path == Path("/e.db")
    flag = resolve_ledger_location("postgresql://f/db", config, {"CASCADE_DB": "/e.db"})
    assert flag.url == "postgresql://f/db" and flag.password_env == "PW"
    plain = parse_config('[ledger]\npath = "l.db"\n', tmp_path / "cascadeflow.toml")
    assert resolve_ledger_location(None, plain, {}).path == tmp_path / "l.db"


def test_config_refuses_both_path_and_url_and_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        parse_config('[ledger]\npath = "l.db"\nurl = "postgresql://h/db"\n')
    with pytest.raises(ConfigError, match=r"ledger\.url: .*unknown ledger URL scheme 'mysql'"):
        parse_config('[ledger]\nurl = "mysql://u:pw@h/db"\n')


def test_config_show_masks_the_url() -> None:
    from cascadeflow_cli.config import config_to_dict

    config = parse_config('[ledger]\nurl = "postgresql://u:hunter2@h/db"\n')
    assert config_to_dict(config)["ledger"]["url"] == "postgresql://u:***@h/db"
