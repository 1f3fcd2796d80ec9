"""The link emulator (``benchmarks/link.py``): it bounds the rate, adds the delay, bounds its
queue and pushes back on the sender, cuts connections and accepts new ones; and sio_stream
uploads cross a long link intact, before and after a cut that python-socketio recovers from.

Times are asserted as lower bounds only: a busy machine makes a link slower, never faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

import sio_stream
from benchmarks import tcpbulk
from benchmarks.link import READ_SIZE, Link, parse_duration, parse_size
from sio_stream import IOStream, create_stream
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
#: Slack for the clocks (perf_counter in the test, the loop's monotonic clock in the link).
CLOCK_SLACK = 0.002


@pytest.fixture
async def tcp_port() -> AsyncIterator[int]:
    """The raw TCP peer of the benchmarks (UP / DOWN / ECHO), in this process."""
    server = await tcpbulk.serve()
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_the_link_bounds_the_rate(tcp_port: int) -> None:
    rate, size = 40e6, 4 * MiB  # 0.1 s at the rate
    async with Link(tcp_port, rate=rate) as link:
        assert await tcpbulk.upload("127.0.0.1", link.port, size) >= size / rate - CLOCK_SLACK
        assert await tcpbulk.download("127.0.0.1", link.port, size) >= size / rate - CLOCK_SLACK
        # Connections share the link's rate, as on one physical link: two at once take twice as long.
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(tcpbulk.upload("127.0.0.1", link.port, size) for _ in range(2)))
        assert loop.time() - start >= 2 * size / rate - CLOCK_SLACK
        stats = link.statistics()
        assert stats.up.delivered >= 3 * size and stats.down.delivered >= size
        assert stats.accepted == 4 and stats.up.dropped == stats.down.dropped == 0


async def test_the_link_adds_its_round_trip_time(tcp_port: int) -> None:
    async with Link(tcp_port, rtt=0.04) as link:
        rtts = await tcpbulk.ping("127.0.0.1", link.port, 5)
    assert min(rtts) >= 0.04 - CLOCK_SLACK, rtts


async def test_rate_and_delay_add_up(tcp_port: int) -> None:
    # The last byte of an upload is serialized at size / rate and arrives half an RTT later; the
    # server's answer takes the other half.
    rate, rtt, size = 40e6, 0.04, 2 * MiB
    async with Link(tcp_port, rate=rate, rtt=rtt) as link:
        assert await tcpbulk.upload("127.0.0.1", link.port, size) >= size / rate + rtt - CLOCK_SLACK
        stats = link.statistics().up
    # The queue (one bandwidth-delay product) holds what waits; the wire holds rate x delay.
    assert link.queue == int(rate * rtt)
    assert stats.peak_queued <= link.queue + READ_SIZE
    assert stats.peak_held <= link.queue + rate * rtt / 2 + 2 * READ_SIZE


async def test_the_queue_is_bounded_and_reads_pause_while_it_is_full(tcp_port: int) -> None:
    # A slow link and a fast sender: the link reads only what fits in its queue.
    rate, queue, size = 4e6, 128 * 1024, 2 * MiB
    async with Link(tcp_port, rate=rate, queue=queue) as link:
        upload = asyncio.ensure_future(tcpbulk.upload("127.0.0.1", link.port, size))
        await wait_for(lambda: link.statistics().up.paused == 1)  # full: the sender is not read
        assert await asyncio.wait_for(upload, 60) >= size / rate - CLOCK_SLACK
        stats = link.statistics()
    assert stats.up.peak_queued <= queue + READ_SIZE
    assert stats.up.peak_queued >= queue // 2  # the bound was reached, not just respected
    assert stats.up.peak_held <= queue + READ_SIZE  # no delay: nothing stays on the wire


async def test_a_receiver_that_does_not_read_pushes_back_to_the_sender() -> None:
    # Far more than every buffer on the way holds (the sender's socket, the proxy's, the link's).
    size = 16 * MiB
    payload = os.urandom(size)
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    queue = 256 * 1024
    try:
        async with Link(server.sockets[0].getsockname()[1], rtt=0.01, queue=queue) as link:
            _, writer = await asyncio.open_connection("127.0.0.1", link.port)

            async def send() -> None:
                for i in range(0, size, 256 * 1024):
                    writer.write(payload[i : i + 256 * 1024])
                    await writer.drain()
                writer.write_eof()

            sender = asyncio.ensure_future(send())
            receiver, receiver_writer = await asyncio.wait_for(accepted.get(), 20)
            # Nothing is read at the far end: the link stops forwarding, then stops reading the
            # sender, and the sender's own socket fills (its bytes wait in its transport).
            await wait_for(
                lambda: (
                    link.statistics().up.blocked == 1
                    and link.statistics().up.paused == 1
                    and writer.transport.get_write_buffer_size() > 0
                )
            )
            assert not sender.done()
            held = link.statistics().up
            assert held.queued + held.in_flight <= queue + READ_SIZE
            # The receiver reads: everything arrives, in order, and the sender finishes.
            received = await asyncio.wait_for(receiver.read(), 60)
            await asyncio.wait_for(sender, 20)
            assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
            assert link.statistics().up.peak_held <= queue + READ_SIZE
            writer.close()
            receiver_writer.close()
    finally:
        server.close()


async def test_a_cut_aborts_open_connections_and_new_ones_go_through(tcp_port: int) -> None:
    async with Link(tcp_port, rtt=0.01) as link:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        writer.write(b"ECHO\nhello")
        assert await asyncio.wait_for(reader.readexactly(5), 20) == b"hello"
        assert link.cut() == 1
        # An RST (SO_LINGER 0), not an orderly end of stream.
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 20)
        writer.close()
        assert (await tcpbulk.ping("127.0.0.1", link.port, 2))[0] >= 0.01 - CLOCK_SLACK
        stats = link.statistics()
        assert stats.cuts == 1 and stats.accepted == 2


async def test_a_link_that_cuts_periodically(tcp_port: int) -> None:
    async with Link(tcp_port, cut_every=0.1) as link:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        writer.write(b"ECHO\n")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 20)
        writer.close()
        assert link.statistics().cuts >= 1
        # It keeps listening: a new connection works (a cut may land mid-ping: try again).
        for _ in range(50):
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await tcpbulk.ping("127.0.0.1", link.port, 1)
                break
        else:
            raise AssertionError("no connection got through between cuts")


def test_the_command_line_units() -> None:
    assert parse_size("100M") == 100e6
    assert parse_size("100MB/s") == 100e6
    assert parse_size("64Ki") == 65536
    assert parse_size("inf") == float("inf")
    assert parse_duration("50ms") == 0.05
    assert parse_duration("0.15s") == 0.15
    assert parse_duration("20") == 0.02


async def test_sio_stream_uploads_cross_a_long_link_and_survive_a_cut() -> None:
    server = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(server)
    sids: list[str] = []

    @server.on("connect")
    async def connect(sid: str, environ: Any, auth: Any = None) -> None:
        sids.append(sid)

    @streams.on("upload")
    async def upload(sid: str, stream: IOStream) -> dict[str, Any]:
        digest, size = hashlib.sha256(), 0
        async for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
        return {"size": size, "sha256": digest.hexdigest()}

    runner, url = await start_server(server)
    client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.05, reconnection_delay_max=0.2)
    client_streams = sio_stream.ss(client)

    async def send(data: bytes) -> dict[str, Any]:
        stream = create_stream()
        reply = asyncio.ensure_future(client_streams.call("upload", stream, timeout=None))
        for i in range(0, len(data), 256 * 1024):
            await stream.write(data[i : i + 256 * 1024])
        await stream.end()
        return await asyncio.wait_for(reply, 60)

    try:
        async with Link(int(url.rsplit(":", 1)[1]), rate=100e6, rtt=0.03) as link:
            await client.connect(link.url, transports=["websocket"])
            await wait_for(lambda: len(sids) == 1)
            data = os.urandom(3 * MiB)
            assert await send(data) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

            assert link.cut() == 1
            # python-socketio sees its transport die and reconnects through the link.
            await wait_for(lambda: len(sids) == 2 and client.connected and "/" in client.namespaces)
            data = os.urandom(2 * MiB)
            assert await send(data) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            assert link.statistics().accepted == 2
            await client.disconnect()
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
        await server.shutdown()
        await runner.cleanup()
