"""Dates (--since/--until/--as-of), user names and budget amounts, through the real
entry point: a valid value round-trips, an invalid one is one line, exit 1, and the
ledger is byte-for-byte unchanged."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.properties.conftest import BadInputTally
from tests.properties.harness import fingerprint, run, scratch

pytestmark = pytest.mark.slow

HISTORY_DAYS = [date(2026, 3, 1) + timedelta(days=7 * i) for i in range(20)]


@pytest.fixture(scope="module")
def ledger() -> Iterator[tuple[Path, Path]]:
    """A config (no server: nothing here calls a model) and a ledger with weekly history."""
    with scratch() as tmp:
        root = Path(tmp)
        config = root / "cascadeflow.toml"
        config.write_text('[ledger]\ntimezone = "UTC"\n', encoding="utf-8")
        db = root / "ledger.db"
        history = root / "h.csv"
        rows = [f"{d.isoformat()}T12:00:00Z,alice,openai/gpt-4o,0.25" for d in HISTORY_DAYS]
        history.write_text("timestamp,user,model,cost\n" + "\n".join(rows) + "\n", encoding="utf-8")
        assert run("--config", str(config), "--db", str(db), "import", str(history)).code == 0
        assert (
            run("--config", str(config), "--db", str(db), "budget", "set", "alice", "--daily", "2").code == 0
        )
        yield config, db


def cascade(ledger: tuple[Path, Path], *args: str):
    config, db = ledger
    return run("--config", str(config), "--db", str(db), *args)


def refused(ledger: tuple[Path, Path], tally: BadInputTally, parser: str, *args: str) -> str:
    """Run a command that must refuse its input; check the contract, return the line."""
    before = fingerprint(ledger[1])
    result = cascade(ledger, *args)
    tally.record(parser, result.stderr)
    line = result.one_error_line()
    assert fingerprint(ledger[1]) == before
    return line


# --- dates ----------------------------------------------------------------------------

valid_days = st.dates(min_value=date(1971, 1, 1), max_value=date(9998, 12, 30))


@given(day=valid_days)
def test_a_valid_since_date_selects_exactly_the_days_from_it(ledger: tuple[Path, Path], day: date) -> None:
    result = cascade(ledger, "logs", "-n", "0", "--since", day.isoformat(), "--json")
    assert result.code == 0, result.stderr
    import json

    got = sorted(r["timestamp"][:10] for r in json.loads(result.stdout))
    assert got == [d.isoformat() for d in HISTORY_DAYS if d >= day]


@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 30)),
    zone=st.sampled_from(["Z", "+05:30", "-08:00", ""]),
)
def test_a_valid_date_time_is_accepted_everywhere(
    ledger: tuple[Path, Path], moment: datetime, zone: str
) -> None:
    text = moment.isoformat(timespec="seconds") + zone
    for args in (
        ["logs", "--since", text],
        ["usage", "--since", text, "--json"],
        ["export", "--until", text, "-o", str(ledger[0].parent / "x.csv")],
    ):
        result = cascade(ledger, *args)
        assert result.code == 0, (args, result.stderr)


bad_dates = st.one_of(
    st.text(min_size=1, max_size=30).filter(lambda s: not any(c.isdigit() for c in s)),
    st.builds(
        lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}",
        st.integers(0, 9999),
        st.integers(13, 99),
        st.integers(1, 28),
    ),
    st.builds(lambda y, m: f"{y:04d}-{m:02d}-31", st.integers(1971, 2100), st.sampled_from([2, 4, 6, 9, 11])),
    st.sampled_from(
        [
            "2026/01/01",
            "01-02-2026",
            "2026-1-1",
            "yesterday",
            "2026-02-30",
            "0000-01-01",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-01-01T25:00",
            "2026-01-01T10:00:00+24:00",
            "2026-01-01 10:00:00 UTC",
            "\udce9",
            " 2026-01-01 ",
        ]
    ),
)


@given(text=bad_dates)
def test_an_invalid_date_is_one_line_and_changes_nothing(
    ledger: tuple[Path, Path], text: str, tally: BadInputTally
) -> None:
    line = refused(ledger, tally, "dates", "logs", "--since", text)
    assert "--since" in line or "date" in line


@given(
    text=bad_dates,
    command=st.sampled_from(
        [["usage", "--until"], ["export", "--since"], ["anomalies", "--until"], ["forecast", "--as-of"]]
    ),
)
def test_every_date_option_refuses_the_same_way(
    ledger: tuple[Path, Path], text: str, command: list[str], tally: BadInputTally
) -> None:
    refused(ledger, tally, "dates", *command, text)


@pytest.mark.parametrize("edge", ["9999-12-31", "0001-01-01"])
def test_the_ends_of_the_calendar(ledger: tuple[Path, Path], edge: str, tally: BadInputTally) -> None:
    for command in (
        ["export", "--until", edge],
        ["usage", "--until", edge],
        ["forecast", "--as-of", edge],
        ["anomalies", "--until", edge],
        ["logs", "--since", edge],
    ):
        result = cascade(ledger, *command)
        tally.record("dates", result.stderr)
        assert result.code in (0, 1), result.stderr
        if result.code:
            result.one_error_line()


# --- user names -----------------------------------------------------------------------

# valid names: any text but surrogates, control characters (Cc) and invisible format
# characters (Cf): both refused
names = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf")), min_size=1, max_size=24).filter(
    lambda s: s.strip() == s and s)  # no space at either end (" alice " would look like alice)


@given(user=names)
def test_a_user_name_round_trips_through_budgets(ledger: tuple[Path, Path], user: str) -> None:
    import json
    import unicodedata

    stored = unicodedata.normalize("NFC", user)  # a name is kept composed, however typed
    assert cascade(ledger, "budget", "set", "--weekly", "3", "--", user).code == 0
    shown = cascade(ledger, "budget", "show", "--json", "--", user)
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["user"] == stored
    listed = json.loads(cascade(ledger, "budget", "list", "--json").stdout)
    assert stored in [b["user"] for b in listed]
    assert cascade(ledger, "budget", "rm", "--", user).code == 0


blank_names = st.text(" \t\n\r\u00a0\u2003", min_size=0, max_size=5)  # nothing but space
undecodable_names = st.one_of(
    st.builds(lambda a, b: a + "\udce9" + b, st.text(max_size=5), st.text(max_size=5)),  # not UTF-8
    st.builds(lambda a: a + "\ud800", st.text(max_size=5)),  # a lone surrogate
)
# a name holding a bidi control, a zero-width/invisible or a control character looks like another one
spoofing_names = st.builds(
    lambda a, c, b: a + c + b, st.text(max_size=5),
    st.sampled_from("\u200b\u00ad\u2060\ufeff\u202e\u2066\r\x1b\x7f\x85"), st.text(max_size=5),
) | st.builds(  # a space at either end: " alice" is shown as "alice"
    lambda a, space, at_end: a + space if at_end else space + a,
    st.text("abc", min_size=1, max_size=5), st.sampled_from(" \u00a0\u2003\t"), st.booleans(),
)


@given(
    user=st.one_of(blank_names, undecodable_names, spoofing_names),
    command=st.sampled_from(
        [["budget", "set", "--daily", "1", "--"], ["budget", "show", "--"], ["budget", "rm", "--"]]
    ),
)
def test_an_invalid_user_name_is_one_line_and_changes_nothing(
    ledger: tuple[Path, Path], user: str, command: list[str], tally: BadInputTally
) -> None:
    refused(ledger, tally, "user names", *command, user)


@given(
    user=undecodable_names,
    command=st.sampled_from(
        [["logs", "--user"], ["usage", "--user"], ["export", "--user"], ["forecast", "--user"]]
    ),
)
def test_an_undecodable_user_filter_is_one_line(
    ledger: tuple[Path, Path], user: str, command: list[str], tally: BadInputTally
) -> None:
    line = refused(ledger, tally, "user names", *command, user)
    assert "--user" in line and "not valid UTF-8 text" in line


# --- budget amounts -------------------------------------------------------------------

amounts = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10) ** 9, places=6)


@given(amount=amounts, window=st.sampled_from(["daily", "weekly", "monthly", "total"]), dollar=st.booleans())
def test_a_valid_amount_round_trips(
    ledger: tuple[Path, Path], amount: Decimal, window: str, dollar: bool
) -> None:
    import json

    text = ("$" if dollar else "") + str(amount)
    result = cascade(ledger, "budget", "set", "bob", f"--{window}", text)
    assert result.code == 0, result.stderr
    listed = {b["user"]: b for b in json.loads(cascade(ledger, "budget", "list", "--json").stdout)}
    assert math.isclose(listed["bob"][window], float(amount), rel_tol=1e-12)
    shown = json.loads(cascade(ledger, "budget", "show", "bob", "--json").stdout)
    limits = {w["window"]: w["limit"] for w in shown["windows"]}
    assert math.isclose(limits[window], float(amount), rel_tol=1e-12)


def _not_an_amount(text: str) -> bool:
    try:
        value = Decimal(text.strip().lstrip("$"))
    except ArithmeticError:
        return True
    # 0 is a limit ("may spend nothing"); an amount that rounds to $0 is not
    return not value.is_finite() or value < 0 or 0 < value < Decimal("0.0000000005") or value > 10**9


bad_amounts = st.one_of(
    st.decimals(max_value=Decimal("-0.000001"), allow_nan=False, allow_infinity=False).map(str),
    st.decimals(min_value=Decimal("1e-15"), max_value=Decimal("4e-10"), places=15).map(str),
    st.decimals(min_value=Decimal(10) ** 9 + 1, max_value=Decimal(10) ** 6 * 10**9).map(str),
    st.sampled_from(
        [
            "nan",
            "NaN",
            "inf",
            "-inf",
            "Infinity",
            "sNaN",
            "1,5",
            "5 USD",
            "$",
            "",
            "€5",
            "0x10",
            "1e10",
            "--1",
            "$-5",
            "5$",
        ]
    ),
    st.text(max_size=12).filter(_not_an_amount),
)


@given(text=bad_amounts, window=st.sampled_from(["daily", "weekly", "monthly", "total"]))
def test_an_invalid_amount_is_one_line_and_changes_nothing(
    ledger: tuple[Path, Path], text: str, window: str, tally: BadInputTally
) -> None:
    line = refused(ledger, tally, "budget amounts", "budget", "set", f"--{window}={text}", "--", "carol")
    assert window in line or "amount" in line or "limit" in line or "UTF-8" in line
