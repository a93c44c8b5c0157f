"""`cascade anomalies` over an imported history that ends before the judged days: one
note on stderr names where the data stops and the `--until` that judges only it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cli.support import stderr_lines
from tests.conftest import FIXTURES, CliRunner

# alice spends $1.00-$1.40 every day to 2026-10-20, bob the same to 2026-10-10
HISTORY = FIXTURES / "history_ends_early.csv"
ALICE_LAST, BOB_LAST = "2026-10-20", "2026-10-10"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> CliRunner:
    root = tmp_path_factory.mktemp("anomalies")
    runner = CliRunner(root, None, root / "ledger.db")
    run = runner("import", str(HISTORY))
    assert run.code == 0, run.stderr
    return runner


def notes(stderr: str) -> list[str]:
    return [line for line in stderr_lines(stderr) if line.startswith("note: ")]


def as_list(stdout: str) -> list[dict[str, Any]]:
    data = json.loads(stdout)
    assert isinstance(data, list)
    return data


def test_stale_data_gets_one_note_and_the_json_stays_a_list(imported: CliRunner) -> None:
    run = imported("anomalies", "--json", "--until", "2026-10-28")
    assert run.code == 0, run.stderr
    rows = as_list(run.stdout)
    # 8 days judged after the last spend: 9 days from it to the day after the window
    assert notes(run.stderr) == [
        f"note: no spend recorded since {ALICE_LAST}, 9 days: a drop to $0 after it may be where "
        f"the recorded (or imported) data ends, not a real change; `--until {ALICE_LAST}` "
        "judges only the recorded days"]
    # the drop stays listed (a user who stopped spending is a real event); the note explains it
    assert any(r["date"] == "2026-10-21" and r["user"] == "alice" and r["actual"] < 0.05
               for r in rows)


def test_current_data_gets_no_note(imported: CliRunner) -> None:
    for until in (ALICE_LAST, "2026-10-21"):  # one empty day is no stretch to speak of
        run = imported("anomalies", "--json", "--until", until)
        assert run.code == 0, run.stderr
        assert notes(run.stderr) == []
        assert all(r["date"] <= until for r in as_list(run.stdout))


def test_the_note_follows_the_user_asked(imported: CliRunner) -> None:
    # bob stopped ten days before alice: everyone's data is current, bob's is not
    assert notes(imported("anomalies", "--json", "--until", ALICE_LAST).stderr) == []
    bob = imported("anomalies", "--json", "--user", "bob", "--until", ALICE_LAST)
    assert bob.code == 0, bob.stderr
    (note,) = notes(bob.stderr)
    assert note.startswith(f"note: no spend recorded since {BOB_LAST}, 11 days")
    assert f"`--until {BOB_LAST}`" in note
    assert notes(imported("anomalies", "--user", "bob", "--until", BOB_LAST).stderr) == []


def test_human_output_keeps_the_note_off_stdout(imported: CliRunner) -> None:
    run = imported("anomalies", "--until", "2026-10-28")
    assert run.code == 0, run.stderr
    assert "2026-10-21" in run.stdout and "no spend recorded" not in run.stdout
    assert len(notes(run.stderr)) == 1
    # nothing flagged: the "no anomalies" line and the note, both on stderr
    quiet = imported("anomalies", "--user", "bob", "--until", "2026-10-13", "--min-change", "1000")
    assert quiet.code == 0 and quiet.stdout == ""
    assert "no anomalies for bob" in quiet.stderr
    assert notes(quiet.stderr)[0].startswith(f"note: no spend recorded since {BOB_LAST}, 4 days")
