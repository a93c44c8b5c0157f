"""bench/quality_frontier.py's command line: ``--seeds`` takes ranges (``0-19``), not
only a comma list (a 20-seed run had to spell out twenty numbers)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality_frontier.py"


def bench_module():
    spec = importlib.util.spec_from_file_location("quality_frontier", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seeds_take_ranges_and_lists() -> None:
    frontier = bench_module()
    assert frontier.parse_seeds("0-19") == list(range(20))
    assert frontier.parse_seeds("0,1,2") == [0, 1, 2]
    assert frontier.parse_seeds("0-2, 7,2-4") == [0, 1, 2, 7, 3, 4]  # in order, no repeats
    assert frontier.parse_seeds("5") == [5]
    assert frontier.seed_list([0, 1, 2, 3, 7, 9, 10]) == "0-3,7,9-10"


@pytest.mark.parametrize("bad", ["3-1", "a", "0-", "1,,2", "0-x"])
def test_a_bad_seed_list_is_one_line_and_exit_2(bad: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--seeds", bad, "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "--seeds" in done.stderr and "Traceback" not in done.stderr
