"""A real `cascade serve` app on loopback (uvicorn in a thread, the real Runner, a real
ledger file), with the replay server as its provider; clients are the official openai SDK
and raw httpx."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cascadeflow_cli.config import load_config
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.keys import create_key
from cascadeflow_cli.replay.server import ReplayServer
from cascadeflow_cli.server import ServeSettings, bind, build_app
from tests.conftest import config_text


@dataclass
class Stack:
    url: str  # the serve endpoint's base URL, ".../v1"
    key: str  # alice's key
    db: Path
    config: Path
    replay: ReplayServer
    log: list[str]

    def client(self, key: str | None = None, **kw: object):
        import openai

        return openai.OpenAI(base_url=self.url, api_key=key or self.key, max_retries=0, timeout=20, **kw)

    def post(self, body: object, key: str | None = None, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.post(f"{self.url}/chat/completions", json=body, headers=headers, timeout=20, **kw)


class ThreadServer:
    """uvicorn serving ``app`` in a daemon thread (signals stay with pytest)."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def write_config(tmp_path: Path, replay: ReplayServer, extra: str = "", **kw: str) -> Path:
    path = tmp_path / "cascadeflow.toml"
    path.write_text(config_text(replay.base_url, extra=extra, **kw), encoding="utf-8")
    return path


def make_key(config: Path, db: Path, user: str = "alice", **kw: object) -> str:
    ledger = open_ledger(db)
    try:
        key, _ = create_key(ledger, user, **kw)  # type: ignore[arg-type]
    finally:
        ledger.close()
    return key


@pytest.fixture
def stack_factory(tmp_path: Path, server: ReplayServer) -> Iterator[object]:
    """``make(extra_config="", **config_text options) -> Stack``, stopped at the end."""
    running: list[ThreadServer] = []

    def make(extra: str = "", **kw: str) -> Stack:
        config = write_config(tmp_path, server, extra, **kw)
        db = tmp_path / "ledger.db"
        load_config(config)  # a bad test config fails here, readably
        key = make_key(config, db)
        log: list[str] = []
        app = build_app(ServeSettings(str(config), str(db), concurrency=8), write_log=log.append)
        srv = ThreadServer(app).__enter__()
        running.append(srv)
        return Stack(f"http://127.0.0.1:{srv.port}/v1", key, db, config, server, log)

    yield make
    for srv in running:
        srv.__exit__()


@pytest.fixture
def stack(stack_factory: object) -> Stack:
    return stack_factory()  # type: ignore[operator]
