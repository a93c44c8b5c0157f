"""Property-based tests of every parser of user input (hypothesis).

Profiles: ``ci`` (the default: a bounded number of examples, so the whole suite stays
within its time budget) and ``thorough`` (``HYPOTHESIS_PROFILE=thorough pytest
tests/properties``: many more). Every generated bad input is counted; the run ends
with the count, and with how many of them ended in "unexpected" or a traceback (which
fails the test that met it).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("ci", max_examples=40, **_COMMON)
settings.register_profile("thorough", max_examples=400, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class BadInputTally:
    """How many bad inputs each parser was given, and how many met a crash."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.crashes: Counter[str] = Counter()

    def record(self, parser: str, message: str) -> None:
        self.cases[parser] += 1
        if "unexpected" in message or "Traceback" in message:
            self.crashes[parser] += 1


TALLY = BadInputTally()


@pytest.fixture
def tally() -> BadInputTally:
    return TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY.cases:
        return
    per = ", ".join(f"{name} {n}" for name, n in sorted(TALLY.cases.items()))
    terminalreporter.write_line(
        f"bad inputs generated: {sum(TALLY.cases.values())} ({per}); ended in 'unexpected' or a "
        f"traceback: {sum(TALLY.crashes.values())}"
    )
