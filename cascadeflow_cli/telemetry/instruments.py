"""The metric instruments both export paths create (the SDK's sink and the one-shot
encoder): names, units and descriptions from the GenAI conventions, in one place."""

from __future__ import annotations

from typing import NamedTuple

SCOPE = "cascadeflow_cli"  # the instrumentation scope of every span and metric we send

# the conventions' ExplicitBucketBoundaries (gen-ai-metrics.md)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


class Instrument(NamedTuple):
    name: str
    unit: str
    description: str
    kind: str  # histogram | counter | updown
    buckets: tuple[float, ...] = ()


# keyed by MetricPoint.instrument (telemetry/spans.py)
INSTRUMENTS = {
    "token_usage": Instrument(
        "gen_ai.client.token.usage",
        "{token}",
        "Number of input and output tokens used.",
        "histogram",
        TOKEN_BUCKETS,
    ),
    "duration": Instrument(
        "gen_ai.client.operation.duration", "s", "GenAI operation duration.", "histogram", DURATION_BUCKETS
    ),
    "cost": Instrument("cascade.cost", "USD", "What the model calls cost.", "counter"),
    # a draft paid for and thrown away makes savings negative: an up-down counter
    "savings": Instrument(
        "cascade.savings", "USD", "Saved against the last model of the chain alone.", "updown"
    ),
}
