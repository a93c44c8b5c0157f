"""Routing: which domain a query belongs to, and how demanding it looks (pure)."""

from .complexity import CodeComplexityAnalyzer, complexity_of
from .custom import CustomDomain, domain_names
from .domain import DOMAINS, DomainDetector, DomainResult

__all__ = [
    "DOMAINS",
    "CodeComplexityAnalyzer",
    "CustomDomain",
    "DomainDetector",
    "DomainResult",
    "complexity_of",
    "domain_names",
]
