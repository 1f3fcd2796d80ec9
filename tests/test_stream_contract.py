"""The IOStream contract (anyio ByteStream meanings), run against every way a stream is made."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from sio_stream import (
    InvalidChunkError,
    IOStream,
    StreamBusyError,
    StreamClosedError,
    StreamEnded,
    StreamError,
    create_stream,
)
from sio_stream.core._config import DEFAULT_INITIAL_CREDIT

pytestmark = pytest.mark.anyio

KINDS = ["client-to-server", "server-to-client", "returned-by-ack", "requested-by-server"]


@pytest.fixture(params=KINDS)
async def streams(request, pair) -> tuple[IOStream, IOStream]:
    """(writer, reader) of one stream, made the way the parameter says."""
    kind = request.param
    received: asyncio.Future = asyncio.get_running_loop().create_future()

    @pair.server_streams.on("give")
    async def give(sid, stream):
        received.set_result(stream)

    @pair.client_streams.on("give")
    async def client_give(stream):
        received.set_result(stream)

    @pair.server_streams.on("make")
    async def make(sid):
        stream = create_stream()
        received.set_result(stream)
        return stream

    @pair.client_streams.on("make")
    async def client_make():
        stream = create_stream()
        received.set_result(stream)
        return stream

    if kind == "client-to-server":
        writer = create_stream()
        await pair.client_streams.emit("give", writer)
        return writer, await asyncio.wait_for(received, 30)
    if kind == "server-to-client":
        writer = create_stream()
        await pair.server_streams.emit("give", writer, to=pair.sid)
        return writer, await asyncio.wait_for(received, 30)
    if kind == "returned-by-ack":
        reader = await pair.client_streams.call("make")
        return await asyncio.wait_for(received, 30), reader
    reader = await pair.server_streams.call("make", to=pair.sid)
    return await asyncio.wait_for(received, 30), reader


async def test_data_then_end_of_stream(streams):
    writer, reader = streams
    assert isinstance(writer, anyio.abc.ByteStream) and writer.id == reader.id
    await writer.send(b"hello ")
    await writer.write(bytearray(b"world"))
    end = asyncio.ensure_future(writer.end())
    assert await reader.receive(3) == b"hel"
    assert await reader.read() == b"lo world"
    with pytest.raises(StreamEnded):
        await reader.receive()
    with pytest.raises(anyio.EndOfStream):
        await reader.receive()
    assert await reader.read(10) == b""
    await asyncio.wait_for(end, 30)
    with pytest.raises(anyio.ClosedResourceError):
        await writer.send(b"after end")
    await writer.end()  # ending twice is a no-op


async def test_destroy_fails_both_sides(streams):
    writer, reader = streams
    await writer.send(b"x")
    reader.destroy(ValueError("reader gave up"))
    with pytest.raises(StreamClosedError) as info:
        await reader.receive()
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(anyio.BrokenResourceError) as broken:
        for _ in range(10_000):
            await writer.send(b"y" * 100_000)
    assert isinstance(broken.value, StreamError) and broken.value.remote
    assert broken.value.message == "reader gave up"


async def test_concurrent_readers_are_refused(streams):
    writer, reader = streams
    first = asyncio.ensure_future(reader.receive())
    await asyncio.sleep(0)  # let the first reader start waiting (not a synchronisation wait)
    with pytest.raises(StreamBusyError):
        await reader.receive()
    end = asyncio.ensure_future(writer.end(b"data"))
    assert await asyncio.wait_for(first, 30) == b"data"
    await asyncio.wait_for(end, 30)


async def test_cancelled_receive_loses_nothing(streams):
    writer, reader = streams
    with anyio.move_on_after(0.05):
        await reader.receive()
    end = asyncio.ensure_future(writer.end(b"kept"))
    assert await reader.read() == b"kept"
    await asyncio.wait_for(end, 30)


async def test_wrong_data_is_a_typed_error_and_queues_nothing(streams):
    writer, reader = streams
    with pytest.raises(InvalidChunkError):
        await writer.send(12345)
    # end() returns once the reader has taken (and acknowledged) everything: run it beside.
    end = asyncio.ensure_future(writer.end(b"ok"))
    assert await reader.read() == b"ok"
    await asyncio.wait_for(end, 30)


async def test_writer_waits_at_the_high_water_mark_until_the_reader_reads(streams):
    writer, reader = streams
    # Beyond what the reader's initial credit (negotiated initial-credit) lets it send unread.
    blob = b"b" * (5 * 1024 * 1024 + DEFAULT_INITIAL_CREDIT)
    sent = asyncio.ensure_future(writer.send(blob))
    with anyio.move_on_after(0.3):
        await asyncio.shield(sent)
    assert not sent.done(), "5 MiB beyond the initial credit cannot be accepted while nobody reads"
    received = 0
    while received < len(blob):
        received += len(await reader.receive(1 << 20))
    await asyncio.wait_for(sent, 30)
    await writer.end()


async def test_async_context_manager_ends_the_writer(streams):
    writer, reader = streams

    async def use() -> None:
        async with writer:
            await writer.send(b"in a with block")

    closing = asyncio.ensure_future(use())
    assert await reader.read() == b"in a with block"
    await asyncio.wait_for(closing, 30)
    assert writer.closed


async def test_aclose_of_an_unfinished_reader_stops_the_writer(streams):
    writer, reader = streams
    await writer.send(b"first")
    assert await reader.receive() == b"first"
    await reader.aclose()
    with pytest.raises(anyio.BrokenResourceError):
        for _ in range(10_000):
            await writer.send(b"z" * 100_000)


async def test_object_mode_rejects_none_and_bytes_mode_rejects_objects():
    objects = create_stream(object_mode=True)
    with pytest.raises(InvalidChunkError):
        await objects.send(None)
    data = create_stream()
    with pytest.raises(InvalidChunkError):
        await data.send({"a": 1})
