"""Limits on what a peer can make one connection hold: each fails the offending stream or
event with a ``$stream-error``, never the connection."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import socketio

import sio_stream
from sio_stream import InvalidOptionError, RemoteProtocolError, StreamBrokenError, create_stream
from sio_stream.core import _wire as wire
from sio_stream.core._core import CoreConfig, Outgoing, ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair
from tests.support import start_server, wait_for
from tests.test_hostile import Arena, arena  # noqa: F401 (the fixture)

errors_of = lambda core: [o.args for o in core.outbox if isinstance(o, Outgoing) and o.event == wire.ERROR]  # noqa: E731


def test_defaults_are_documented_values():
    config = CoreConfig()
    assert (config.max_streams, config.max_read_chunk, config.max_placeholders) == (1000, 1024 * 1024, 100)


def test_max_streams_refuses_the_placeholder_beyond_it():
    core = ProtocolCore(CoreConfig(max_streams=2))
    first, second = (core.decode_placeholder(f"s{i}", None) for i in range(2))
    third = core.decode_placeholder("s2", None)
    assert isinstance(third.error, RemoteProtocolError) and "too many streams" in third.error.message
    assert set(core.streams) == {"s0", "s1"} and first.error is None and second.error is None
    assert errors_of(core) == [("s2", "too many streams on this connection (limit 2)")]
    # A slot freed is a slot usable again.
    core.fail(first, RemoteProtocolError("done"))
    assert core.decode_placeholder("s3", None).error is None


def test_max_read_chunk_fails_only_that_stream():
    core = ProtocolCore(CoreConfig(max_read_chunk=10))
    big, small = core.decode_placeholder("big", None), core.decode_placeholder("small", None)
    for stream in (big, small):
        core.start_reading(stream)
    answer = core.receive_write("big", b"x" * 11, "buffer")
    assert answer is not None and "exceeds the limit of 10 bytes" in answer
    assert big.error is not None and "big" not in core.streams
    assert core.receive_write("small", b"x" * 10, "buffer") is None
    assert small.inbox.size == 10  # type: ignore[union-attr]
    # Base64 text is measured decoded.
    assert core.receive_write("small", "eHh4eHh4eHh4eHg=", "base64") is not None


def test_limits_must_be_positive_integers():
    for name in ("max_streams", "max_read_chunk", "max_placeholders"):
        with pytest.raises(InvalidOptionError, match=name):
            sio_stream.ss(socketio.AsyncServer(async_mode="aiohttp"), **{name: 0})


@pytest.mark.anyio
async def test_too_many_placeholders_in_one_event_refuses_every_stream(arena: Arena) -> None:  # noqa: F811
    raw = arena.raw
    ids = [str(uuid.uuid4()) for _ in range(150)]
    await raw.send("$stream", "upload", [{"$stream": i} for i in ids])
    for stream_id in ids:
        assert "more than 100 streams in one event" in await raw.wait_error(stream_id)
    assert arena.stream_count() == 0
    await arena.honest_roundtrip()


@pytest.mark.anyio
async def test_too_many_streams_on_one_connection(arena: Arena) -> None:  # noqa: F811
    raw = arena.raw
    ids = [str(uuid.uuid4()) for _ in range(1005)]
    for start in range(0, len(ids), 100):
        await raw.send("$stream", "upload", *({"$stream": i} for i in ids[start : start + 100]))
    for stream_id in ids[1000:]:
        assert "too many streams on this connection" in await raw.wait_error(stream_id)
    await wait_for(lambda: arena.streams().stream_count() == 1000)
    # The connection still works, and the honest client is unaffected.
    await arena.honest_roundtrip()
    await raw.send("$stream-end", ids[0])
    await wait_for(lambda: arena.streams().stream_count() == 999)


def test_credit_is_granted_only_as_far_as_the_connection_budget_allows():
    # max_streams=3: the floors (500 / 2 / 3 = 83 bytes each, a chunk's worth) keep every stream
    # moving however much credit the others hold unused.
    reader_config = CoreConfig(window=4, max_chunk=100, max_buffered=500, max_streams=3)
    pair = CorePair(CoreConfig(max_chunk=100), reader_config)
    writers = [StreamCore(StreamOptions()) for _ in range(3)]
    readers = [pair.open_stream(pair.a, w) for w in writers]
    for reader in readers:
        pair.b.start_reading(reader)
    pair.flush()
    # Each window opens with one credit of 100 bytes (read-size) and grows only as its reader
    # consumes, as far as the 500 bytes allow: the loop below checks the bound at every step.
    assert [r.window.outstanding for r in readers] == [1, 1, 1]  # type: ignore[union-attr]
    for writer in writers:
        pair.a.write(writer, b"x" * 200)
    pair.flush()
    assert all(r.error is None for r in readers) and pair.b.budget.used <= 500
    received = [bytearray() for _ in readers]
    while any(r.inbox for r in readers):
        for got, reader in zip(received, readers, strict=True):
            while reader.inbox:
                got += pair.b.take(reader, 1000)
        pair.flush()
        assert pair.b.budget.used <= 500
    assert [bytes(g) for g in received] == [b"x" * 200] * 3
    assert all(r.error is None and w.error is None for r, w in zip(readers, writers, strict=True))


def test_a_chunk_beyond_its_reservation_that_does_not_fit_fails_only_its_stream():
    # No hello: the writer promises no chunk size; each stream's first credit reserves its
    # floor (61 bytes here), and a larger chunk must fit in the free room when it arrives.
    pair = CorePair(CoreConfig(), CoreConfig(window=2, max_buffered=120 * 1024), hello=False)
    writers = [StreamCore(StreamOptions()) for _ in range(2)]
    readers = [pair.open_stream(pair.a, w) for w in writers]
    for reader in readers:
        pair.b.start_reading(reader)
    pair.flush()
    assert [r.window.outstanding for r in readers] == [1, 1]  # type: ignore[union-attr]
    pair.a.write(writers[0], b"x" * 150 * 1024)  # over the whole budget: does not fit
    pair.flush()
    assert isinstance(readers[0].error, RemoteProtocolError) and "memory budget" in readers[0].error.message
    assert isinstance(writers[0].error, StreamBrokenError)
    assert readers[1].error is None and pair.b.budget.held == 0
    # Fits in the free room beside the other streams' floors (the shared pool, ~60 KiB here:
    # half the budget is floors): accepted.
    pair.a.write(writers[1], b"y" * 48 * 1024)
    pair.flush()
    assert readers[1].error is None and pair.b.take(readers[1], 1 << 20) == b"y" * 48 * 1024


@pytest.mark.anyio
async def test_an_abandoned_stream_fails_after_the_idle_timeout_and_a_busy_one_does_not():
    server = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(server, idle_timeout=1.0)
    held: list[sio_stream.IOStream] = []

    @streams.on("ignore")
    async def ignore(sid, stream):
        held.append(stream)  # never read: its writer blocks, nothing moves

    @streams.on("trickle")
    async def trickle(sid, stream):
        return len(await stream.read())

    runner, url = await start_server(server)
    client = socketio.AsyncClient()
    client_streams = sio_stream.ss(client, idle_timeout=1.0)
    try:
        await client.connect(url, transports=["websocket"])
        ignored = create_stream()
        await client_streams.emit("ignore", ignored)
        busy = create_stream()
        call = asyncio.ensure_future(client_streams.call("trickle", busy))
        for _ in range(15):  # 1.5 s of small writes, each well within the idle timeout
            await busy.write(b"t")
            await asyncio.sleep(0.1)
        await busy.end()
        assert await asyncio.wait_for(call, 30) == 15
        with pytest.raises(StreamBrokenError, match="idle"):
            await asyncio.wait_for(ignored.end(b"x" * 10), 30)
        await wait_for(lambda: bool(held) and held[0].error is not None)
        await wait_for(lambda: streams.stream_count() == 0)
    finally:
        await client.disconnect()
        await server.shutdown()
        await runner.cleanup()


def test_read_size_a_sio_stream_writer_keeps_chunks_within_the_readers_read_size():
    pair = CorePair(CoreConfig(max_chunk=1000), CoreConfig(max_chunk=100))
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.flush()
    # Exactly 100 bytes reserved per credit, and the writer keeps to it.
    assert pair.b.budget.reserved == 100 * reader.window.outstanding  # type: ignore[union-attr]
    pair.a.write(writer, b"z" * 450)
    pair.flush()
    sizes = []
    while reader.inbox:
        assert pair.b.budget.reserved == 100 * reader.window.outstanding  # type: ignore[union-attr]
        sizes.append(len(pair.b.take(reader, 1000)))
        pair.flush()
    assert sizes == [100, 100, 100, 100, 50]


def test_an_object_stream_gets_a_few_credits_until_its_first_object_shows_their_size():
    pair = CorePair(CoreConfig(), CoreConfig(object_window=128))
    writer = StreamCore(StreamOptions.create(object_mode=True))
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.flush()
    assert reader.window is not None and reader.window.outstanding == 8
    pair.a.write(writer, {"n": 1})
    pair.flush()
    # The rest of the opening window (the objects of 1 KiB its floor holds), now that sizes are
    # known; it grows to 128 as objects are consumed.
    assert reader.window.outstanding == 31
    assert pair.b.budget.held == len('{"n":1}')
