"""`cascade calibrate`: fit the quality model on labelled drafts and write the
calibration file that `[quality] calibration` reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.ledger.db import Ledger
    from cascadeflow_cli.quality.calibrate import CalibrationReport, Prices


@dataclass(frozen=True)
class Calibration:
    """The fit's report and where its calibration file was written."""

    report: CalibrationReport
    path: Path


def calibrate(config: AppConfig, rows: list[dict[str, Any]], origin: str, *, target_quality: float,
              prices: Prices | None, output: Path | None = None, execute_code: bool = False) -> Calibration:
    """Fit on ``rows`` (labelled drafts, from ``origin``: a file or the ledger) and write
    the calibration to ``output`` (default: calibration.json beside the config in use,
    else in the current directory). ``execute_code``: fit on what running each response's
    Python in the sandbox shows, too."""
    from cascadeflow_cli.quality.calibrate import CalibrationDataError, calibrate_rows

    try:
        report = calibrate_rows(rows, target_quality=target_quality, prices=prices, execute_code=execute_code)
    except CalibrationDataError as exc:
        raise InputError(f"{origin}: {exc}") from None
    path = output or ((config.source.parent if config.source else Path.cwd()) / "calibration.json")
    try:
        report.calibration.write(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the calibration ({exc.strerror or exc})") from None
    return Calibration(report, path)


def ledger_label_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Labelled rows from the ledger's feedback and shadow labels."""
    from cascadeflow_cli.ledger.labels import calibration_rows

    return list(calibration_rows(ledger))


def configured_prices(config: AppConfig) -> Prices | None:
    """The chain's first (draft) and last (verifier) prices as the cascade would charge
    them (the config's, else the bundled price map), if both are known."""
    from cascadeflow_cli.engine.pricing import lookup_price
    from cascadeflow_cli.errors import CascadeError
    from cascadeflow_cli.quality.calibrate import Prices

    chain = [config.models.get(name) for name in config.cascade.models]
    if len(chain) < 2 or chain[0] is None or chain[-1] is None:
        return None
    try:
        draft, verifier = lookup_price(chain[0]), lookup_price(chain[-1])
    except CascadeError:  # no price known: savings need --prices
        return None
    values = (
        draft.input_per_million,
        draft.output_per_million,
        verifier.input_per_million,
        verifier.output_per_million,
    )
    if float(values[2]) + float(values[3]) <= 0:
        return None
    return Prices(*(float(v) for v in values))
