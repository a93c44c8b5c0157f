"""No API key is ever printed, logged or stored (issue 11): every command runs with
key-shaped values planted in the environment and the config, on the happy paths and on
the error paths that used to echo them (a key with a line break, a provider that quotes
the key back in its error, a config value that is a key, --debug tracebacks); then all
stdout and stderr, every file written (results, exports), the ledger with its WAL and the
side journal are searched for them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.conftest import GOOD_ANSWER, CliRunner, config_text

CONFIG_KEY = "sk-plantedConfigKey0123456789"  # in the variable the config names
DEFAULT_KEY = "sk-plantedDefaultKey9876543210"  # OPENAI_API_KEY
OTHER_KEY = "zz-planted-other-provider-secret"  # some other *_API_KEY in the environment
IN_CONFIG = "sk-plantedInTheConfigFile55555"  # a key pasted into the config itself
PLANTED = (CONFIG_KEY, DEFAULT_KEY, OTHER_KEY, IN_CONFIG)


class _EchoingProvider(BaseHTTPRequestHandler):
    """A provider that quotes the credentials back in its 401, as real ones do."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps(
            {"error": {"message": f"Incorrect API key provided: {self.headers.get('authorization')}"}}
        ).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echoing() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingProvider)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _assert_clean(texts: list[str], root: Path) -> None:
    blobs = [t.encode() for t in texts]
    blobs += [p.read_bytes() for p in root.rglob("*") if p.is_file() and p.suffix != ".toml"]
    for secret in PLANTED:
        for part in (secret, secret[6:]):  # whole, or the part after the prefix
            leaks = [b[:200] for b in blobs if part.encode() in b]
            assert not leaks, (secret, leaks)


def test_no_command_shows_or_stores_a_key(tmp_path: Path, server: ReplayServer, echoing: str) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    keyed = 'api_key_env = "CASCADE_PLANTED_KEY"'
    config = tmp_path / "cascadeflow.toml"
    config.write_text(
        config_text(server.base_url, mini_extra=keyed, big_extra=keyed) + "\n[budgets.default]\ndaily = 5\n",
        encoding="utf-8",
    )
    env = {"CASCADE_PLANTED_KEY": CONFIG_KEY, "OPENAI_API_KEY": DEFAULT_KEY, "OTHER_API_KEY": OTHER_KEY}
    cli = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    (tmp_path / "in.jsonl").write_text(
        '{"id": 1, "query": "What is the capital of France?"}\n{"id": 2, "query": "hi"}\n', encoding="utf-8"
    )
    commands = [
        ["ask", "What is the capital of France?"],
        ["ask", "hello there", "--json"],
        ["batch", "in.jsonl", "-o", "out.jsonl"],
        ["logs"],
        ["logs", "--json"],
        ["usage"],
        ["usage", "--json", "--by", "model"],
        ["export", "--json", "-o", "export.json"],
        ["export", "--csv"],
        ["budget", "set", "alice", "--daily", "2"],
        ["budget", "show", "alice"],
        ["budget", "list", "--json"],
        ["budget", "rm", "alice"],
        ["models"],
        ["models", "--json"],
        ["config", "show"],
        ["config", "path"],
        ["forecast", "--json"],
        ["anomalies"],
        ["domain", "write a python function"],
        ["quality", "check", "--query", "q?", "--response", "An answer."],
    ]
    runs = [cli(*args, **env) for args in commands]
    for args, run in zip(commands, runs, strict=True):
        assert "unexpected" not in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)
    assert runs[0].code == 0 and runs[2].code == 0, (runs[0].stderr, runs[2].stderr)
    imported = cli("import", "export.json", **env)  # and back in (ids already there: refused or merged)
    runs.append(imported)
    # the error paths that used to echo a key
    broken = {**env, "CASCADE_PLANTED_KEY": f"{CONFIG_KEY}\n{OTHER_KEY}"}
    runs += [cli("ask", "hi", **broken), cli("--debug", "ask", "hi", **broken)]
    assert runs[-1].code == 1 and "line break" in runs[-1].stderr
    echo_config = tmp_path / "echo.toml"
    echo_config.write_text(config_text(echoing, mini_extra=keyed, big_extra=keyed), encoding="utf-8")
    for debug in ([], ["--debug"]):
        run = cli("--config", str(echo_config), *debug, "ask", "hi", **env)
        assert run.code == 2, run.stderr
        assert "HTTP 401" in run.stderr and "[redacted]" in run.stderr
        runs.append(run)
    runs.append(cli("--config", str(echo_config), "batch", "in.jsonl", "-o", "echo_out.jsonl", **env))
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text(
        config_text(server.base_url, mini_extra=f'max_retries = "{IN_CONFIG}"'), encoding="utf-8"
    )
    for debug in ([], ["--debug"]):
        run = cli("--config", str(bad_config), *debug, "ask", "hi", **env)
        assert run.code == 1 and "max_retries" in run.stderr, run.stderr
        runs.append(run)
    _assert_clean([t for r in runs for t in (r.stdout, r.stderr)], tmp_path)
