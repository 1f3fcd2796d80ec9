"""Both read windows grow between the Python server and our JavaScript client (js/sio-stream.js,
in Node) on a long link (``benchmarks/link.py``, 100 ms round trip): the server's window for the
client's upload (the client announces ``window-growth`` and ``consumed``) and the client's own
window for a download (it doubles while a whole window drains in under two round trips). With
the configured 8 chunks alone, 2 MiB per round trip would be the limit (docs/benchmarks.md).
And the client's window does not grow toward 64 chunks where the round trip is not the limit:
data that comes slower than the round trip (played on a virtual clock, not the machine's)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio
from _node import NODE_DIR, NodeTools

import sio_stream
from benchmarks.link import Link
from sio_stream import IOStream, create_stream
from sio_stream.core._config import DEFAULT_INITIAL_CREDIT, DEFAULT_MAX_CHUNK
from tests.support import start_server

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
SCRIPT = NODE_DIR / "window_client.mjs"
#: Generous: two busy cores shared with other test runs.
TIMEOUT = 180.0
#: The configured window (chunks) that both sides start from.
WINDOW = 8


@contextlib.asynccontextmanager
async def serving(windows: list[int], rtt: float | None = 0.1) -> AsyncIterator[str]:
    """The server behind a link of ``rtt`` seconds (``None``: loopback); ``windows`` gets the
    upload's read window (chunks) per chunk."""
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(sio, initial_credit=DEFAULT_INITIAL_CREDIT)  # the offer our client takes
    runner, url = await start_server(sio)
    tasks: set[asyncio.Task[Any]] = set()

    @streams.on("upload")
    async def upload(sid: str, stream: IOStream) -> int:
        size = 0
        async for chunk in stream:
            size += len(chunk)
            window = stream._core.window  # the core's read window: what the client may send
            windows.append(window.size if window is not None else 0)
        return size

    async def produce(stream: IOStream, size: int) -> None:
        block = bytes(256 * 1024)
        for _ in range(size // len(block)):
            await stream.write(block)
        await stream.end()

    @streams.on("download")
    async def download(sid: str, size: int) -> IOStream:
        stream = create_stream()
        task = asyncio.ensure_future(produce(stream, size))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return stream

    try:
        if rtt is None:
            yield url
        else:
            async with Link(int(url.rsplit(":", 1)[1]), rtt=rtt) as link:
                yield link.url
    finally:
        for task in list(tasks):
            task.cancel()
        await sio.shutdown()
        await runner.cleanup()


async def run_client(tools: NodeTools, config: dict[str, Any]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        tools.node,
        str(SCRIPT),
        json.dumps(config),
        cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert out, f"the node client printed nothing ({proc.returncode}): {err.decode()[-4000:]}"
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


async def test_both_read_windows_grow_on_a_long_link(node_tools: NodeTools) -> None:
    size = 32 * MiB
    windows: list[int] = []
    async with serving(windows) as url:
        # The client offers no initial credit: its download's window must grow from 8 chunks.
        result = await run_client(node_tools, {"url": url, "up": size, "down": size, "initialCredit": 0})
    assert "error" not in result, result["error"]
    assert (result["sent"], result["received"]) == (size, size)
    assert result["initialWindow"] == WINDOW
    # The server's window for our upload started at the initial credit it offered, which our
    # client took (negotiated initial-credit), and grew.
    assert windows and windows[0] == DEFAULT_INITIAL_CREDIT // DEFAULT_MAX_CHUNK, windows[:10]
    assert max(windows) > windows[0], max(windows)
    # Our reader's window for the download grew too.
    assert result["readWindow"] > WINDOW, result


async def test_the_client_window_stays_small_when_data_comes_slower_than_the_round_trip(
    node_tools: NodeTools,
) -> None:
    """The server sends as fast as the client's credit allows, but the client's clock moves 10 ms
    per chunk that arrives and never otherwise: a writer (or link) that delivers one chunk every
    10 ms with no delay. The reader always waits for data with credit out, which doubled the old
    window up to 64 chunks; a window now grows only while it drains in under two round trips,
    and the round trip the credit loop sees includes that pace. The first window may grow once
    (its sample is the whole first grant), a later one once more if a chunk was already waiting
    when it began; 64 would need half of a 32-chunk window waiting unread."""
    size = 24 * MiB  # 96 chunks of 256 KiB: enough windows for the old rule to reach 64
    async with serving([], rtt=None) as url:
        config = {"url": url, "up": 0, "down": size, "paceMs": 10, "initialCredit": 0}
        result = await run_client(node_tools, config)
    assert "error" not in result, result["error"]
    assert result["received"] == size
    assert result["initialWindow"] == WINDOW
    assert result["readWindow"] <= 4 * WINDOW, result
