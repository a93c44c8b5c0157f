"""The replay server, exercised through real HTTP on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer, load_recordings

ROOT = Path(__file__).resolve().parents[2]
GSM8K_FIXTURE = ROOT / "tests" / "fixtures" / "gsm8k_sample.jsonl"
DEMO_FILE = ROOT / "sample_data" / "demo_queries.jsonl"


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer() as srv:
        yield srv


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def chat(
    client: httpx.Client, server: ReplayServer, model: str, query: str, **extra: Any
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": query}], **extra}
    return client.post(f"{server.base_url}/chat/completions", json=body)


def sse_events(text: str) -> list[Any]:
    payloads = [line.removeprefix("data: ") for line in text.split("\n\n") if line]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def test_answer_has_openai_shape_and_usage(server: ReplayServer, client: httpx.Client) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="Paris is the capital of France."))
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    }
    response = client.post(f"{server.base_url}/chat/completions", json=body)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert isinstance(data["created"], int)
    assert data["model"] == "gpt-4o-mini"
    choice = data["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Paris is the capital of France."}
    assert choice["finish_reason"] == "stop"
    # 9 + 30 message chars -> 10 tokens; 31 answer chars -> 8 tokens
    assert data["usage"] == {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}
    assert server.requests == [body]
    assert server.request_count("gpt-4o-mini") == 1


def test_usage_overrides_and_details(server: ReplayServer, client: httpx.Client) -> None:
    server.set_behavior(
        "o1-mini",
        ModelBehavior(
            answer="42",
            prompt_tokens=100,
            completion_tokens=7,
            cached_tokens=40,
            reasoning_tokens=3,
        ),
    )
    usage = chat(client, server, "o1-mini", "Answer?").json()["usage"]
    assert usage == {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "total_tokens": 107,
        "prompt_tokens_details": {"cached_tokens": 40},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }


def test_recording_lookup_by_last_user_message(client: httpx.Client) -> None:
    recordings = {"gpt-4o-mini": {"What is 2+2?": "4", "Other": "x"}}
    with ReplayServer(recordings) as srv:
        body = {
            "model": "openai/gpt-4o-mini",  # provider prefix is stripped for matching
            "messages": [
                {"role": "user", "content": "Other"},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": [{"type": "text", "text": "  What is 2+2?\n"}]},
            ],
        }
        data = client.post(f"{srv.base_url}/chat/completions", json=body).json()
        assert data["choices"][0]["message"]["content"] == "4"
        assert srv.request_count("gpt-4o-mini") == 1

        first = chat(client, srv, "gpt-4o-mini", "Unrecorded question").json()
        second = chat(client, srv, "gpt-4o-mini", "Unrecorded question").json()
        generic = first["choices"][0]["message"]["content"]
        assert "Unrecorded question" in generic
        assert generic == second["choices"][0]["message"]["content"]


def test_max_tokens_cuts_the_answer(server: ReplayServer, client: httpx.Client) -> None:
    server.set_behavior("m", ModelBehavior(answer="word " * 20))  # 100 chars = 25 tokens
    for field in ("max_tokens", "max_completion_tokens"):
        data = chat(client, server, "m", "Talk", **{field: 5}).json()
        assert data["choices"][0]["message"]["content"] == ("word " * 20)[:20]
        assert data["choices"][0]["finish_reason"] == "length"
        assert data["usage"]["completion_tokens"] == 5

    roomy = chat(client, server, "m", "Talk", max_tokens=25).json()
    assert roomy["choices"][0]["finish_reason"] == "stop"


def test_finish_reason_from_behavior(server: ReplayServer, client: httpx.Client) -> None:
    server.set_behavior("m", ModelBehavior(answer="Cut", finish_reason="length"))
    assert chat(client, server, "m", "q").json()["choices"][0]["finish_reason"] == "length"


def test_error_status_fail_times_then_success(server: ReplayServer, client: httpx.Client) -> None:
    server.set_behavior("m", ModelBehavior(answer="ok", status=500, fail_times=2))
    statuses = [chat(client, server, "m", "q").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert server.request_count("m") == 3

    server.set_behavior("m", ModelBehavior(status=401))  # always fails; counter reset
    response = chat(client, server, "m", "q")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert set(error) == {"message", "type", "param", "code"}


def test_rate_limit_with_retry_after(server: ReplayServer, client: httpx.Client) -> None:
    server.set_behavior("m", ModelBehavior(status=429, retry_after=1.5))
    response = chat(client, server, "m", "q")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1.5"
    assert response.json()["error"]["type"] == "requests"

    server.set_behavior("m", ModelBehavior(status=429, retry_after=2))
    assert chat(client, server, "m", "q").headers["retry-after"] == "2"


def test_garbage_body(server: ReplayServer, client: httpx.Client) -> None:
    server.set_behavior("m", ModelBehavior(garbage=True))
    response = chat(client, server, "m", "q")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_streaming_sse_with_usage_chunk(server: ReplayServer, client: httpx.Client) -> None:
    answer = "Streaming answers arrive in several small pieces."
    server.set_behavior("m", ModelBehavior(answer=answer))
    response = chat(client, server, "m", "q", stream=True, stream_options={"include_usage": True})

    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == answer
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 13

    plain = sse_events(chat(client, server, "m", "q", stream=True).text)
    assert all("usage" not in c for c in plain[:-1])


def test_concurrent_requests(server: ReplayServer) -> None:
    server.set_behavior("m", ModelBehavior(answer="ok", latency_s=0.05))
    with httpx.Client(timeout=10.0, limits=httpx.Limits(max_connections=32)) as c:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            responses = list(pool.map(lambda i: chat(c, server, "m", f"q{i}"), range(64)))
        elapsed = time.monotonic() - started

    assert [r.status_code for r in responses] == [200] * 64
    assert server.request_count("m") == 64
    assert elapsed < 64 * 0.05 / 2  # answered in parallel, not one after another


def test_unknown_path_bad_json_and_models(client: httpx.Client) -> None:
    with ReplayServer({"gpt-4o": {"q": "a"}}) as srv:
        root = srv.base_url.removesuffix("/v1")
        srv.set_behavior("gpt-4o-mini", ModelBehavior())

        assert client.get(f"{srv.base_url}/nope").status_code == 404
        missing = client.post(f"{srv.base_url}/completions", json={})
        assert missing.status_code == 404
        assert "error" in missing.json()

        bad = client.post(f"{srv.base_url}/chat/completions", content=b"{not json")
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        no_model = client.post(f"{srv.base_url}/chat/completions", json={"messages": []})
        assert no_model.status_code == 400

        no_prefix = client.post(
            f"{root}/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "q"}]},
        )
        assert no_prefix.json()["choices"][0]["message"]["content"] == "a"

        models = client.get(f"{srv.base_url}/models").json()
        assert [m["id"] for m in models["data"]] == ["gpt-4o", "gpt-4o-mini"]


def test_hang_times_out_and_stop_is_prompt() -> None:
    srv = ReplayServer(default=ModelBehavior(hang=True)).start()
    with httpx.Client(timeout=0.3) as c, pytest.raises(httpx.ReadTimeout):
        chat(c, srv, "m", "q")
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2.0


def test_client_disconnect_is_silent(
    server: ReplayServer, capfd: pytest.CaptureFixture[str]
) -> None:
    server.set_behavior("slow", ModelBehavior(answer="late " * 1000, latency_s=0.3))
    with httpx.Client(timeout=0.05) as c, pytest.raises(httpx.ReadTimeout):
        chat(c, server, "slow", "q")
    time.sleep(0.5)  # the handler writes to the closed socket meanwhile
    with httpx.Client(timeout=5.0) as c:
        assert chat(c, server, "fast", "q").status_code == 200
    assert capfd.readouterr().err == ""


def test_load_recordings_gsm8k_shape(client: httpx.Client) -> None:
    recordings = load_recordings(GSM8K_FIXTURE)
    assert set(recordings) == {"mixtral-8x7b-instruct", "gpt-4-1106-preview"}
    assert all(len(answers) == 5 for answers in recordings.values())

    rows = [json.loads(line) for line in GSM8K_FIXTURE.read_text(encoding="utf-8").splitlines()]
    with ReplayServer(recordings) as srv:
        data = chat(client, srv, "gpt-4-1106-preview", rows[0]["query"]).json()
    assert data["choices"][0]["message"]["content"] == rows[0]["verifier_answer"]


def test_load_recordings_demo_shape_with_truncate(tmp_path: Path, client: httpx.Client) -> None:
    path = tmp_path / "demo.jsonl"
    rows = [
        {"query": "Full?", "answers": {"cheap": "Yes, fully.", "strong": "Yes."}},
        {"query": "Cut?", "answers": {"cheap": "It stops in the"}, "truncate": {"cheap": True}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")

    recordings = load_recordings(path)
    assert recordings == {
        "cheap": {"Full?": "Yes, fully.", "Cut?": "It stops in the"},
        "strong": {"Full?": "Yes."},
    }
    assert recordings.truncated == {("cheap", "Cut?")}
    with ReplayServer(recordings) as srv:
        cut = chat(client, srv, "cheap", "Cut?").json()["choices"][0]
        full = chat(client, srv, "cheap", "Full?").json()["choices"][0]
    assert (cut["message"]["content"], cut["finish_reason"]) == ("It stops in the", "length")
    assert full["finish_reason"] == "stop"


@pytest.mark.parametrize("line", ["{not json", '{"answers": {}}', '{"query": "q", "x": 1}'])
def test_load_recordings_rejects_bad_rows(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        load_recordings(path)


def test_demo_sample_data_is_well_formed() -> None:
    rows = [json.loads(line) for line in DEMO_FILE.read_text(encoding="utf-8").splitlines()]
    assert 40 <= len(rows) <= 60
    assert len({r["id"] for r in rows}) == len(rows)
    domains = Counter(r["domain"] for r in rows)
    assert set(domains) == {"code", "math", "medical", "legal", "finance", "general"}
    assert min(domains.values()) >= 6
    flaws = Counter(r["flaw"] for r in rows)
    assert set(flaws) == {
        "none",
        "empty",
        "refusal",
        "hedging",
        "too_short",
        "repetition",
        "truncated",
        "wrong",
    }
    assert 0.55 <= flaws["none"] / len(rows) <= 0.65
    assert 2 <= flaws["wrong"] <= 4
    for row in rows:
        assert set(row["answers"]) == {"gpt-4o-mini", "gpt-4o"}
        assert row["answers"]["gpt-4o"].strip()
        assert (row["flaw"] == "empty") == (row["answers"]["gpt-4o-mini"] == "")
        assert (row["flaw"] == "truncated") == (row.get("truncate") == {"gpt-4o-mini": True})

    recordings = load_recordings(DEMO_FILE)
    assert len(recordings["gpt-4o"]) == len(rows)
    assert len(recordings.truncated) == flaws["truncated"]


def test_module_runs_in_foreground_until_terminated(client: httpx.Client) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "cascadeflow_cli.replay", "--port", "0"]
    command += ["--recordings", str(GSM8K_FIXTURE)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        base_url = line.removeprefix("listening on ")
        body = {"model": "mixtral-8x7b-instruct", "messages": [{"role": "user", "content": "x"}]}
        assert client.post(f"{base_url}/chat/completions", json=body).status_code == 200
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert stderr == ""
