"""`cascade serve` with a calibration fitted with code execution: a draft's Python runs in
the sandbox off the event loop, so a draft that loops until its time limit holds up no
other request; and the draft gets the decision `ask` and `quality check` give it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from cascadeflow_cli.quality.calibrate import calibrate_rows
from cascadeflow_cli.quality.code_exec import program_of, run_program
from cascadeflow_cli.replay.server import ModelBehavior
from tests.conftest import GOOD_ANSWER, CliRunner, descendants, ledger_rows
from tests.server.conftest import Stack

GOOD = "```python\ndef double(n):\n    return 2 * n\n```\n\n```python\nprint(double(2))  # 4\n```\n"
WRONG = GOOD.replace("2 * n", "n + 3")
# defines fine, then every example spins until the sandbox's limits stop it
LOOPING = (
    "```python\ndef double(n):\n    while True:\n        pass\n```\n\n"
    + "".join(f"```python\nprint(double({i}))  # {2 * i}\n```\n\n" for i in range(3))
)
QUERY = "Write a function that doubles a number"


@pytest.fixture
def executing(stack_factory: object, tmp_path: Path) -> Stack:
    rows = [
        {"id": i, "query": f"Write function {i}", "response": GOOD if i % 2 else WRONG,
         "correct": bool(i % 2), "domain": "code"}
        for i in range(30)
    ]  # fmt: skip
    path = tmp_path / "exec-calibration.json"
    calibrate_rows(rows, execute_code=True).calibration.write(path)
    extra = f'\n[quality]\ncalibration = "{path}"\nexecute_code = true\n'
    return stack_factory(extra=extra)  # type: ignore[operator, no-any-return]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the sandbox forks")
def test_a_looping_draft_holds_up_no_other_request(executing: Stack) -> None:
    stack = executing
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=LOOPING))
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER))
    run_program(program_of(GOOD))  # the fork server (kernel sandbox), if any, runs before we count
    before = descendants()
    slow: list[object] = []

    def judged() -> None:
        messages = [{"role": "user", "content": QUERY}]
        chat = stack.client().chat.completions
        slow.append(chat.with_raw_response.create(model="cascade", messages=messages))

    first = threading.Thread(target=judged)
    first.start()
    deadline = time.monotonic() + 20
    while not descendants() - before:  # the draft's code is running in the sandbox now
        assert time.monotonic() < deadline and first.is_alive(), "the draft's code never ran"
        time.sleep(0.005)
    sandboxed = descendants() - before
    # another request on the same server (the verifier alone: no code in its answer)
    other = stack.client().chat.completions.create(model="big", messages=[{"role": "user", "content": "Hi"}])
    assert other.choices[0].message.content == GOOD_ANSWER
    assert sandboxed & descendants(), "the other request waited for the draft's execution"
    assert first.is_alive()
    first.join(30)
    assert not first.is_alive() and slow
    raw = slow[0]
    assert raw.headers["x-cascade-draft-accepted"] == "false"  # type: ignore[attr-defined]
    assert not sandboxed & descendants()  # reaped


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the sandbox forks")
def test_serve_ask_and_quality_check_decide_alike_when_executing(executing: Stack, tmp_path: Path) -> None:
    stack = executing
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER))
    cli = CliRunner(tmp_path, stack.config, stack.db)
    scores = []
    for draft in (GOOD, WRONG):
        stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=draft))
        raw = stack.client().chat.completions.with_raw_response.create(
            model="cascade", messages=[{"role": "user", "content": QUERY}]
        )
        served = raw.headers["x-cascade-draft-accepted"] == "true"
        request_id = raw.headers["x-cascade-request-id"]
        calls = ledger_rows(stack.db, "calls")
        [judged] = [c for c in calls if c["request_id"] == request_id and c["role"] == "draft"]
        ask = cli("ask", QUERY, "--json")
        assert ask.code == 0, ask.stderr
        check = cli("quality", "check", "--query", QUERY, "--response", draft, "--json")
        assert check.code == 0, check.stderr
        assert judged["quality_score"] == ask.json()["calls"][0]["quality_score"] == check.json()["score"]
        assert served == ask.json()["draft_accepted"] == check.json()["passed"]
        scores.append(check.json()["score"])
    assert scores[0] > scores[1]  # running the code is what told them apart
