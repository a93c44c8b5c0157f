"""Load on `cascade serve`, side by side with the provider called directly and with
LiteLLM's proxy pointed at the same provider, in one run (so the ratios hold on a loaded
machine).

    python bench/serve_load.py [--seconds 8] [--litellm .benchvenv/bin/litellm]

The provider is the replay server in its own process, answering after 50 ms. `cascade
serve` runs with budgets and the ledger on: every request reserves against a daily
budget before the provider call and is recorded after it (one worker process, the
default chain, whose draft is accepted: one provider call a request, as through the
proxy). LiteLLM's proxy (`pip install 'litellm[proxy]'` in a separate venv) runs with
one worker and no database, so no budgets. The load client is a minimal asyncio
HTTP/1.1 client on keep-alive connections, one per simulated client, in this process.

Then the budget check: a key with a total budget of its own worth 100 requests, 16
clients on it at once, alongside 50 clients of load: the overspend (must be $0.00) and
the share of the 100 allowed requests that were served (target >= 95%).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cascadeflow_cli.replay.server import spawn  # noqa: E402

QUERY = "What is the capital of France?"
# a local stand-in, not a secret: the proxy refuses to start without a master key
LITELLM_KEY = "sk-bench-proxy-0000000000000000"


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0
    cpu_s: float = 0.0  # CPU time the server's processes used over the measured window

    @property
    def cpu_ms(self) -> float:
        """The server's CPU per answered request: the load-independent figure."""
        return self.cpu_s * 1000 / self.ok if self.ok else float("nan")

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")


class Conn:
    """One keep-alive HTTP/1.1 connection: POST a JSON body, read the whole response."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        self.writer.write(head.encode() + body)
        assert self.reader is not None
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        length, chunked, close = None, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.lower() == "close":
                close = True
        if chunked:
            data = bytearray()
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data += await self.reader.readexactly(size)
                await self.reader.readexactly(2)
            payload = bytes(data)
        else:
            payload = await self.reader.readexactly(length or 0)
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` and its descendants (uvicorn's workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(p, 0.0) for p in tree)


async def load(
    url: str,
    body: dict,
    headers: dict[str, str],
    clients: int,
    seconds: float,
    stop_on: int | None = None,
    pid: int | None = None,
) -> Result:
    """``clients`` loops posting ``body`` for ``seconds`` (after a one-second warm-up);
    a client stops at its first ``stop_on`` status (the budget check). ``pid``: the
    server's process, whose CPU over the measured window goes into the result."""
    host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
    path = "/" + url.removeprefix("http://").split("/", 1)[1] + "/chat/completions"
    raw = json.dumps(body).encode()
    result = Result()
    begin = time.perf_counter()
    measure_from = begin + (1.0 if stop_on is None else 0.0)
    end = measure_from + seconds

    async def client() -> None:
        conn = Conn(host, int(port))
        try:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                try:
                    status, payload = await conn.post(path, raw, headers)
                    if body.get("stream") and status == 200 and b"[DONE]" not in payload:
                        status = 599  # a stream that ended without its end
                except (OSError, ValueError, asyncio.IncompleteReadError):
                    conn.close()
                    status = -1
                if t0 >= measure_from:
                    if status == -1:
                        result.errors += 1
                    else:
                        result.statuses[status] = result.statuses.get(status, 0) + 1
                        if status == 200:
                            result.latencies.append(time.perf_counter() - t0)
                if stop_on is not None and status == stop_on:
                    return
        finally:
            conn.close()

    async def cpu() -> None:
        if pid is None:
            return
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        before = cpu_seconds(pid)
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        result.cpu_s = cpu_seconds(pid) - before

    await asyncio.gather(cpu(), *(client() for _ in range(clients)))
    result.elapsed = time.perf_counter() - measure_from
    return result


