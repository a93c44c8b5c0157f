"""A local OpenAI-compatible chat-completions server that replays recorded answers.

It stands in for a real provider in ``cascade demo``, in the test suite (reached through real
HTTP) and in the benchmarks. Per model it can answer from recordings, answer a fixed text, be
slow, fail, hang, cut its output off or return garbage (see ``ModelBehavior``).
Standard library only. What it answers is here; how it goes on the wire, in ``handler.py``.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any

from cascadeflow_cli.replay.behavior import ModelBehavior
from cascadeflow_cli.replay.handler import ReplayHTTPServer
from cascadeflow_cli.replay.recordings import Recordings, load_recordings
from cascadeflow_cli.replay.signals import logprobs_payload
from cascadeflow_cli.replay.wire import (
    WireCompletion,
    bare,
    generic_answer,
    last_user_text,
    match_model,
    same_model,
    text_of,
    token_limit,
    tokens,
    usage,
)

__all__ = ["ModelBehavior", "Recordings", "ReplayServer", "load_recordings", "spawn"]


class ReplayServer:
    """OpenAI-compatible server on loopback, serving in a daemon thread.

    ``requests`` holds every received JSON request body, for assertions.
    """

    def __init__(
        self,
        recordings: Mapping[str, Mapping[str, str]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: ModelBehavior | None = None,
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self._recordings = Recordings(recordings)
        self._host = host
        self._port = port
        self._default = default or ModelBehavior()
        self._behaviors: dict[str, ModelBehavior] = {}
        self._failures: dict[str, int] = {}
        self._asked: dict[tuple[str, str], int] = {}  # (model, query) -> requests so far
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._abandoned_count = 0
        self._httpd: ReplayHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None

    # -- configuration -------------------------------------------------------------------

    def set_behavior(self, model: str, behavior: ModelBehavior) -> None:
        with self._lock:
            self._behaviors[model] = behavior
            self._failures.pop(bare(model), None)

    def clear_behaviors(self) -> None:
        with self._lock:
            self._behaviors.clear()
            self._failures.clear()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ReplayServer:
        if self._httpd is not None:
            raise RuntimeError("ReplayServer is already running")
        self._httpd = ReplayHTTPServer((self._host, self._port), self)
        host, port = self._httpd.server_address[:2]
        self._address = (str(host), int(port))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"replay-server-{self._address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._address is None:
            raise RuntimeError("ReplayServer has not been started")
        host, port = self._address
        return f"http://{host}:{port}/v1"

    def request_count(self, model: str | None = None) -> int:
        with self._lock:
            if model is None:
                return len(self.requests)
            return sum(1 for body in self.requests if same_model(body.get("model"), model))

    # -- used by the request handler ---------------------------------------------------------

    @property
    def abandoned(self) -> int:
        """Requests whose client closed the connection while this server waited to answer
        or stalled a stream."""
        with self._lock:
            return self._abandoned_count

    def _abandoned(self) -> None:
        with self._lock:
            self._abandoned_count += 1

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def _behavior_for(self, model: str) -> ModelBehavior:
        with self._lock:
            key = match_model(self._behaviors, model)
            return self._default if key is None else self._behaviors[key]

    def _faults_for(self, model: str, behavior: ModelBehavior) -> ModelBehavior:
        """``behavior`` for this request: without its faults once ``fail_times`` requests
        had them (counted here)."""
        if behavior.fail_times is None:
            return behavior
        with self._lock:
            failed = self._failures.get(bare(model), 0)
            if failed < behavior.fail_times:
                self._failures[bare(model)] = failed + 1
                return behavior
        return replace(behavior, status=None, latency_s=0.0, hang=False, garbage=False, stall_after=None,
                       reset_after=None, close_after=None, reset_before_done=False, fail_times=None,
                       close_unanswered=False)

    def _answer(self, model: str, query: str, behavior: ModelBehavior) -> tuple[str, str]:
        """The answer text and its finish reason, before any max_tokens cut."""
        if behavior.answer is not None:
            return behavior.answer, behavior.finish_reason
        key = match_model(self._recordings, model)
        if key is not None and query in self._recordings[key]:
            if (key, query) in self._recordings.truncated:
                return self._recordings[key][query], "length"
            return self._recordings[key][query], behavior.finish_reason
        return generic_answer(model, query), behavior.finish_reason

    def _sample_texts(
        self, body: dict[str, Any], query: str, answer: str, behavior: ModelBehavior
    ) -> list[str]:
        """The answers of this request's choices: ``n`` of them when honoured, else one;
        without ``n`` each request for the same query takes the next sample in turn."""
        pool = [answer, *(behavior.samples or ())]
        n = body.get("n")
        n = n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1
        if behavior.honor_n and n > 1:
            return [pool[i % len(pool)] for i in range(n)]
        if not behavior.samples:
            return [answer]
        with self._lock:
            key = (bare(body["model"]), query)
            turn = self._asked.get(key, 0)
            self._asked[key] = turn + 1
        return [pool[turn % len(pool)]]

    def _complete(self, body: dict[str, Any], behavior: ModelBehavior) -> WireCompletion:
        model: str = body["model"]
        messages: list[Any] = body["messages"]
        query = last_user_text(messages)
        answer, finish_reason = self._answer(model, query, behavior)
        limit = None if behavior.ignore_max_tokens else token_limit(body)
        choices = []
        for text in self._sample_texts(body, query, answer, behavior):
            finish = finish_reason
            if limit is not None and tokens(text) > limit:
                text, finish = text[: limit * 4], "length"
            choices.append((text, finish))
        logprobs = bool(body.get("logprobs")) and behavior.honor_logprobs
        prompt_chars = sum(len(text_of(m.get("content"))) for m in messages if isinstance(m, dict))
        prompt = behavior.prompt_tokens
        completion = behavior.completion_tokens
        return WireCompletion(
            id=f"chatcmpl-replay-{next(self._ids):08d}",
            created=int(time.time()),
            model=model,
            content=choices[0][0],
            finish_reason=choices[0][1],
            usage=usage(
                math.ceil(prompt_chars / 4) if prompt is None else prompt,
                sum(tokens(t) for t, _ in choices) if completion is None else completion,
                behavior.cached_tokens,
                behavior.reasoning_tokens,
            ),
            extra=[
                {
                    "text": t,
                    "finish_reason": f,
                    "logprobs": logprobs_payload(bare(model), t, behavior.logprob) if logprobs else None,
                }
                for t, f in choices
            ],
        )

    def _models_payload(self) -> dict[str, Any]:
        with self._lock:
            models = sorted(set(self._recordings) | set(self._behaviors))
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "replay"} for m in models]
        return {"object": "list", "data": data}


def spawn(*args: str, env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Run the server in another process (`python -m cascadeflow_cli.replay ARGS`, e.g.
    ``"--latency", "0.05"``) on a free port; returns the process and its base URL.
    For benchmarks that need the server outside the measured process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cascadeflow_cli.replay", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"replay server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")
