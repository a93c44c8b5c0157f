"""The feature-code version: a calibration records the version of the features it was
fitted on, and one fitted on other feature code is refused rather than misread.

``FINGERPRINTS`` pins what the features compute on fixed drafts for each
:data:`FEATURE_VERSION`. When a change to the feature code moves any value, the first test
fails: bump ``FEATURE_VERSION`` in cascadeflow_cli/quality/features.py, record the new
fingerprint here, and refit the demo's calibration (``python bench/demo_calibration.py``),
which the last test checks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import cascadeflow_cli
from cascadeflow_cli.errors import ConfigError
from cascadeflow_cli.quality.calibrated import load_calibration
from cascadeflow_cli.quality.features import FEATURE_NAMES, FEATURE_VERSION, draft_features

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "calibration_sample.jsonl"
DEMO = Path(cascadeflow_cli.__file__).parent / "data" / "demo_calibration.json"

FINGERPRINTS = {
    2: "570c1764",  # dataflow from the question's numbers to the final answer
    3: "7df2a4f9",  # math family off for code; exec_failed_share (opt-in execution)
    4: "c9f4cf0b",  # every step of a chain checked (steps_*); factors in words; reused numbers
    5: "c9f4cf0b",  # a percentage used as its fraction (0.2, 0.8, 1.2): the fixture has none
    6: "c9f4cf0b",  # exec_failed_share reads more claims (next-line, output blocks, prose): not run here
    7: "c9f4cf0b",  # a claim whose code never finishes counts as failed: not run here
    8: "c9f4cf0b",  # claims a raising block never reaches count as failed: not run here
    9: "6c491722",  # code_calls_undefined: a call of a function the code never defines
    10: "6c491722",  # a top-level assert f(x) == y is a claim (exec_failed_share): not run here
}


def fingerprint() -> str:
    """A short hash of every feature of the fixture's drafts (rounded: the hash must not
    depend on the last bits of a logarithm). The domain is given, so a change in the
    router's detector does not count as a change of the quality features."""
    digest = hashlib.sha256(",".join(FEATURE_NAMES).encode())
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        domain = "code" if "def " in row["query"] + row["response"] else "math"
        features = draft_features(row["query"], row["response"], domain=domain)
        digest.update(",".join(f"{features[n]:.6g}" for n in FEATURE_NAMES if n != "complexity").encode())
    return digest.hexdigest()[:8]


def test_the_feature_code_matches_its_version() -> None:
    got = fingerprint()
    assert FINGERPRINTS.get(FEATURE_VERSION) == got, (
        f"the features now compute fingerprint {got}: if their meaning changed, bump FEATURE_VERSION, "
        "record the fingerprint in this file and refit the demo (python bench/demo_calibration.py)"
    )


def test_a_calibration_of_other_feature_code_is_refused(tmp_path: Path) -> None:
    data = json.loads(DEMO.read_text(encoding="utf-8"))
    for stale in (FEATURE_VERSION - 1, None):
        if stale is None:
            data.pop("feature_version")
        else:
            data["feature_version"] = stale
        path = tmp_path / "old.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        with pytest.raises(ConfigError, match=f"features version {stale!r}.*version {FEATURE_VERSION}"):
            load_calibration(path)


def test_the_shipped_demo_calibration_matches_the_features() -> None:
    calibration = load_calibration(DEMO)  # refused if fitted on other feature code
    assert calibration.feature_version == FEATURE_VERSION
    assert set(calibration.features) <= set(FEATURE_NAMES)
