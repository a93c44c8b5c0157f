"""Calibration files (`cascade calibrate` writes them, `quality check --calibration` and
[quality] calibration read them): a written file loads back equal; any other bytes load
or give one ConfigError line naming the file, never another exception.

The loader lives in cascadeflow_cli/quality/calibrated.py (the quality-model branch); until
that module is on this branch these tests skip with that reason, and run once it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cascadeflow_cli.errors import CascadeError
from tests.properties.conftest import BadInputTally
from tests.properties.harness import scratch

calibrated = pytest.importorskip(
    "cascadeflow_cli.quality.calibrated", reason="the calibration loader (quality-model branch) is not merged"
)

finite = st.floats(-50, 50, allow_nan=False)
unit = st.floats(0, 1, allow_nan=False)


@st.composite
def calibrations(draw: st.DrawFn) -> Any:
    names = sorted(calibrated.FEATURE_NAMES)
    features = draw(st.lists(st.sampled_from(names), min_size=1, max_size=min(6, len(names)), unique=True))
    k = len(features)
    return calibrated.Calibration(
        version=calibrated.FORMAT_VERSION,
        features=features,
        mean=draw(st.lists(finite, min_size=k, max_size=k)),
        scale=draw(st.lists(st.floats(0.01, 50), min_size=k, max_size=k)),
        weights=draw(st.lists(finite, min_size=k, max_size=k)),
        bias=draw(finite),
        slope=draw(st.floats(0, 10)),
        intercept=draw(finite),
        threshold=draw(unit),
        thresholds_by_domain=draw(st.dictionaries(st.sampled_from(["code", "math", "general"]), unit)),
        target_quality=draw(unit),
        rows=draw(st.integers(0, 10**6)),
        auroc=draw(st.none() | unit),
    )


@given(calibration=calibrations())
def test_a_written_calibration_loads_back_equal(calibration: Any) -> None:
    with scratch() as tmp:
        path = Path(tmp) / "calibration.json"
        calibration.write(path)
        assert calibrated.load_calibration(path) == calibration


def _mutations(data: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = sorted(data)
    junk = st.one_of(
        st.none(),
        st.booleans(),
        st.text(max_size=5),
        st.lists(st.integers(), max_size=3),
        st.just(float("nan")),
        st.just(-1),
        st.just(1e309),
    )
    return st.one_of(
        st.sampled_from(keys).map(lambda k: {x: v for x, v in data.items() if x != k}),  # a key missing
        st.tuples(st.sampled_from(keys), junk).map(
            lambda kv: {**data, kv[0]: kv[1]}
        ),  # a key of the wrong kind
    )


@given(calibration=calibrations(), data=st.data())
def test_a_damaged_calibration_is_one_line(
    calibration: Any, data: st.DataObject, tally: BadInputTally
) -> None:
    broken = data.draw(_mutations(calibration.to_json()))
    with scratch() as tmp:
        path = Path(tmp) / "calibration.json"
        path.write_text(json.dumps(broken), encoding="utf-8")
        try:
            calibrated.load_calibration(path)
        except CascadeError as exc:
            tally.record("calibration files", str(exc))
            assert str(path) in str(exc) and "\n" not in str(exc)


@given(noise=st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_loader(noise: bytes, tally: BadInputTally) -> None:
    with scratch() as tmp:
        path = Path(tmp) / "calibration.json"
        path.write_bytes(noise)
        with pytest.raises(CascadeError) as caught:
            calibrated.load_calibration(path)
        tally.record("calibration files", str(caught.value))
        assert str(path) in str(caught.value)
