"""A calibration file, and the validator that scores drafts with it.

The file is small JSON (see :meth:`Calibration.to_json`): the format version, the
feature-code version (:data:`.features.FEATURE_VERSION`: a file fitted on features that
have since changed meaning is refused, not silently misread), the feature list, the
standardisation, the logistic weights, the Platt recalibration, the global and per-domain
thresholds and the target quality it was fitted for. Loading checks all of it
(``load_calibration``): a missing, unreadable, other-version or hand-edited file is one
:class:`~cascadeflow_cli.errors.ConfigError` line, before any model is called.

Scoring is plain Python (no numpy): a dot product over the feature list, microseconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cascadeflow_cli.errors import ConfigError
from cascadeflow_cli.files import TooLargeError, read_path_capped
from cascadeflow_cli.text import json_loads

from .features import EXEC_FEATURES, FEATURE_NAMES, FEATURE_VERSION, draft_features, feature_domain
from .validator import QualityResult, QualityValidator

__all__ = ["FORMAT", "FORMAT_VERSION", "CalibratedValidator", "Calibration", "load_calibration"]

FORMAT = "cascadeflow-quality-calibration"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """A fitted quality model (see :func:`.calibrate.calibrate_rows`)."""

    version: int
    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    slope: float
    intercept: float
    threshold: float
    thresholds_by_domain: dict[str, float] = field(default_factory=dict)
    target_quality: float = 0.95
    rows: int = 0
    auroc: float | None = None
    # other targets the same model was fitted for: target -> (threshold, by domain)
    by_target: dict[float, tuple[float, dict[str, float]]] = field(default_factory=dict)
    # the feature code the weights were fitted on (see FEATURE_VERSION)
    feature_version: int = FEATURE_VERSION

    def for_target(self, target: float | None) -> Calibration:
        """This calibration with the thresholds of ``target`` quality: the fitted target's
        own, else the nearest stored target at or above it (never a laxer one), else
        accept nothing (threshold 1.0)."""
        if target is None or abs(target - self.target_quality) < 1e-9:
            return self
        stricter = sorted(t for t in self.by_target if t >= target - 1e-9)
        if not stricter:
            return replace(self, threshold=1.0, thresholds_by_domain={}, target_quality=target)
        threshold, by_domain = self.by_target[stricter[0]]
        return replace(self, threshold=threshold, thresholds_by_domain=dict(by_domain), target_quality=target)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "feature_version": self.feature_version,
            "target_quality": self.target_quality,
            "rows": self.rows,
            "auroc": self.auroc,
            "threshold": self.threshold,
            "thresholds_by_domain": dict(self.thresholds_by_domain),
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "slope": self.slope,
            "intercept": self.intercept,
            "by_target": {
                f"{t:.2f}": {"threshold": th, "thresholds_by_domain": dict(d)}
                for t, (th, d) in sorted(self.by_target.items())
            },
        }

    def write(self, path: Path) -> None:
        """Write atomically (a temporary file renamed over ``path``; a device or FIFO is
        written into, not replaced: files.py)."""
        from cascadeflow_cli.files import written_whole

        with written_whole(path, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(self.to_json(), indent=1) + "\n")

    @property
    def needs_execution(self) -> bool:
        """Fitted on what running the drafts' code showed (``calibrate --execute-code``):
        scoring with it runs each draft's Python in the sandbox (:mod:`.code_exec`)."""
        return any(name in EXEC_FEATURES for name in self.features)

    @property
    def needs_similarity(self) -> bool:
        """Fitted on rows that carried the ``similarity`` live signal (the ``[semantic]``
        extra's query-answer embedding similarity): the file records it as the training
        mean of ``missing_similarity`` below 1 (a signal never measured leaves it at 1).
        Scoring then measures it for every draft, with the code the fit's rows used
        (:func:`.live_signals.embedding_similarity`), or the model would read every
        draft as "not measured", a value it was not fitted on."""
        if "missing_similarity" not in self.features:
            return False
        return self.mean[self.features.index("missing_similarity")] < 1.0 - 1e-9

    def threshold_for(self, domain: str | None) -> float:
        return self.thresholds_by_domain.get(domain or "", self.threshold)

    def probability(self, features: dict[str, float]) -> float:
        z = self.bias
        for name, mean, scale, weight in zip(self.features, self.mean, self.scale, self.weights, strict=True):
            z += weight * (features.get(name, 0.0) - mean) / scale
        z = max(-35.0, min(35.0, self.slope * z + self.intercept))
        return 1.0 / (1.0 + math.exp(-z))


