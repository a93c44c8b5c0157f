"""Why serve has its own asyncio HTTP client (engine/providers/aio_transport.py): its CPU
per request against httpx.AsyncClient's, both posting the same chat completion to a local
replay server in this process (its CPU counted on both sides), 50 in flight, alternated
twice. `python bench/aio_transport.py [--requests N]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cascadeflow_cli.engine.providers.aio_transport import AsyncKeepAliveClient
from cascadeflow_cli.replay.server import ReplayServer, load_recordings

DEMO = Path(__file__).resolve().parent.parent / "cascadeflow_cli" / "data" / "demo_queries.jsonl"


async def measure(post: Callable[[], Awaitable[None]], n: int) -> tuple[float, float]:
    """(ms of this process's CPU per request, wall seconds) for ``n`` posts, 50 in flight."""
    gate = asyncio.Semaphore(50)

    async def one() -> None:
        async with gate:
            await post()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return (time.process_time() - cpu) / n * 1000, time.perf_counter() - wall


async def compare(url: str, n: int) -> None:
    import httpx

    query = json.loads(DEMO.read_text().splitlines()[0])["query"]
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": query}]}
    headers = {"Authorization": "Bearer replay"}
    ours = AsyncKeepAliveClient()
    theirs = httpx.AsyncClient(limits=httpx.Limits(max_connections=50, max_keepalive_connections=50))

    async def post_ours() -> None:
        assert (await ours.post(url, payload, headers, 10)).status_code == 200

    async def post_httpx() -> None:
        assert (await theirs.post(url, json=payload, headers=headers, timeout=10)).status_code == 200

    print(f"{n} requests each, 50 in flight; CPU of this process per request")
    for name, post in [("ours", post_ours), ("httpx", post_httpx)] * 2:
        cpu, wall = await measure(post, n)
        print(f"  {name:<6} {cpu:6.3f} ms CPU  {wall:6.2f} s wall")
    ours.close()
    await theirs.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    with ReplayServer(load_recordings(DEMO)) as server:
        asyncio.run(compare(f"{server.base_url}/chat/completions", args.requests))


if __name__ == "__main__":
    main()
