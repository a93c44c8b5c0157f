"""Fit the calibration `cascade demo` ships (cascadeflow_cli/data/demo_calibration.json) on
the demo's own labelled answers, and print what it does to them, side by side with the
rule validator (the demo's check before issue 9).

    python bench/demo_calibration.py [--check]

The fit is in-sample on 48 written answers: it calibrates the demo, it is no evidence of
quality on real traffic (bench/quality_frontier.py measures that, cross-validated).
``--check`` fits and prints without writing. Needs the calibrated model
(``cascadeflow_cli.quality.calibrate.calibrate_rows``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "cascadeflow_cli" / "data"
CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"
# litellm's list prices for the demo's two models, USD per million tokens
PRICES = (0.15, 0.60, 2.50, 10.0)


def demo_rows() -> list[dict[str, object]]:
    rows = []
    for line in (DATA / "demo_queries.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        row: dict[str, object] = {
            "id": r["id"],
            "query": r["query"],
            "response": r["answers"][CHEAP],
            "correct": r["correct"][CHEAP],
            "verifier_correct": r["correct"][STRONG],
            "domain": r["domain"],
        }
        if (r.get("truncate") or {}).get(CHEAP):
            row["finish_reason"] = "length"
        rows.append(row)
    return rows


def main(argv: list[str]) -> int:
    from cascadeflow_cli.quality import QualityValidator
    from cascadeflow_cli.quality.calibrate import Prices, calibrate_rows  # type: ignore[import-not-found]

    rows = demo_rows()
    report = calibrate_rows(rows, target_quality=0.95, prices=Prices(*PRICES))
    rules = QualityValidator("balanced")
    rule_pass = [
        rules.validate(
            str(r["query"]),
            str(r["response"]),
            finish_reason=r.get("finish_reason"),  # type: ignore[arg-type]
            domain=str(r["domain"]),
        ).passed
        for r in rows
    ]
    wrong = [r for r in rows if not r["correct"]]
    print(f"{len(rows)} demo answers, {len(wrong)} wrong drafts")
    print(
        f"rule validator: accepts {sum(rule_pass)} drafts, "
        f"{sum(p and not r['correct'] for p, r in zip(rule_pass, rows, strict=True))} of them wrong"
    )
    print(
        f"calibrated (cross-validated on these rows): AUROC {report.auroc:.3f}, threshold "
        f"{report.threshold:.3f}, expected quality {report.expected_quality:.3f}, "
        f"expected savings {report.expected_savings}"
    )
    if "--check" not in argv:
        report.calibration.write(DATA / "demo_calibration.json")
        print(f"wrote {DATA / 'demo_calibration.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
