"""Generate sample_data/history.csv: 120 days of ledger history for `cascade import`.

    python sample_data/make_history.py [--out sample_data/history.csv] [--seed 20260727]

Deterministic (fixed seed, fixed dates: 2026-07-27 to 2026-11-23, UTC). Written in the
columns of `cascade export` (a subset; docs/ledger-columns.md), so an import keeps every
request's cascade: a draft on the cheap model, accepted or escalated to the strong one,
with its savings against the strong model alone.

What is in it, so every analytics command has something to find:
- six users with their own volume, working hours and domains;
- a weekday/weekend pattern (weekends ~25% of a weekday; erin works weekends too);
- growth: carol's usage roughly triples over the period, overall volume grows ~60%;
- one spike: frank's runaway script on 2026-10-29 (about twenty times his normal day);
- one user switching to a dearer model: from 2026-10-15 dave stops cascading and sends
  everything to "o1", so his daily spend jumps from cents to dollars.
Prices are list prices per million tokens, hard-coded so the script needs nothing but
the standard library.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

START = date(2026, 7, 27)  # a Monday
DAYS = 120
SPIKE_DAY = date(2026, 10, 29)
SWITCH_DAY = date(2026, 10, 15)

# our name -> (provider id, provider, USD per million input tokens, per million output)
MODELS = {
    "mini": ("openai/gpt-4o-mini", "openai", Decimal("0.15"), Decimal("0.60")),
    "big": ("openai/gpt-4o", "openai", Decimal("2.50"), Decimal("10.00")),
    "haiku": ("anthropic/claude-3-5-haiku-20241022", "anthropic", Decimal("0.80"), Decimal("4.00")),
    "sonnet": ("anthropic/claude-3-5-sonnet-20241022", "anthropic", Decimal("3.00"), Decimal("15.00")),
    "o1": ("openai/o1", "openai", Decimal("15.00"), Decimal("60.00")),
}
# What the importer cannot derive; it fills in the rest (call ids and order, status "ok",
# draft_accepted, escalated, savings = verifier_only_cost - cost).
COLUMNS = ["request_id", "timestamp", "user", "model", "model_id", "provider", "role",
           "input_tokens", "output_tokens", "cost", "accepted", "domain", "verifier_only_cost"]


@dataclass(frozen=True)
class User:
    name: str
    per_weekday: float  # requests on a weekday at the start
    growth: float  # multiplier reached by the last day
    chain: tuple[str, ...]
    domains: tuple[str, ...]
    hours: tuple[int, int]  # working hours, UTC
    weekend_share: float = 0.25
    acceptance: float = 0.72  # how often the draft is good enough


USERS = (
    User("alice", 60, 1.4, ("mini", "big"), ("code", "general", "math"), (7, 17)),
    User("bob", 12, 1.1, ("mini", "big"), ("general", "finance"), (8, 16)),
    User("carol", 25, 3.0, ("mini", "big"), ("medical", "general"), (13, 22)),
    User("dave", 30, 1.2, ("mini", "big"), ("legal", "finance"), (8, 18), acceptance=0.65),
    User("erin", 20, 1.5, ("haiku", "sonnet"), ("code", "math"), (10, 20), weekend_share=0.8),
    User("frank", 18, 1.3, ("mini", "big"), ("general", "code"), (0, 24), acceptance=0.8),
)


def nanos(usd: Decimal) -> int:
    return int((usd * 10**9).to_integral_value(rounding=ROUND_HALF_EVEN))


def usd_text(n: int) -> str:
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), 10**9)
    return f"{sign}{whole}.{frac:09d}"


def cost_of(model: str, tokens_in: int, tokens_out: int) -> int:
    _, _, price_in, price_out = MODELS[model]
    return nanos((tokens_in * price_in + tokens_out * price_out) / 10**6)


def requests_on(user: User, day: date, index: int, rng: random.Random) -> int:
    growth = user.growth ** (index / (DAYS - 1))
    mean = user.per_weekday * growth * (user.weekend_share if day.weekday() >= 5 else 1.0)
    mean *= rng.uniform(0.8, 1.2)  # day-to-day noise
    if user.name == "frank" and day == SPIKE_DAY:
        mean *= 20
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


def chain_for(user: User, day: date) -> tuple[str, ...]:
    return ("o1",) if user.name == "dave" and day >= SWITCH_DAY else user.chain


def request_rows(user: User, day: date, number: int, rng: random.Random) -> list[dict[str, object]]:
    """One request's rows: its draft, and the verifier when the draft was not accepted."""
    start, end = user.hours
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        seconds=rng.randrange(start * 3600, end * 3600))
    request_id = "hist-" + hashlib.sha1(f"{user.name}/{day}/{number}".encode()).hexdigest()[:16]
    chain = chain_for(user, day)
    domain = rng.choice(user.domains)
    tokens_in = int(rng.lognormvariate(7.6, 0.8)) + 50  # prompts with context: ~2,000 tokens
    accepted = len(chain) == 1 or rng.random() < user.acceptance
    used = chain[:1] if accepted else chain
    calls = []
    for seq, model in enumerate(used):
        tokens_out = int(rng.lognormvariate(6.2 if model == chain[-1] else 5.9, 0.6)) + 5
        calls.append((seq, model, tokens_out))
    # what the chain's last model alone would have cost: its real cost when it ran, else
    # its price for the accepted draft's tokens (as the cascade estimates it)
    baseline = cost_of(chain[-1], tokens_in, calls[-1][2])
    rows = []
    for seq, model, tokens_out in calls:
        model_id, provider, _, _ = MODELS[model]
        final = seq == len(calls) - 1
        rows.append({
            "request_id": request_id, "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user": user.name, "model": model, "model_id": model_id, "provider": provider,
            "role": "verifier" if model == chain[-1] else "draft", "seq": seq,
            "input_tokens": str(tokens_in), "output_tokens": str(tokens_out),
            "cost": usd_text(cost_of(model, tokens_in, tokens_out)),
            "accepted": "true" if final else "false", "domain": domain,
            "verifier_only_cost": usd_text(baseline) if seq == 0 else "",
        })
    return rows


def generate(seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for index in range(DAYS):
        day = START + timedelta(days=index)
        day_rows: list[dict[str, object]] = []
        for user in USERS:
            for number in range(requests_on(user, day, index, rng)):
                day_rows.extend(request_rows(user, day, number, rng))
        # time order, each request's rows together in call order (as `cascade export` writes)
        day_rows.sort(key=lambda r: (str(r["timestamp"]), str(r["request_id"]), int(str(r["seq"]))))
        rows.extend(day_rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("history.csv"))
    parser.add_argument("--seed", type=int, default=20260727)
    args = parser.parse_args()
    rows = generate(args.seed)
    with args.out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    requests = len({r["request_id"] for r in rows})
    print(f"{args.out}: {requests:,} requests, {len(rows):,} calls, "
          f"{args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
