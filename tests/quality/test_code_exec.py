"""Running a draft's Python against its own examples (opt-in, quality/code_exec.py): the
claims it checks, and the sandbox around the child it runs in."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from cascadeflow_cli.errors import ConfigError
from cascadeflow_cli.quality.calibrate import calibrate_rows
from cascadeflow_cli.quality.calibrated import CalibratedValidator
from cascadeflow_cli.quality.code_exec import ExecResult, program_of, run_program
from cascadeflow_cli.quality.features import draft_features
from tests.conftest import descendants

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the sandbox forks (POSIX)")

GOOD = '''Here it is:

```python
def double(n):
    return 2 * n
```

For example:

```python
print(double(2))  # Output: 4
x = double(5)  # 10
```
'''

WRONG = GOOD.replace("return 2 * n", "return 2 + n")


def run(text: str) -> ExecResult:
    return run_program(program_of(text))


def test_claims_that_hold_and_claims_the_code_contradicts() -> None:
    good = run(GOOD)
    assert good.ran and good.claims == 2 and good.claims_failed == 0 and good.failed_share == 0.0
    wrong = run(WRONG)  # 2 + 2 == 4 holds, 2 + 5 != 10 does not
    assert wrong.claims == 2 and wrong.claims_failed == 1 and wrong.failed_share == 0.5


def test_doctest_sessions_are_checked_and_ordinary_comments_are_not_claims() -> None:
    text = (
        "```python\ndef rev(s):\n    return s[::-1]\n```\n\n"
        "```\n>>> rev('ab')\n'ba'\n>>> rev('abc')\n'abc'\n```\n"
        "```python\nprint(rev('xy'))  # reverse it\n```\n"
    )
    result = run(text)
    assert (result.claims, result.claims_failed) == (2, 1)


def test_claims_on_the_next_line_in_an_output_block_and_in_prose() -> None:
    define = "```python\ndef double(n):\n    return 2 * n\n```\n"
    # a claim comment under the statement, and "This will print:" in the comment
    below = run(define + "```python\nprint(double(2))\n# Output: 4\n"
                "print(double(3))  # This will print: 7\n```")
    assert (below.claims, below.claims_failed) == (2, 1)
    # the output a script is said to print, in a block of its own (text, untagged prose)
    shown = run(define + "```python\nprint('twice 2 is', double(2))\n```\n"
                "This prints:\n```\ntwice 2 is 4\n```")
    assert (shown.claims, shown.claims_failed) == (1, 0)
    wrong = run(define + "```python\nprint(double(2))\nprint(double(5))\n```\n```text\n4\n11\n```")
    assert (wrong.claims, wrong.claims_failed) == (1, 1)
    # prose: `double(4)` returns `8` holds, `double(1)` gives 3 does not; an undefined
    # function's call is no claim, nor a call of names no code binds
    prose = run(define + "Calling `double(4)` returns `8`, and `double(1)` gives 3; `triple(1)` returns `3`;"
                " `double(n)` returns `2n`.")
    assert (prose.claims, prose.claims_failed) == (2, 1)


def test_asserts_in_the_draft_are_claims() -> None:
    """``assert f(2) == 4`` states an output as much as ``# Output: 4`` does: one that holds
    is a confirmed claim, one that does not is a failed claim (it raised and hid the rest)."""
    define = "```python\ndef double(n):\n    return 2 * n\n```\n"
    checks = run(define + "```python\nassert double(2) == 4\nassert 6 == double(3), 'three'\n"
                 "assert double(5) == 11  # wrong\nprint(double(1))  # 2\n```\n")
    assert (checks.claims, checks.claims_failed) == (4, 1) and checks.example_error == 0
    # other asserts run as written: no claim
    plain = run(define + "```python\nassert double(2)\nassert double(2) > 1\n```\n")
    assert (plain.claims, plain.example_error) == (0, 0)
    inside = run("```python\ndef f(n):\n    assert n == 1\n    return n\n```\n"
                 "```python\nprint(f(1))  # 1\n```\n")
    assert (inside.claims, inside.claims_failed) == (1, 0)


def test_a_returned_string_and_the_same_text_claimed_are_one_claim() -> None:
    text = (
        "```python\ndef check(xs):\n    if not xs:\n        return 'Error: empty list.'\n"
        "    return 'ok'\n```\n"
        "```\n>>> check([])\nError: empty list.\n```\n"
    )
    assert (run(text).claims, run(text).claims_failed) == (1, 0)


def attempts(*acts: str) -> str:
    """A draft whose usage example claims that every one of ``acts`` (expressions) is refused
    inside the sandbox: the claim fails if any of them succeeds."""
    lambdas = "".join(f"        lambda: {act},\n" for act in acts)
    expected = ", ".join(["'refused'"] * len(acts))
    return ("```python\ndef attempt():\n    out = []\n    for act in (\n" + lambdas
            + "    ):\n        try:\n            act()\n            out.append(\"done\")\n"
            "        except Exception:\n            out.append(\"refused\")\n    return out\n```\n"
            f"```python\nprint(attempt())  # [{expected}]\n```")


def test_no_python_runs_nothing() -> None:
    assert run("The answer is 42.") == ExecResult()
    assert run("```js\nconsole.log(1)\n```") == ExecResult()


def test_a_draft_that_raises_or_loops_is_contained() -> None:
    raising = run("```python\ndef f():\n    return 1\nraise SystemExit(3)\n```")
    assert raising.ran and raising.def_error
    t0 = time.monotonic()
    looping = run(
        "```python\ndef f():\n    return 1\nwhile True:\n    pass\n```\n```python\nprint(f())  # 1\n```"
    )
    assert time.monotonic() - t0 < 10
    assert looping.timeout and looping.def_error
    assert looping.claims == 1 and looping.claims_failed == 0  # the next block still ran


def test_an_endless_draft_s_claims_count_as_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim whose code never finishes is not confirmed: the claimed call that spins, the
    claims its block never reaches, a doctest line cut off, the output shown for a script
    cut off before it printed, and every claim of a child that never reports back."""
    from cascadeflow_cli.quality import code_exec

    spin = "```python\ndef f():\n    while True:\n        pass\n```\n"
    claimed = run(spin + "```python\nprint(f())  # 1\nx = f()  # 2\n```\n")
    assert claimed.timeout and (claimed.claims, claimed.claims_failed) == (2, 2)
    assert run(spin + "```python\n>>> f()\n1\n>>> 3\n3\n```\n").claims_failed == 2
    shown = run(spin + "```python\nf()\nprint(1)\n```\n```text\n1\n```\n")
    assert (shown.claims, shown.claims_failed) == (1, 1)
    # a claim that holds before the spin still holds; only the unfinished one fails
    mixed = run(GOOD + spin + "```python\nprint(double(3))  # 6\nprint(f())  # 1\n```\n")
    assert (mixed.claims, mixed.claims_failed) == (4, 1)  # GOOD's two hold
    # the child killed for good before it reports (here: its whole-run wall clock, shortened)
    monkeypatch.setattr(code_exec, "TIMEOUT_S", 0.3)
    killed = run("```python\nimport time\ntime.sleep(0.6)\nprint(1)  # 1\n```\n```text\n1\n```\n")
    assert killed.timeout and (killed.claims, killed.claims_failed) == (2, 2)
    features = draft_features("Write f", spin, domain="code", execution=claimed)
    assert features["exec_failed_share"] == 1.0  # not 0, the share of a draft whose claims hold


