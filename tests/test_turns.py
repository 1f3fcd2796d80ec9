"""Streams that wait for the connection window take it in turns (sio_stream.core._turns): whole
debts per read and full chunks while the window turns, and the rule of the floors again once
stall checks find it held by streams whose writers went quiet. Two cores back to back, then a
real connection for the drivers' stall checks."""

from __future__ import annotations

import asyncio

import pytest

from sio_stream import create_stream
from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._core import CoreConfig, StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair

CHUNK = 4096


def config(process: Budget) -> CoreConfig:
    # Floors of 1 KiB (a quarter chunk), a connection window of 4 chunks.
    return CoreConfig(
        window=4,
        max_chunk=CHUNK,
        connection_window=4 * CHUNK,
        max_buffered=64 * 1024,
        max_streams=32,
        process_budget=process,
        idle_timeout=None,
    )


def round_trip(pair: CorePair) -> list[tuple[str, tuple]]:
    """Everything in flight crosses once each way; returns the reader's reads and the
    writer's writes that crossed (event, args)."""
    crossed = []
    for core in (pair.b, pair.a):
        while pair.send(core):
            pass
        crossed += [(o.event, o.args) for o in pair.wires[id(core)] if getattr(o, "event", None)]
        while pair.deliver(core):
            pass
    return crossed


def drain(pair: CorePair, reader: StreamCore) -> int:
    got = 0
    while reader.inbox:
        got += len(pair.b.take(reader, 1 << 30))
    return got


def open_uploads(pair: CorePair, count: int, size: int) -> list[StreamCore]:
    readers = []
    for _ in range(count):
        writer = StreamCore(StreamOptions())
        reader = pair.open_stream(pair.a, writer)
        pair.b.start_reading(reader)
        if size:
            pair.a.write(writer, b"t" * size)
            pair.a.end(writer)
        readers.append(reader)
    return readers


def test_streams_beyond_the_connection_window_take_turns_with_whole_debts():
    """20 streams behind a window of 4 chunks: after each stream's first (floor) chunk, every
    chunk is full and most reads grant a stream's whole debt (it was one read per chunk, with a
    floor-sized chunk each time the pool ran out of room for one more stream's credit)."""
    process = Budget(1 << 30)
    pair = CorePair(config(process), config(process))
    readers = open_uploads(pair, 20, 16 * CHUNK)
    sizes: list[int] = []
    counts: list[int] = []
    for _ in range(1000):
        for event, args in round_trip(pair):
            if event == wire.WRITE:
                sizes.append(len(args[1]))
            elif event == wire.READ:
                counts.append(args[2])
        for reader in readers:
            drain(pair, reader)
        if all(r.readable_ended for r in readers):
            break
    assert all(r.readable_ended for r in readers)
    floor = pair.b.budget.floor
    assert floor < CHUNK
    assert sizes.count(floor) <= 20, sorted(set(sizes))  # each stream's first credit only
    assert sum(sizes) == 20 * 16 * CHUNK
    # One read per turn: whole debts (2 credits, half the connection window), not one each.
    pooled_reads = counts[20:]
    assert sum(1 for c in pooled_reads if c >= 2) * 2 >= len(pooled_reads), counts


def test_a_window_held_by_quiet_writers_stalls_and_floors_pay_again():
    """Two streams read one chunk each, then their writers go quiet holding the whole window.
    A third stream waits for its turn while that credit may come back; a stall check that finds
    nothing consumed since the last one pays it as before, and it finishes."""
    process = Budget(1 << 30)
    pair = CorePair(config(process), config(process))
    quiet_writers = [StreamCore(StreamOptions()) for _ in range(2)]
    quiet = [pair.open_stream(pair.a, w) for w in quiet_writers]
    for writer, reader in zip(quiet_writers, quiet, strict=True):
        pair.b.start_reading(reader)
        pair.a.write(writer, b"q" * 1024)
    for _ in range(3):
        round_trip(pair)
        for reader in quiet:
            drain(pair, reader)
    assert pair.b.budget.grantable() < CHUNK  # the quiet streams hold the window
    (busy,) = open_uploads(pair, 1, 64 * CHUNK)
    got = 0
    for _ in range(10):
        round_trip(pair)
        got += drain(pair, busy)
    assert 0 < got < 64 * CHUNK  # its floor's chunk, then it waits for its turn
    assert pair.b.turns.waiting and not pair.b.turns.stalled
    waited = got
    for _ in range(10):
        round_trip(pair)
        got += drain(pair, busy)
    assert got == waited  # nothing comes back: the window does not turn
    # The driver's timer: the first check may see the floor's chunk consumed since the wait
    # began; the next finds nothing consumed since the previous one.
    assert pair.b.check_turns() and pair.b.check_turns()
    assert pair.b.turns.stalled
    for _ in range(1000):
        round_trip(pair)
        got += drain(pair, busy)
        if busy.readable_ended:
            break
    assert got == 64 * CHUNK and busy.readable_ended


@pytest.mark.anyio
async def test_a_stream_moves_beside_quiet_writers_that_hold_the_window(pair):
    """The same over a real connection: the asyncio driver's stall checks (every STALL_CHECK
    seconds while debts wait) let an upload finish beside streams whose writers went quiet
    after one chunk, holding the whole connection window. Progress, not speed, is asserted."""
    held: list[object] = []
    first = asyncio.Event()

    @pair.server_streams.on("quiet")
    async def quiet(sid, stream):
        held.append(stream)
        await stream.receive()  # one chunk; then the reader keeps reading, the writer is quiet
        first.set()
        await stream.receive()

    @pair.server_streams.on("upload")
    async def upload(sid, stream):
        return len(await stream.read())

    writers = []
    for _ in range(8):
        writer = create_stream()
        writers.append(writer)
        await pair.client_streams.emit("quiet", writer)
        await writer.write(b"q" * 1024)
    await asyncio.wait_for(first.wait(), 30)
    stream = create_stream()
    answer = asyncio.ensure_future(pair.client_streams.call("upload", stream, timeout=None))
    data = b"u" * (8 << 20)
    await stream.write(data)
    await stream.end()
    assert await asyncio.wait_for(answer, 60) == len(data)
    for writer in writers:
        await writer.end()