# --------------------------------------------------------------------------- loading


def _number(
    data: dict[str, Any], key: str, where: str, *, lo: float | None = None, hi: float | None = None
) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: {key!r} must be a finite number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{where}: {key!r} must be within [{lo}, {hi}], got {value!r}")
    return float(value)


def _numbers(data: dict[str, Any], key: str, where: str, length: int, positive: bool = False) -> list[float]:
    value = data.get(key)
    if not isinstance(value, list) or len(value) != length:
        got = f"{len(value)} values" if isinstance(value, list) else repr(type(value).__name__)
        raise ConfigError(f"{where}: {key!r} must be a list of {length} numbers (one per feature), got {got}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise ConfigError(f"{where}: {key!r} holds {item!r}, not a finite number")
        if positive and item <= 0:
            raise ConfigError(f"{where}: {key!r} holds {item!r}; scales must be > 0")
    return [float(v) for v in value]


def parse_calibration(data: Any, where: str) -> Calibration:
    """Validate a decoded calibration file; ``where`` names it in error messages."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: not a calibration file (expected a JSON object)")
    if data.get("format") != FORMAT:
        raise ConfigError(
            f'{where}: not a calibration file (no "format": {FORMAT!r}); make one with `cascade calibrate`'
        )
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise ConfigError(
            f"{where}: calibration format version {version!r}, this cascade reads "
            f"version {FORMAT_VERSION}; run `cascade calibrate` again"
        )
    made_with = data.get("feature_version")
    if made_with != FEATURE_VERSION:
        # same names, other meaning: the weights would score drafts with numbers they were
        # never fitted on (seen once: a stale demo file gave p = 1.00 to every draft)
        raise ConfigError(
            f"{where}: fitted on quality features version {made_with!r}, this cascade computes "
            f"version {FEATURE_VERSION}; run `cascade calibrate` again"
        )
    features = data.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
        raise ConfigError(f"{where}: 'features' must be a non-empty list of feature names")
    unknown = [f for f in features if f not in FEATURE_NAMES]
    if unknown:
        raise ConfigError(
            f"{where}: unknown feature {unknown[0]!r} (made by another version?); "
            "run `cascade calibrate` again"
        )
    if len(set(features)) != len(features):
        raise ConfigError(f"{where}: 'features' lists a feature twice")
    k = len(features)
    by_domain = data.get("thresholds_by_domain", {})
    if not isinstance(by_domain, dict):
        raise ConfigError(f"{where}: 'thresholds_by_domain' must be an object of domain -> threshold")
    thresholds = _domain_thresholds(by_domain, f"{where}: thresholds_by_domain")
    by_target: dict[float, tuple[float, dict[str, float]]] = {}
    raw_targets = data.get("by_target", {})
    if not isinstance(raw_targets, dict):
        raise ConfigError(f"{where}: 'by_target' must be an object of target -> thresholds")
    for key, entry in raw_targets.items():
        try:
            target = float(key)
        except ValueError:
            raise ConfigError(f"{where}: by_target: {key!r} is not a target quality") from None
        if not 0.0 < target <= 1.0 or not isinstance(entry, dict):
            raise ConfigError(f"{where}: by_target: {key!r} must be a target in (0, 1] with thresholds")
        sub = f"{where}: by_target.{key}"
        by_target[target] = (
            _number(entry, "threshold", sub, lo=0.0, hi=1.0),
            _domain_thresholds(entry.get("thresholds_by_domain", {}), sub),
        )
    rows = data.get("rows", 0)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise ConfigError(f"{where}: 'rows' must be a whole number >= 0, got {rows!r}")
    auroc = data.get("auroc")
    return Calibration(
        version=FORMAT_VERSION,
        features=features,
        mean=_numbers(data, "mean", where, k),
        scale=_numbers(data, "scale", where, k, positive=True),
        weights=_numbers(data, "weights", where, k),
        bias=_number(data, "bias", where),
        slope=_number(data, "slope", where, lo=0.0),
        intercept=_number(data, "intercept", where),
        threshold=_number(data, "threshold", where, lo=0.0, hi=1.0),
        thresholds_by_domain=thresholds,
        target_quality=_number(data, "target_quality", where, lo=0.0, hi=1.0),
        rows=rows,
        auroc=None if auroc is None else _number(data, "auroc", where, lo=0.0, hi=1.0),
        by_target=by_target,
    )


def _domain_thresholds(raw: Any, where: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'thresholds_by_domain' must be an object of domain -> threshold")
    return {str(name): _number(raw, name, where, lo=0.0, hi=1.0) for name in raw}


def load_calibration(path: Path | str) -> Calibration:
    """Read and validate a calibration file; ConfigError (one line) on any problem."""
    path = Path(path)
    try:
        text = read_path_capped(path).decode("utf-8")
    except TooLargeError as exc:
        raise ConfigError(f"{exc}: not a calibration file") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: calibration file not found; make one with `cascade calibrate`") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a calibration file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a calibration file (not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the calibration file ({exc.strerror or exc})") from None
    try:
        data = json_loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    return parse_calibration(data, str(path))


# --------------------------------------------------------------------------- validator


class CalibratedValidator:
    """Scores drafts with a calibration: ``score`` is the probability that the draft is
    good enough, ``passed`` compares it with the (domain's) calibrated threshold. Same
    ``validate`` signature as :class:`QualityValidator`, plus the optional live signals."""

    calibrated = True

    def __init__(
        self,
        calibration: Calibration,
        threshold: float | None = None,
        target_quality: float | None = None,
        *,
        execute_code: bool = False,
        where: str = "the calibration",
        embed: Callable[[list[str]], Any] | None = None,
        run_code: Callable[[Any], Any] | None = None,
    ) -> None:
        """``run_code``: how a draft's program runs (default :func:`.code_exec.run_program`,
        in this thread); `cascade serve` passes one that waits off its event loop."""
        if calibration.needs_execution and not execute_code:
            # scoring without the execution feature would not be the model that was fitted
            raise ConfigError(
                f"{where} was fitted with code execution (`cascade calibrate --execute-code`): "
                "set [quality] execute_code = true to run drafts' Python in the sandbox, "
                "or calibrate again without it"
            )
        calibration = calibration.for_target(target_quality)
        self.calibration = calibration
        # the query-answer similarity, measured here when the fit had it, with the caller's
        # embedder (the [semantic] extra's: engine.validators.calibrated_validator passes it)
        if calibration.needs_similarity and embed is None:
            raise ConfigError(
                f"{where} was fitted with the query-answer similarity signal: scoring with it "
                "needs the [semantic] extra's embedder"
            )
        self.embed = embed
        self.run_code = run_code
        self.fixed_threshold = threshold
        self.rules = QualityValidator("balanced")
        self.threshold = calibration.threshold if threshold is None else threshold
        self.preset = self.rules.preset

    def __repr__(self) -> str:
        return f"CalibratedValidator(threshold={self.threshold}, rows={self.calibration.rows})"

    def validate(
        self,
        query: str,
        response: str | None,
        *,
        finish_reason: str | None = None,
        domain: str | None = None,
        **live: float | None,
    ) -> QualityResult:
        rules = self.rules.validate(query, response, finish_reason=finish_reason, domain=domain)
        execution = None
        if self.calibration.needs_execution:
            from .code_exec import program_of, run_program

            program = program_of(response or "")  # parsed here (pure, fast); run where asked
            run = run_program if self.run_code is None or program.empty else self.run_code
            execution = run(program)
        if self.calibration.needs_similarity and live.get("similarity") is None and self.embed is not None:
            from .live_signals import query_answer_similarity

            live["similarity"] = query_answer_similarity(self.embed, query, response or "")
        features = draft_features(
            query,
            response,
            finish_reason=finish_reason,
            domain=domain,
            rules=rules,
            execution=execution,
            **live,
        )
        raw = self.calibration.probability(features)  # < 1: a threshold of 1.0 accepts nothing
        threshold = (
            self.fixed_threshold
            if self.fixed_threshold is not None
            else self.calibration.threshold_for(domain or feature_domain(features))
        )
        p = round(raw, 4)
        return QualityResult(
            score=p,
            passed=raw >= threshold,
            threshold=threshold,
            reasons=rules.reasons,
            checks=rules.checks,
            probability=p,
            calibrated=True,
        )