def test_claims_a_raising_block_never_reaches_count_as_failed() -> None:
    """A block that raises before its examples confirmed none of them: they fail, like
    those a block cut off by its time limit never reaches (they went uncounted: a draft
    whose usage example crashes scored like one without examples)."""
    define = "```python\ndef double(n):\n    return 2 * n\n```\n"
    crash = run(define + "```python\nxs = undefined_helper(3)\n"
                "print(double(2))  # 4\nprint(double(3))  # 6\n```\n")
    assert crash.example_error == 1 and crash.calls_undefined
    assert (crash.claims, crash.claims_failed) == (2, 2) and crash.failed_share == 1.0
    # claims before the crash still hold; a definition block that raises loses its own
    partly = run(define + "```python\nprint(double(2))  # 4\n1 / 0\nprint(double(3))  # 6\n```\n")
    assert (partly.claims, partly.claims_failed) == (2, 1)
    broken = run("```python\ndef f():\n    return 1\nprint(f())  # 1\nf(2)\nprint(f())  # 1\n```\n")
    assert broken.def_error and (broken.claims, broken.claims_failed) == (2, 1)


def test_the_child_cannot_write_files_connect_or_spawn(tmp_path: Path) -> None:
    target = tmp_path / "written.txt"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.1)
    port = server.getsockname()[1]
    result = run(attempts(
        f'open({str(target)!r}, "w").write("x")',
        f'__import__("socket").create_connection(("127.0.0.1", {port}))',
        '__import__("subprocess").run(["true"])',
        '__import__("os").system("true")',
        f'__import__("os").remove({str(tmp_path)!r})',
    ))
    assert (result.claims, result.claims_failed) == (1, 0)
    assert not target.exists()
    with pytest.raises(TimeoutError):
        server.accept()  # nobody connected
    server.close()


def test_the_child_sees_no_environment_and_our_process_is_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    result = run("```python\nimport os\nprint(len(os.environ))  # 0\n```")
    assert (result.claims, result.claims_failed) == (1, 0)
    assert os.environ["OPENAI_API_KEY"] == "sk-secret"


