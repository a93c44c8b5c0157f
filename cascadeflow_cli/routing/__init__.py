"""Routing: which domain a query belongs to, and how demanding it looks (pure)."""

from .complexity import CodeComplexityAnalyzer, complexity_of
from .domain import DOMAINS, DomainDetector, DomainResult

__all__ = ["DOMAINS", "CodeComplexityAnalyzer", "DomainDetector", "DomainResult", "complexity_of"]
