"""The quality check a configuration asks for: the calibrated model when ``[quality]
calibration`` names a file (loaded and checked once, before any model is called), else the
rule validator of ``[cascade] quality_preset`` / ``quality_threshold``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.quality import QualityValidator
    from cascadeflow_cli.quality.calibrated import CalibratedValidator


def build_validator(
    config: AppConfig, calibration: Path | None = None
) -> QualityValidator | CalibratedValidator:
    """``calibration`` (e.g. `quality check --calibration`) wins over the config's. With a
    calibration, the threshold is the calibrated one for ``[quality] target_quality``."""
    path = calibration or config.quality.calibration
    if path is not None:
        from cascadeflow_cli.quality.calibrated import CalibratedValidator, load_calibration

        return CalibratedValidator(
            load_calibration(path),
            target_quality=config.quality.target_quality,
            execute_code=config.quality.execute_code,
            where=str(path),
        )
    from cascadeflow_cli.quality import QualityValidator

    return QualityValidator(config.cascade.quality_preset, config.cascade.quality_threshold)
