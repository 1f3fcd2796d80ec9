"""Streams that wait for the connection window take it in turns (sio_stream.core._turns): whole
debts per read and full chunks while the window turns, each turn sized to what the writer has
left (negotiated final-size), and the rule of the floors again once stall checks find the window
held by streams whose writers went quiet. Two cores back to back, then a real connection for the
drivers' stall checks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sio_stream import RemoteProtocolError, create_stream
from sio_stream.core import _core as core_module
from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._config import FEATURE_FINAL_SIZE, LEFT_KEY, OUR_FEATURES
from sio_stream.core._core import CoreConfig, StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair

CHUNK = 4096


def config(process: Budget, features: frozenset[str] = OUR_FEATURES) -> CoreConfig:
    # Floors of 1 KiB (a quarter chunk), a connection window of 4 chunks.
    return CoreConfig(
        window=4,
        max_chunk=CHUNK,
        connection_window=4 * CHUNK,
        max_buffered=64 * 1024,
        max_streams=32,
        process_budget=process,
        idle_timeout=None,
        features=features,
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


def rounds_to_the_end(
    pair: CorePair, readers: list[StreamCore], most: int
) -> Iterator[list[tuple[str, tuple]]]:
    """Round trips until every reader ended (at most ``most``): yields each one's crossed
    packets (see :func:`round_trip`), then drains the readers, each waiting for data again."""
    for _ in range(most):
        yield round_trip(pair)
        for reader in readers:
            if drain(pair, reader) and not reader.readable_ended:
                pair.b.start_reading(reader)  # the reader waits for data again
        if all(r.readable_ended for r in readers):
            return
    raise AssertionError("the streams never ended")


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
    sizes, counts, _ = run_to_end(pair, readers)  # raises if the streams never end
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


def run_to_end(
    pair: CorePair, readers: list[StreamCore], rounds: int = 1000
) -> tuple[list[int], list[int], int]:
    """Round trips until every reader ended: the sizes of the chunks, the counts of the reads,
    and the round trips it took."""
    sizes: list[int] = []
    counts: list[int] = []
    for trip in range(1, rounds + 1):
        for event, args in round_trip(pair):
            if event == wire.WRITE:
                sizes.append(len(args[1]))
            elif event == wire.READ:
                counts.append(args[2])
        for reader in readers:
            drain(pair, reader)
        if all(r.readable_ended for r in readers):
            return sizes, counts, trip
    raise AssertionError("the streams never ended")


@pytest.mark.parametrize("final_size", [True, False])
def test_small_ended_streams_get_their_credit_at_once(final_size):
    """30 streams of one floor's chunk and a quarter more, started together and ended at once:
    after their floors' chunks, each turn asks for what is left (a quarter chunk), so all of
    them fit in the window in the next round trip. Without final-size (a writer that does not
    say what is left) the reader pays as before: one credit each, outside the window."""
    process = Budget(1 << 30)
    features = OUR_FEATURES if final_size else OUR_FEATURES - {FEATURE_FINAL_SIZE}
    pair = CorePair(config(process, features), config(process, features))
    floor = pair.b.budget.floor
    readers = open_uploads(pair, 30, floor + floor // 4)
    sizes, _, trips = run_to_end(pair, readers)
    assert sizes.count(floor) == 30 and sizes.count(floor // 4) == 30
    # The event's round trip, the floors' chunks, the rest and the ends: no stream waits for
    # another's turn (a turn of a whole window each let two through per round trip).
    assert trips <= 4, trips
    if final_size:
        # What was granted for the rest is what was left, not windows of chunks.
        assert pair.b.budget.statistics().reserved <= 30 * 4 * floor // 4


def test_a_stream_with_a_little_left_reserves_that_little():
    """Once its writer ended, a stream's credit is sized to what is left (rounded up to 1 KiB):
    the read asks for it, and the reservation follows."""
    process = Budget(1 << 30)
    pair = CorePair(config(process), config(process))
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.a.write(writer, b"w" * (pair.b.budget.floor + 3000))
    pair.a.end(writer)
    crossed = round_trip(pair)  # the floor's read, then its chunk: 3,000 bytes left
    (write,) = [args for event, args in crossed if event == wire.WRITE]
    assert write[3] == {LEFT_KEY: 3000}
    drain(pair, reader)
    assert reader.holding is not None
    reserved = reader.holding.reserved  # the credit granted back as the chunk was consumed
    reads = [args for event, args in round_trip(pair) if event == wire.READ]
    assert reads and reads[-1][1] == 3072, reads  # 3,000 rounded up to 1 KiB, not a chunk
    assert reserved == 3072 * reads[-1][2] < 4 * CHUNK  # credits of 3 KiB, not of a chunk
    assert reader.readable_ended or drain(pair, reader) == 3000


def test_no_left_before_the_end_nor_toward_a_peer_that_did_not_announce_it():
    process = Budget(1 << 30)
    for features, ended, expected in (
        (OUR_FEATURES, False, 3),
        (OUR_FEATURES - {FEATURE_FINAL_SIZE}, True, 3),
        (OUR_FEATURES, True, 4),
    ):
        pair = CorePair(config(process), config(process, features))
        writer = StreamCore(StreamOptions())
        reader = pair.open_stream(pair.a, writer)
        pair.b.start_reading(reader)
        pair.a.write(writer, b"w" * 100)
        if ended:
            pair.a.end(writer)
        writes = [args for event, args in round_trip(pair) if event == wire.WRITE]
        assert [len(args) for args in writes] == [expected], (features - OUR_FEATURES, ended)


@pytest.mark.parametrize("left", [-1, "12", 1.5, True, None, [3]])
def test_a_bad_left_count_fails_its_stream(left):
    """A peer's ``left`` that is not a non-negative integer fails that stream (the connection
    and its other streams go on)."""
    process = Budget(1 << 30)
    pair = CorePair(config(process), config(process))
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    other_writer = StreamCore(StreamOptions())
    other = pair.open_stream(pair.a, other_writer)
    for stream in (reader, other):
        pair.b.start_reading(stream)
    pair.flush()
    answer = pair.b.receive_write(writer.id, b"x" * 10, "buffer", {LEFT_KEY: left})
    assert answer is not None and "bad left count" in answer
    assert isinstance(reader.error, RemoteProtocolError)
    assert other.error is None and not pair.b.closed


def test_an_absurd_left_count_changes_no_bound(monkeypatch):
    """Writers that say they have 2**62 bytes left get turns of at most their window, within the
    connection window and the budget, like any other, and finish."""
    monkeypatch.setattr(core_module, "with_left", lambda marker, left: {LEFT_KEY: 2**62})
    process = Budget(1 << 30)
    pair = CorePair(config(process), config(process))
    readers = open_uploads(pair, 6, 16 * CHUNK)
    budget = pair.b.budget
    for _ in range(1000):
        for event, args in round_trip(pair):
            if event == wire.READ:
                assert args[1] <= CHUNK and args[2] <= 4, args
            assert budget.pooled <= budget.window + pair.b.budget.floor * 6
            assert budget.held + budget.reserved <= budget.limit
        for reader in readers:
            drain(pair, reader)
        if all(r.readable_ended for r in readers):
            break
    assert all(r.readable_ended and r.error is None for r in readers)
    assert max(r.peer_left or 0 for r in readers) == 2**62
