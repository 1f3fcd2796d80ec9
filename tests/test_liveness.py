"""Progress over a real connection: streams that wait for data never keep others from flowing.

The second wave's connection window counted credit granted to quiet streams, so two echo
pairs nobody wrote to held all of it and a duplex stream opened after them never moved
(issue 20). These run the repro of the issue over a real AsyncServer and AsyncClient.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from sio_stream import IOStream, create_stream
from tests.support import wait_for

pytestmark = pytest.mark.anyio

TIMEOUT = 30  # generous: progress, not speed, is asserted


async def pump(source: IOStream, destination: IOStream) -> None:
    async for chunk in source:
        await destination.write(chunk)
    await destination.end()


@pytest.fixture
def echo_server(pair):
    """socket.io-stream's test server: ``echo`` pipes each stream into a new one sent back;
    ``sendBack`` pipes a duplex stream back into itself."""
    tasks: set[asyncio.Task] = set()

    def spawn(coro) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    @pair.server_streams.on("echo")
    async def echo(sid, sources):
        outs = [create_stream() for _ in sources]
        for src, dst in zip(sources, outs, strict=True):
            spawn(pump(src, dst))
        await pair.server_streams.emit("echo", outs, to=sid)

    @pair.server_streams.on("sendBack")
    async def send_back(sid, stream):
        spawn(pump(stream, stream))

    yield pair
    for task in tasks:
        task.cancel()


async def open_quiet_pairs(pair, count: int) -> tuple[list[IOStream], list[IOStream]]:
    """``count`` echo pairs nobody writes to: the client holds the write ends and the echoed
    read ends (reading, so their windows are open on both sides)."""
    echoed: asyncio.Future = asyncio.get_running_loop().create_future()

    @pair.client_streams.on("echo")
    async def on_echo(streams):
        echoed.set_result(streams)

    sources = [create_stream() for _ in range(count)]
    await pair.client_streams.emit("echo", sources)
    backs = await asyncio.wait_for(echoed, TIMEOUT)
    readers = [asyncio.ensure_future(back.read()) for back in backs]
    # Every window is open: each echoed stream's reader is waiting for data.
    await wait_for(lambda: pair.client_streams.statistics().credits >= count, TIMEOUT)
    return sources, [*backs, *readers]


@pytest.mark.parametrize("quiet", [2, 8])
async def test_a_duplex_stream_flows_beside_quiet_echo_pairs(echo_server, quiet):
    pair = echo_server
    async with asyncio.timeout(TIMEOUT):
        sources, held = await open_quiet_pairs(pair, quiet)
        duplex = create_stream(allow_half_open=True)
        await pair.client_streams.emit("sendBack", duplex)
        await duplex.write(b"foo")
        await duplex.write(b"bar")
        await duplex.end()
        assert await duplex.read() == b"foobar"
        # The quiet pairs still work afterwards.
        for source in sources:
            await source.end(b"late")
        for reader in held[quiet:]:
            assert await reader == b"late"


async def test_uploads_and_a_download_finish_beside_quiet_pairs(echo_server):
    pair = echo_server
    async with asyncio.timeout(TIMEOUT):
        sources, held = await open_quiet_pairs(pair, 20)
    received: dict[str, bytes] = {}

    @pair.server_streams.on("upload")
    async def upload(sid, stream, name):
        received[name] = await stream.read()
        return len(received[name])

    payload = os.urandom(3 * 1024 * 1024)

    @pair.server_streams.on("download")
    async def download(sid, stream):
        await stream.end(payload)

    async def one_upload(i: int) -> int:
        stream = create_stream()
        async with asyncio.TaskGroup() as group:
            reply = group.create_task(pair.client_streams.call("upload", stream, f"u{i}"))
            await stream.end(payload[: 256 * 1024 + i])
        return reply.result()

    async def one_download() -> bytes:
        stream = create_stream()
        await pair.client_streams.emit("download", stream)
        return await stream.read()

    async with asyncio.timeout(TIMEOUT):
        sizes = await asyncio.gather(*(one_upload(i) for i in range(10)))
        assert sizes == [256 * 1024 + i for i in range(10)]
        assert await one_download() == payload
        for source in sources:
            await source.end()
        assert await asyncio.gather(*held[20:]) == [b""] * 20
