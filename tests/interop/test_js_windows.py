"""Both read windows grow between the Python server and our JavaScript client (js/sio-stream.js,
in Node) on a long link (``benchmarks/link.py``, 100 ms round trip): the server's window for the
client's upload (the client announces ``window-growth`` and ``consumed``) and the client's own
window for a download (it doubles while data arrives slower than it is read). With the
configured 8 chunks alone, 2 MiB per round trip would be the limit (docs/benchmarks.md)."""

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
from tests.support import start_server

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
SCRIPT = NODE_DIR / "window_client.mjs"
#: Generous: two busy cores shared with other test runs.
TIMEOUT = 180.0
#: The configured window (chunks) that both sides start from.
WINDOW = 8


@contextlib.asynccontextmanager
async def serving(windows: list[int]) -> AsyncIterator[str]:
    """The server behind a 100 ms link; ``windows`` gets the upload's read window (chunks) per chunk."""
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(sio)
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
        async with Link(int(url.rsplit(":", 1)[1]), rtt=0.1) as link:
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
        result = await run_client(node_tools, {"url": url, "up": size, "down": size})
    assert "error" not in result, result["error"]
    assert (result["sent"], result["received"]) == (size, size)
    assert result["initialWindow"] == WINDOW
    # The server's window for our upload started at the configured 8 chunks and grew.
    assert windows and windows[0] <= WINDOW, windows[:10]
    assert max(windows) > WINDOW, max(windows)
    # Our reader's window for the download grew too.
    assert result["readWindow"] > WINDOW, result
