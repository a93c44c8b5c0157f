"""Example enforcement hooks: a tier table, as you might keep in Stripe, Auth0 or your
own database. Point the config at it:

    [hooks]
    on_model_filter = "tier_hooks:models_for_tier"
    on_budget_check = "tier_hooks:check"
    on_budget_warning = "tier_hooks:warn"

(run `cascade` from this folder, or put the folder of this file on PYTHONPATH; hooks
are also looked up next to the config file).
"""

from __future__ import annotations

import sys

# user -> tier; in real life, a lookup in your billing system (cache it: hooks run per request)
TIERS = {"alice": "pro", "bob": "free"}
CHEAP_MODELS = {"mini"}


def _tier(user: str) -> str:
    return TIERS.get(user, "free")


def models_for_tier(ctx, models: list[str]) -> list[str]:
    """Free users get the cheap model only; everyone else the whole chain."""
    if _tier(ctx.user_id) == "free":
        return [m for m in models if m in CHEAP_MODELS] or models[:1]
    return models


def check(ctx) -> tuple[str, str | None]:
    """Free users are blocked at 100% of their budget whatever the global mode is."""
    if _tier(ctx.user_id) == "free" and ctx.budget_pct_used >= 1.0:
        return "block", f"{ctx.user_id} is on the free tier and has used their {ctx.window} budget"
    return "allow", None


def warn(ctx) -> None:
    """Called once per window when a user crosses the warning threshold."""
    print(
        f"[tier_hooks] {ctx.user_id} has used {ctx.budget_pct_used:.0%} of their {ctx.window} budget",
        file=sys.stderr,
    )
