"""Rule-based quality validation of draft answers (is the cheap model's answer good enough?)."""

from .presets import QualityPreset
from .validator import QualityResult, QualityValidator

__all__ = ["QualityPreset", "QualityResult", "QualityValidator"]