def wait_http(url: str, timeout: float = 180) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            urllib.request.urlopen(url, timeout=2).read()
            return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def start_serve(
    env: dict[str, str], workers: int, out: Path, access_log: bool, *extra: str
) -> tuple[subprocess.Popen[str], str]:
    """``cascade serve``, its stderr (the access log, on as it ships) into the file
    ``out``, as a service manager's journal would take it."""
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cascadeflow_cli",
                "serve",
                "--port",
                "0",
                *(() if access_log else ("--no-access-log",)),
                *(("--workers", str(workers)) if workers else ()),
                *extra,
            ],
            env=env,
            stderr=sink,
            text=True,
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        first = out.read_text().partition("\n")
        if first[1] or proc.poll() is not None:
            break
        time.sleep(0.05)
    line = first[0]
    if not line.startswith("listening on "):
        raise RuntimeError(out.read_text())
    return proc, line.removeprefix("listening on ").strip()


def start_litellm(binary: str, replay_url: str, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: {replay_url}\n      api_key: none\n"
        "litellm_settings:\n  telemetry: false\n"
        f"general_settings:\n  master_key: {LITELLM_KEY}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    proc = subprocess.Popen(
        [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/health/liveliness")
    return proc, f"http://127.0.0.1:{port}/v1"


def prepare(work: Path, replay_url: str) -> tuple[dict[str, str], str, str, int]:
    """Config, ledger, budgets and keys; returns the env, the load key, the capped key and
    the capped user's budget in nano-dollars (100 requests' worth)."""
    from cascadeflow_cli.ledger.db import open_ledger
    from cascadeflow_cli.ledger.keys import create_key

    config = work / "cascadeflow.toml"
    config.write_text(
        f'[[models]]\nname = "mini"\nmodel = "openai/gpt-4o-mini"\napi_base = "{replay_url}"\n\n'
        f'[[models]]\nname = "big"\nmodel = "openai/gpt-4o"\napi_base = "{replay_url}"\n\n'
        '[cascade]\nmodels = ["mini", "big"]\n\n[budgets]\nmode = "block"\n[budgets.default]\ndaily = 1000\n',
        encoding="utf-8",
    )
    db = work / "ledger.db"
    ledger = open_ledger(db)
    load_key, _ = create_key(ledger, "load")
    capped_key, _ = create_key(ledger, "capped")
    ledger.close()
    env = {**os.environ, "CASCADE_CONFIG": str(config), "CASCADE_DB": str(db)}
    return env, load_key, capped_key, 0


def one_cost(url: str, key: str, body: dict) -> int:
    import urllib.request

    req = urllib.request.Request(
        f"{url}/chat/completions",
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        return int(Decimal(response.headers["x-cascade-cost"]) * 10**9)


def key_spend(ledger: object, prefix: str) -> int:
    """Everything the requests made with key ``prefix`` cost, in nano-dollars."""
    from cascadeflow_cli.ledger.sql import money_sum_sql
    from cascadeflow_cli.money import nanos

    sql = (
        f"select {money_sum_sql('r.cost_nusd')} from api_key_requests k join requests r "
        "on r.id = k.request_id where k.prefix = ?"
    )
    return nanos(ledger.db.conn.execute(sql, [prefix]).fetchone()[0])  # type: ignore[attr-defined]


def row(name: str, r: Result, direct: Result | None) -> str:
    rps = r.ok / r.elapsed if r.elapsed else 0.0
    added = (
        f"{r.pct(0.5) - direct.pct(0.5):7.1f} {r.pct(0.99) - direct.pct(0.99):7.1f}"
        if direct
        else f"{'-':>7} {'-':>7}"
    )
    ratio = f"{rps / (direct.ok / direct.elapsed):5.2f}x" if direct and direct.ok else "  -   "
    bad = sum(v for k, v in r.statuses.items() if k != 200) + r.errors
    latency = f"{r.pct(0.5):7.1f} {r.pct(0.99):7.1f}"
    return f"{name:<26} {rps:7.0f} {ratio} {latency} {added} {bad:6d} {r.cpu_ms:7.2f}"


async def main_async(args: argparse.Namespace) -> None:
    replay, replay_url = spawn("--latency", "0.05")
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    procs: list[subprocess.Popen] = [replay]
    try:
        env, load_key, capped_key, _ = prepare(work, replay_url)
        serve, serve_url = start_serve(
            env, args.workers, work / "serve.log", not args.no_access_log
        )
        procs.append(serve)
        litellm_url = None
        if args.litellm and Path(args.litellm).exists():
            proxy, litellm_url = start_litellm(args.litellm, replay_url, work)
            procs.append(proxy)
        plain = {"model": "mini", "messages": [{"role": "user", "content": QUERY}], "max_tokens": 64}
        auth = {"Authorization": f"Bearer {load_key}"}
        targets = [
            ("provider directly", replay_url, {"model": "gpt-4o-mini"}, {}, replay.pid),
            ("cascade serve", serve_url, {"model": "cascade"}, auth, serve.pid),
        ]
        if litellm_url:
            auth = {"Authorization": f"Bearer {LITELLM_KEY}"}
            targets.append(("litellm proxy", litellm_url, {"model": "mini"}, auth, proxy.pid))
        for _name, url, extra, headers, _pid in targets:  # warm each up (imports, connections)
            await load(url, {**plain, **extra}, headers, 4, 1.0)
        print(f"load average before: {os.getloadavg()}", flush=True)
        cols = ("req/s", "ratio", "p50 ms", "p99 ms", "+p50", "+p99", "errors", "cpu ms")
        header = f"{'':<26} " + " ".join(f"{c:>7}" if c != "ratio" else f"{c:>6}" for c in cols)
        for case in args.cases.split(","):
            clients, streaming = int(case.rstrip("s")), case.endswith("s")
            print(
                f"\n{clients} clients, {'streaming' if streaming else 'not streaming'}, "
                f"{args.seconds:g} s each"
            )
            print(header)
            direct = None
            for name, url, extra, headers, pid in targets:
                body = {**plain, **extra, **({"stream": True} if streaming else {})}
                r = await load(url, body, headers, clients, args.seconds, pid=pid)
                direct = direct or r
                print(row(name, r, direct if r is not direct else None), flush=True)
        if args.no_budget_check:
            return
        # the budget check, under 50 clients of load: a key with a budget of its own
        cost = one_cost(serve_url, capped_key, plain)
        from cascadeflow_cli.ledger.budgets import BudgetConfig
        from cascadeflow_cli.ledger.db import open_ledger
        from cascadeflow_cli.ledger.keys import create_key

        ledger = open_ledger(Path(env["CASCADE_DB"]))
        budget_nusd = 100 * cost
        capped_key, stored = create_key(
            ledger, "capped", "bench", budget=BudgetConfig(total=Decimal(budget_nusd) / 10**9)
        )
        ledger.close()
        background = asyncio.create_task(
            load(serve_url, {**plain, "model": "cascade"}, {"Authorization": f"Bearer {load_key}"}, 50, 6.0)
        )
        capped = await load(
            serve_url, plain, {"Authorization": f"Bearer {capped_key}"}, 16, 30.0, stop_on=429
        )
        await background
        ledger = open_ledger(Path(env["CASCADE_DB"]))
        spent = key_spend(ledger, stored.prefix)
        ledger.close()
        over = max(0, spent - budget_nusd)
        print(
            f"\nbudget worth 100 requests (${budget_nusd / 1e9:.6f} total, ${cost / 1e9:.8f} a request), "
            f"16 clients on one key, 50 clients of load beside it:"
        )
        print(
            f"  served {capped.ok} of 100 allowed ({capped.ok:.0f}%), refused {capped.statuses.get(429, 0)} "
            f"with 429, overspend ${over / 1e9:.2f}, other errors "
            f"{sum(v for k, v in capped.statuses.items() if k not in (200, 429)) + capped.errors}"
        )
        print(f"\nload average after: {os.getloadavg()}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.wait(15)
        shutil.rmtree(work, ignore_errors=True)  # its ledger and logs (75 runs left 75 behind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--workers", type=int, default=0, help="cascade serve --workers (0: serve's default)"
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help="serve without its access log (on by default)"
    )
    parser.add_argument(
        "--cases", default="50,200,50s,200s", help="client counts to run, 's' for streaming: '50,200s'"
    )
    parser.add_argument("--no-budget-check", action="store_true", help="skip the capped key's run")
    parser.add_argument(
        "--litellm",
        default=str(ROOT / ".benchvenv" / "bin" / "litellm"),
        help="the litellm CLI of a venv with litellm[proxy] (skipped if missing)",
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
