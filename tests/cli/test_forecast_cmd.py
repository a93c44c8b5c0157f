"""`cascade forecast` and `cascade anomalies` end to end, over a ledger seeded here."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.records import CallRecord, RequestRecord
from cascadeflow_cli.money import nanos_from_usd
from tests.conftest import CliRunner, Run, assert_one_error_line

FIRST = date(2026, 6, 1)  # a Monday
DAYS = 120
AS_OF = FIRST + timedelta(days=DAYS)  # the day after the last day of data
SPIKE = FIRST + timedelta(days=100)  # a Thursday
FORECAST_KEYS = {"user", "as_of", "horizon_days", "mean", "lower", "upper", "confidence", "daily",
                 "budget", "risk", "method"}
ANOMALY_KEYS = {"date", "user", "expected", "actual", "score", "severity", "kind", "description"}
CONFIG = '[ledger]\ntimezone = "Europe/Berlin"\n'


def _strict(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def _seed(db: Path) -> None:
    """alice: weekday/weekend spend on two models with one spike; bob: steady and small."""
    rng = np.random.default_rng(5)
    with open_ledger(db) as ledger:
        for i in range(DAYS):
            day = FIRST + timedelta(days=i)
            weekend = day.weekday() >= 5
            alice = (3.0 if weekend else 20.0) * float(np.exp(rng.normal(0, 0.1)))
            if day == SPIKE:
                alice *= 4
            for user, usd, models in (("alice", alice, ("mini", "big")), ("bob", 1.0, ("mini",))):
                _request(ledger, f"{user}-{i}", f"{day.isoformat()}T10:00:00.000000Z", user, usd, models)


def _request(ledger: Any, rid: str, ts: str, user: str, usd: float, models: tuple[str, ...]) -> None:
    cost = nanos_from_usd(round(usd, 6))
    share = cost // len(models)
    calls = tuple(CallRecord(id=f"{rid}-{k}", request_id=rid, ts=ts, seq=k,
                             role="draft" if k == 0 else "verifier", model=m, model_id=f"openai/{m}",
                             provider="openai", status="ok",
                             cost_nusd=share if k < len(models) - 1 else cost - share * (len(models) - 1))
                  for k, m in enumerate(models))
    ledger.record(RequestRecord(id=rid, ts=ts, user=user, status="ok", query="q", answer="a",
                                cost_nusd=cost, calls=calls))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRunner]:
    tmp = tmp_path_factory.mktemp("forecast")
    config = tmp / "cascadeflow.toml"
    config.write_text(CONFIG, encoding="utf-8")
    runner = CliRunner(tmp, config, tmp / "ledger.db")
    _seed(runner.db)
    run = runner("budget", "set", "alice", "--monthly", "400")
    assert run.code == 0, run.stderr
    yield runner


def forecast_json(runner: CliRunner, *args: str) -> dict[str, Any]:
    run = runner("forecast", "--json", *args)
    assert run.code == 0, run.stderr
    data = _strict(run.stdout)
    assert set(data) >= FORECAST_KEYS
    return data


def test_forecast_json_with_a_budget(seeded: CliRunner) -> None:
    data = forecast_json(seeded, "--user", "alice", "--as-of", AS_OF.isoformat())
    assert data["user"] == "alice" and data["as_of"] == AS_OF.isoformat()
    assert data["horizon_days"] == 30 and len(data["daily"]) == 30 and data["confidence"] == 0.9
    assert 0 < data["lower"] < data["mean"] < data["upper"]
    typical = sum(3.0 if (AS_OF + timedelta(days=i)).weekday() >= 5 else 20.0 for i in range(30))
    assert data["lower"] < typical < data["upper"]
    assert data["daily"][0]["date"] == AS_OF.isoformat()
    weekday = [d["mean"] for d in data["daily"] if date.fromisoformat(d["date"]).weekday() < 5]
    weekend = [d["mean"] for d in data["daily"] if date.fromisoformat(d["date"]).weekday() >= 5]
    assert min(weekday) > max(weekend)
    budget = data["budget"]
    assert budget["window"] == "monthly" and budget["limit"] == 400.0
    assert budget["period_start"] == "2026-09-01" and budget["period_end"] == "2026-09-30"
    september = [FIRST + timedelta(days=i) for i in range(92, DAYS)]
    spent = sum((3.0 if d.weekday() >= 5 else 20.0) * (4 if d == SPIKE else 1) for d in september)
    assert budget["spent_to_date"] == pytest.approx(spent, rel=0.1)
    assert 0.0 <= data["risk"] <= 1.0 and data["risk"] == budget["risk"]
    assert data["method"]


def test_risk_rises_as_the_budget_falls(seeded: CliRunner, tmp_path: Path) -> None:
    risks = []
    for monthly in ("20", "29.5", "10000"):  # bob: $1 a day, $28 by 2026-09-29
        config = tmp_path / f"c{monthly}.toml"
        config.write_text(CONFIG + f"[budgets.default]\nmonthly = {monthly}\n", encoding="utf-8")
        runner = CliRunner(tmp_path, config, seeded.db)
        risks.append(forecast_json(runner, "--user", "bob", "--as-of", AS_OF.isoformat())["risk"])
    assert risks[0] >= risks[1] >= risks[2]
    assert risks[0] == 1.0 and risks[2] == 0.0


def test_forecast_without_a_budget_and_for_everyone(seeded: CliRunner) -> None:
    bob = forecast_json(seeded, "--user", "bob", "--as-of", AS_OF.isoformat(), "--horizon", "7")
    assert bob["budget"] is None and bob["risk"] is None and len(bob["daily"]) == 7
    assert bob["mean"] == pytest.approx(7.0, rel=0.05)
    everyone = forecast_json(seeded, "--as-of", AS_OF.isoformat())
    assert everyone["user"] is None and everyone["risk"] is None
    assert everyone["mean"] > bob["mean"]


def test_forecast_human_output_has_the_alert_and_the_chart(seeded: CliRunner) -> None:
    run = seeded("forecast", "--user", "alice", "--as-of", "2026-09-20")
    assert run.code == 0, run.stderr
    assert "Forecast for alice" in run.stdout and "90% interval" in run.stdout
    assert "monthly" in run.stdout and "risk" in run.stdout
    assert "█" in run.stdout and "●" in run.stdout


def test_the_budget_path_alert(tmp_path: Path) -> None:
    config = tmp_path / "cascadeflow.toml"
    config.write_text(CONFIG + "[budgets.default]\nmonthly = 200\n", encoding="utf-8")
    runner = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    with open_ledger(runner.db) as ledger:
        for i in range(60):
            day = date(2026, 3, 1) + timedelta(days=i)
            _request(ledger, f"c{i}", f"{day.isoformat()}T12:00:00.000000Z", "carol", 10.0, ("mini",))
    data = forecast_json(runner, "--user", "carol", "--as-of", "2026-05-01")
    # $200 after the 20th at $10 a day: passed on the 21st, or the 22nd once the empty
    # 30 April (a real day of the history, inside the backtest's last windows) counts a little
    assert data["budget"]["exceed_date"] in ("2026-05-21", "2026-05-22")
    assert 9.3 < data["daily"][1]["mean"] <= 10.0
    assert data["risk"] > 0.9
    expected = data["budget"]["expected_total"]
    assert 280 < expected < 320  # about $10 a day for 31 days
    sentence = (f"at this pace carol spends ${expected:,.2f} of the $200.00 monthly budget this month, "
                f"passing it on {data['budget']['exceed_date']}; risk of exceeding {data['risk']:.2f}")
    assert data["budget"]["message"] == sentence
    run = runner("forecast", "--user", "carol", "--as-of", "2026-05-01")
    assert sentence in " ".join(run.stdout.split())


def test_stale_history_is_named_with_the_as_of_to_use(tmp_path: Path) -> None:
    runner = CliRunner(tmp_path, None, tmp_path / "ledger.db")
    with open_ledger(runner.db) as ledger:
        for i in range(60):
            day = date(2026, 9, 1) + timedelta(days=i)
            _request(ledger, f"s{i}", f"{day.isoformat()}T12:00:00.000000Z", "sam", 0.25, ("mini",))
    last = date(2026, 9, 1) + timedelta(days=59)
    as_of = last + timedelta(days=8)
    data = forecast_json(runner, "--user", "sam", "--as-of", as_of.isoformat())
    note = (f"no spend recorded since {last.isoformat()}, 8 days, longer than any quiet before: the "
            "forecast gives it a 19% chance of lasting the 30 days ahead")
    assert any(n.startswith(note) and f"--as-of {(last + timedelta(days=1)).isoformat()}" in n
               for n in data["notes"])
    assert data["last_spend"] == last.isoformat()
    fresh = forecast_json(runner, "--user", "sam", "--as-of", (last + timedelta(days=1)).isoformat())
    assert not any("no spend recorded" in n for n in fresh["notes"])
    assert fresh["mean"] == pytest.approx(30 * 0.25, rel=0.05)
    run = runner("forecast", "--user", "sam", "--as-of", as_of.isoformat())
    assert note in " ".join(run.stdout.split())


def test_todays_asks_count_in_the_outlook_and_budget_show(tmp_path: Path) -> None:
    """Three asks today: month-to-date is not $0.00 (on the 1st of a month, too), and the
    outlook is one sentence on stdout (and in the JSON)."""
    from datetime import UTC, datetime

    from cascadeflow_cli.clock import format_ts

    config = tmp_path / "cascadeflow.toml"
    config.write_text('[ledger]\ntimezone = "UTC"\n', encoding="utf-8")
    runner = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    now = datetime.now(UTC)
    with open_ledger(runner.db) as ledger:
        for i in range(1, 40):
            _request(ledger, f"d{i}", format_ts(now - timedelta(days=i)), "alice", 1.0, ("mini",))
        for k in range(3):
            _request(ledger, f"t{k}", format_ts(now - timedelta(seconds=k + 1)), "alice", 2.0, ("mini",))
    assert runner("budget", "set", "alice", "--monthly", "50").code == 0
    month_start = now.date().replace(day=1)
    before_today = sum(1.0 for i in range(1, 40) if (now - timedelta(days=i)).date() >= month_start)
    shown = runner("budget", "show", "alice", "--json")
    assert shown.code == 0, shown.stderr
    outlook = _strict(shown.stdout)["outlook"]
    assert outlook["spent_to_date"] == pytest.approx(before_today + 6.0)
    assert outlook["expected_total"] >= outlook["spent_to_date"]
    human = runner("budget", "show", "alice")
    assert human.code == 0, human.stderr
    text = " ".join(human.stdout.split())
    assert "at this pace alice spends $" in text and "of the $50.00 monthly budget this month" in text
    assert "risk of exceeding" in text
    data = forecast_json(runner, "--user", "alice")
    assert data["budget"]["spent_to_date"] == pytest.approx(before_today + 6.0)
    assert runner("budget", "set", "alice", "--monthly", "0.5", "--daily", "5").code == 0
    assert runner("budget", "rm", "alice").code == 0
    assert runner("budget", "set", "alice", "--daily", "10").code == 0
    daily = " ".join(runner("budget", "show", "alice").stdout.split())
    assert "of the $10.00 daily budget today" in daily and "over the month" not in daily


def test_forecast_must_survive(seeded: CliRunner, tmp_path: Path) -> None:
    before = forecast_json(seeded, "--user", "alice", "--as-of", "2020-01-01")
    assert before["method"] == "none" and before["mean"] == 0.0 and before["lower"] == 0.0
    one_day = forecast_json(seeded, "--user", "alice", "--as-of", (FIRST + timedelta(days=1)).isoformat())
    assert one_day["short_history"] is True
    assert one_day["method"] == "one day of history, lasting as long again"
    assert one_day["lower"] == 0.0 < one_day["median"] < one_day["upper"]
    empty = CliRunner(tmp_path, seeded.config, tmp_path / "empty.db")
    assert forecast_json(empty, "--user", "nobody")["mean"] == 0.0
    run = empty("forecast")
    assert run.code == 0 and "no spend history" in run.stdout
    with open_ledger(tmp_path / "future.db") as ledger:
        for i in range(30):
            day = FIRST + timedelta(days=i)
            _request(ledger, f"f{i}", f"{day.isoformat()}T12:00:00.000000Z", "dan", 2.0, ("mini",))
        _request(ledger, "odd", "2099-01-01T12:00:00.000000Z", "dan", 5000.0, ("mini",))
    future = CliRunner(tmp_path, seeded.config, tmp_path / "future.db")
    data = forecast_json(future, "--user", "dan", "--as-of", (FIRST + timedelta(days=30)).isoformat())
    assert data["mean"] == pytest.approx(60.0, rel=0.05)
    # from today, the row dated 2099 is named, not silently left out
    notes = " ".join(forecast_json(future, "--user", "dan")["notes"])
    assert "$5,000.00 of spend is dated after today (1 day, 2099-01-01 to 2099-01-01)" in notes
    assert not any("dated after today" in n for n in forecast_json(seeded, "--user", "alice")["notes"])


def test_forecast_as_of_years_after_the_last_spend(seeded: CliRunner) -> None:
    """The models see the last 730 days: all empty, the backtest divided by nothing and
    `forecast --as-of 2099-01-01` was 'unexpected IndexError'. Then a zero from 730 quiet
    days on; now the quiet rule's mixture at any length: spend resuming ever less likely."""
    for args, lasts in ((("--as-of", "2099-01-01"),  # "26393 days", "a 100% chance" before
                         "26,393 days, longer than any quiet before: the forecast gives it an over 99%"),
                        (("--user", "alice", "--as-of", "2030-01-01", "--horizon", "366"),
                         "chance of lasting")):
        data = forecast_json(seeded, *args)
        assert data["method"].endswith(", resuming after the quiet") and data["median"] == 0.0
        assert lasts in " ".join(data["notes"])
    run = seeded("forecast", "--as-of", "9998-12-31")
    assert run.code == 0 and "longer than any quiet before" in " ".join(run.stdout.split()), run.stderr


