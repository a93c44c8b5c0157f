"""The quality check a configuration asks for: the calibrated model when ``[quality]
calibration`` names a file (loaded and checked once, before any model is called), else the
rule validator of ``[cascade] quality_preset`` / ``quality_threshold``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.config.settings import QualityConfig
    from cascadeflow_cli.quality import QualityValidator
    from cascadeflow_cli.quality.calibrated import CalibratedValidator


def build_validator(
    config: AppConfig, calibration: Path | None = None, *, run_code: Callable[[Any], Any] | None = None
) -> QualityValidator | CalibratedValidator:
    """``calibration`` (e.g. `quality check --calibration`) wins over the config's. With a
    calibration, the threshold is the calibrated one for ``[quality] target_quality``;
    ``run_code`` runs a draft's program when it executes code (see CalibratedValidator)."""
    path = calibration or config.quality.calibration
    if path is not None:
        return calibrated_validator(path, config.quality, run_code=run_code)
    from cascadeflow_cli.quality import QualityValidator

    return QualityValidator(config.cascade.quality_preset, config.cascade.quality_threshold)


def code_execution(quality: QualityConfig, needed: bool = True) -> bool:
    """Whether drafts' code runs: ``[quality] execute_code`` as set; unset, where the kernel
    sandbox is available (probed only when a calibration ``needed`` it: start-up)."""
    if quality.execute_code is not None or not needed:
        return bool(quality.execute_code)
    from cascadeflow_cli.quality.sandbox import execution_enabled

    return execution_enabled(None)


def calibrated_validator(
    path: Path,
    quality: QualityConfig,
    threshold: float | None = None,
    *,
    run_code: Callable[[Any], Any] | None = None,
) -> CalibratedValidator:
    """The calibrated check of the file at ``path`` for the live cascade and `quality check`
    alike (the same features, so the same decision): with ``[quality]``'s target and code
    execution, and the [semantic] extra's embedder when the file was fitted with the
    query-answer similarity (loaded here, so a missing extra is one clear error before
    any model is called)."""
    from cascadeflow_cli.quality.calibrated import CalibratedValidator, load_calibration

    calibration = load_calibration(path)
    embed = None
    if calibration.needs_similarity:
        from cascadeflow_cli.routing.semantic import shared_embedder

        embed = shared_embedder().embed
    return CalibratedValidator(
        calibration,
        threshold=threshold,
        target_quality=quality.target_quality,
        execute_code=code_execution(quality, calibration.needs_execution),
        where=str(path),
        embed=embed,
        run_code=run_code,
    )
