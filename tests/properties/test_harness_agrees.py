"""The in-process harness is the real entry point: for a sample of generated bad inputs,
a real `cascade` process gives the same exit code and the same stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.properties.harness import run, scratch

pytestmark = pytest.mark.slow

cases = st.one_of(
    st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s).map(lambda t: ["logs", "--since", t]),
    st.text(min_size=1, max_size=12)
    .filter(lambda s: "\x00" not in s)
    .map(lambda t: ["budget", "set", f"--daily={t}", "--", "x"]),
    st.sampled_from([["ask", "caf\udce9"], ["export", "-o", "x.xlsx"], ["usage", "--by", "planet"]]),
)


@settings(max_examples=6)
@given(args=cases)
def test_a_real_process_says_the_same(args: list[str]) -> None:
    with scratch() as tmp:
        db = str(Path(tmp) / "l.db")
        inside = run("--db", db, *args)
        env = {**os.environ, "CASCADE_DB": db, "COLUMNS": "80"}
        env.pop("CASCADE_CONFIG", None)
        real = subprocess.run(
            [sys.executable, "-m", "cascadeflow_cli", *args],
            capture_output=True,
            cwd=tmp,
            env=env,
            timeout=120,
        )
    assert real.returncode == inside.code
    assert real.stderr.decode("utf-8", "backslashreplace").replace(db, "DB") == inside.stderr.replace(
        db, "DB"
    )