def test_forecast_bad_input(seeded: CliRunner) -> None:
    run = seeded("forecast", "--as-of", "yesterday")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "--as-of" in run.stderr
    assert seeded("forecast", "--horizon", "0").code == 1


def test_plot_needs_the_extra_or_writes_a_png(seeded: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "forecast.png"
    run = seeded("forecast", "--user", "alice", "--as-of", AS_OF.isoformat(), "--plot", str(out))
    if importlib.util.find_spec("matplotlib") is None:
        assert run.code == 1
        assert_one_error_line(run.stderr)
        assert "[plot]" in run.stderr
    else:
        assert run.code == 0, run.stderr
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- anomalies ------------------------------------------------------------------------


def anomalies_json(runner: CliRunner, *args: str) -> list[dict[str, Any]]:
    run = runner("anomalies", "--json", "--until", (AS_OF - timedelta(days=1)).isoformat(), *args)
    assert run.code == 0, run.stderr
    data = _strict(run.stdout)
    assert isinstance(data, list)
    for row in data:
        assert set(row) >= ANOMALY_KEYS
    return data


def test_anomalies_find_the_spike_per_user_and_per_model(seeded: CliRunner) -> None:
    rows = anomalies_json(seeded)
    spikes = [r for r in rows if r["date"] == SPIKE.isoformat()]
    assert {(r["user"], r["model"], r["kind"]) for r in spikes} == {
        ("alice", None, "spike"), (None, "mini", "spike"), (None, "big", "spike")}
    alice = next(r for r in spikes if r["user"] == "alice")
    assert alice["actual"] > 3 * alice["expected"] and alice["score"] > 3.5
    assert "alice" in alice["description"] and SPIKE.isoformat() in alice["description"]
    assert not [r for r in rows if r["user"] == "bob"]


def test_anomalies_filters(seeded: CliRunner) -> None:
    assert anomalies_json(seeded, "--user", "bob") == []
    only_alice = anomalies_json(seeded, "--user", "alice", "--no-models")
    assert [(r["date"], r["kind"]) for r in only_alice] == [(SPIKE.isoformat(), "spike")]
    assert anomalies_json(seeded, "--since", (SPIKE + timedelta(days=1)).isoformat()) == []
    assert anomalies_json(seeded, "--user", "alice", "--min-change", "1000") == []


def test_anomalies_human_output_and_bad_input(seeded: CliRunner, tmp_path: Path) -> None:
    run = seeded("anomalies", "--user", "alice", "--until", AS_OF.isoformat())
    assert run.code == 0, run.stderr
    assert "spike" in run.stdout and SPIKE.isoformat() in run.stdout
    bad: Run = seeded("anomalies", "--sensitivity", "extreme")
    assert bad.code == 1
    assert_one_error_line(bad.stderr)
    empty = CliRunner(tmp_path, seeded.config, tmp_path / "empty.db")
    run = empty("anomalies")
    assert run.code == 0 and "no anomalies" in run.stderr
    assert _strict(empty("anomalies", "--json").stdout) == []