def test_the_child_cannot_read_its_environ_or_spawn_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess  # noqa: F401 - loaded in our process, so the child inherits _posixsubprocess

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    result = run(attempts(
        'open("/proc/self/environ", "rb").read()',
        'open("/proc/%d/environ" % __import__("os").getpid()).read()',
        'open("/proc/self/../self/mem", "rb")',
        '__import__("_posixsubprocess").fork_exec',
        '__import__("subprocess")._posixsubprocess.fork_exec',
    ))
    assert (result.claims, result.claims_failed) == (1, 0)
    assert "fork_exec" in dir(__import__("_posixsubprocess"))  # our process keeps it


def test_it_runs_from_a_threaded_process() -> None:
    out: list[ExecResult] = []
    worker = threading.Thread(target=lambda: out.append(run(WRONG)))
    worker.start()
    worker.join(timeout=15)
    assert out and out[0].claims_failed == 1


def test_the_feature_and_a_calibration_that_needs_execution() -> None:
    ran = draft_features("Write a function", WRONG, domain="code", execution=run(WRONG))
    assert ran["exec_failed_share"] == 0.5
    assert draft_features("Write a function", WRONG, domain="code")["exec_failed_share"] == 0.0
    rows = []
    for i in range(30):
        text = GOOD if i % 2 else WRONG
        rows.append({"id": i, "query": f"Write function {i}", "response": text, "correct": bool(i % 2)})
    report = calibrate_rows(rows, execute_code=True)
    cal = report.calibration
    assert cal.needs_execution and "exec_failed_share" in cal.features
    assert report.auroc > 0.9  # execution is the only thing telling these drafts apart
    with pytest.raises(ConfigError, match="execute_code = true"):
        CalibratedValidator(cal)
    validator = CalibratedValidator(cal, execute_code=True)
    assert validator.validate("Write a function", GOOD, domain="code").score > validator.validate(
        "Write a function", WRONG, domain="code"
    ).score
    plain = calibrate_rows(rows).calibration
    assert not plain.needs_execution and "exec_failed_share" not in plain.features
    # the static guess at what a run observes is the default model's, not the executing one's
    assert "code_calls_undefined" in plain.features and "code_calls_undefined" not in cal.features


def test_a_huge_allocation_fails_in_the_child_and_ordinary_code_still_runs() -> None:
    import numpy  # noqa: F401 - the allowance is on top of what the (forked) parent maps

    text = (
        "```python\ndef f():\n    return 1\n```\n"
        "```python\nx = bytearray(4 * 1024 ** 3)\n```\n"
        "```python\nprint(f())  # 1\nprint(sum(range(10 ** 5)))  # 4999950000\n```"
    )
    result = run(text)
    assert result.example_error == 1 and not result.def_error
    assert (result.claims, result.claims_failed) == (2, 0)


def test_no_more_children_at_once_than_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads asking at once (`cascade serve`, `batch`) run at most SLOTS sandboxed
    children together; the others wait their turn, and every one is run."""
    from cascadeflow_cli.quality import code_exec

    monkeypatch.setattr(code_exec, "_slots", threading.BoundedSemaphore(1))
    looping = "```python\ndef f():\n    while True:\n        pass\n```\n\n```python\nprint(f())  # 1\n```\n"
    out: list[ExecResult] = []
    workers = [threading.Thread(target=lambda: out.append(run(looping))) for _ in range(3)]
    run(GOOD)  # the fork server, where there is one, runs before we count
    before = descendants()
    seen: set[int] = set()
    most = 0
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        now = descendants() - before
        seen |= now
        most = max(most, len(now))
    assert len(out) == 3 and all(r.timeout for r in out)
    assert most == 1 and len(seen) == 3  # one at a time, each seen running


def test_a_calibration_s_workers_measure_what_one_process_does() -> None:
    """rows_features on the forked workers gives the features the serial path gives, the
    drafts that run out of time included (their limit is CPU time, not the load's wall)."""
    from cascadeflow_cli.quality.calibrate import rows_features

    spinning = "```python\ndef f():\n    while True:\n        pass\n```\n\n```python\nprint(f())  # 1\n```\n"
    responses = [GOOD, WRONG, spinning, "No code here.", GOOD.replace("print(double(2))", "print(triple(2))")]
    rows = [{"query": "Write a function", "response": r, "domain": "code"} for r in responses * 2]
    serial = rows_features(rows, execute_code=True, parallel=False)
    assert rows_features(rows, execute_code=True, parallel=True) == serial
    assert [f["exec_failed_share"] for f in serial[:5]] == [0.0, 0.5, 1.0, 0.0, 0.5]
