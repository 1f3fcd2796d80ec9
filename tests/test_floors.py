"""The floors and the shared pool (sio_stream.core._budget), in the cases a review of the
liveness change found wanting: each test failed before its fix. Two cores back to back."""

from __future__ import annotations

import gc
import random
from collections.abc import Callable

import pytest

from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._core import CoreConfig, StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair


def small(process: Budget, **settings) -> CoreConfig:
    base = dict(
        window=4,
        max_chunk=1024,
        max_read_chunk=4096,
        connection_window=4096,
        max_buffered=16 * 1024,
        max_streams=8,
        process_budget=process,
        idle_timeout=None,
    )
    return CoreConfig(**(base | settings))  # type: ignore[arg-type]


def round_trip(pair: CorePair) -> None:
    """Everything in flight crosses once each way: the reader's reads, then the chunks."""
    while pair.send(pair.b):
        pass
    while pair.deliver(pair.b):
        pass
    while pair.send(pair.a):
        pass
    while pair.deliver(pair.a):
        pass


def rounds_to_move(pair: CorePair, reader: StreamCore, total: int, step=round_trip) -> int:
    """Round trips (``step``) until ``reader`` took ``total`` bytes, checking the budget."""
    got = rounds = 0
    while got < total and rounds < 10_000:
        rounds += 1
        step(pair)
        got += drain(pair, reader)
        assert pair.b.budget.used <= pair.b.budget.limit
    assert got == total
    return rounds


def drain(pair: CorePair, reader: StreamCore) -> int:
    got = 0
    while reader.inbox:
        got += len(pair.b.take(reader, 1 << 30))
    return got


def test_quiet_streams_on_other_connections_leave_a_newcomer_its_credit():
    """Floors skip the fairness rule only within a connection's fair share of the process:
    three connections full of quiet uploads must not take the whole process account."""
    process = Budget(24 * 1024)
    quiet = []
    for _ in range(3):
        pair = CorePair(small(process), small(process))
        for _ in range(8):
            pair.b.start_reading(pair.open_stream(pair.a, StreamCore(StreamOptions())))
        pair.flush()
        quiet.append(pair)
    newcomer = CorePair(small(process), small(process))
    writer = StreamCore(StreamOptions())
    reader = newcomer.open_stream(newcomer.a, writer)
    newcomer.b.start_reading(reader)
    newcomer.a.write(writer, b"v" * 10_000)
    newcomer.a.end(writer)
    got = 0
    for _ in range(1000):
        newcomer.flush()
        got += drain(newcomer, reader)
        if reader.readable_ended:
            break
    assert got == 10_000 and reader.readable_ended
    assert process.used <= process.limit


def test_a_stalled_stream_that_never_read_does_not_hold_back_the_pool():
    """An object stream whose reader stalls before its first object keeps debt the pool never
    pays; the bulk stream behind it must still get full windows, not stop-and-wait floors."""

    def round_trips(with_stalled_objects: bool) -> int:
        process = Budget(1 << 30)
        pair = CorePair(
            CoreConfig(process_budget=process), CoreConfig(process_budget=process, idle_timeout=None)
        )
        if with_stalled_objects:
            objects = StreamCore(StreamOptions.create(object_mode=True))
            stalled = pair.open_stream(pair.a, objects)
            pair.b.start_reading(stalled)
            for i in range(40):
                pair.a.write(objects, {"i": i, "pad": "x" * 10_000})
            pair.flush()
            assert stalled.owed_credit > 0 and not stalled.window.proven  # type: ignore[union-attr]
        writer = StreamCore(StreamOptions())
        reader = pair.open_stream(pair.a, writer)
        pair.b.start_reading(reader)
        total = 8 * 1024 * 1024
        pair.a.write(writer, b"x" * total)
        return rounds_to_move(pair, reader, total, step=CorePair.flush)

    assert round_trips(True) <= 2 * round_trips(False) + 2


@pytest.mark.parametrize("max_buffered", [400 * 1024, 512 * 1024])
def test_a_small_budget_still_moves_full_windows(max_buffered):
    """A shared pool smaller than one credit of max_chunk: credit is cut to what the pool holds
    (ceiling), not left to the floors one small chunk at a time."""
    process = Budget(1 << 30)
    pair = CorePair(
        CoreConfig(process_budget=process),
        CoreConfig(max_buffered=max_buffered, max_streams=10, process_budget=process),
    )
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    total = 4 * 1024 * 1024
    pair.a.write(writer, b"x" * total)
    rounds = rounds_to_move(pair, reader, total)
    assert rounds <= 40, rounds  # 16 round trips before the floors


def test_streams_gone_from_the_registry_leave_their_floor_to_live_ones():
    """A stream that ended unread leaves the registry with its bytes still counted: they count
    against the pool then, and its floor is free for the next stream; local streams beyond
    max_streams get no floor beyond the floors' share."""
    process = Budget(1 << 30)
    pair = CorePair(small(process), small(process, max_streams=2))
    zombie_writer = StreamCore(StreamOptions())
    zombie = pair.open_stream(pair.a, zombie_writer)
    pair.b.start_reading(zombie)
    pair.a.write(zombie_writer, b"z" * 1000)
    pair.a.end(zombie_writer)
    pair.flush()
    assert zombie.id not in pair.b.streams and zombie.inbox  # ended, unread, still held
    hog_writer = StreamCore(StreamOptions())
    hog = pair.open_stream(pair.a, hog_writer)
    pair.b.start_reading(hog)
    pair.a.write(hog_writer, b"h" * (64 * 1024))
    for _ in range(50):  # the hog reads a little, then holds all it can
        round_trip(pair)
        if hog.inbox:
            pair.b.take(hog, 1024)
    fresh_writer = StreamCore(StreamOptions())
    fresh = pair.open_stream(pair.a, fresh_writer)
    pair.b.start_reading(fresh)
    pair.a.write(fresh_writer, b"f" * 10)
    pair.a.end(fresh_writer)
    got = 0
    for _ in range(50):
        round_trip(pair)
        got += drain(pair, fresh)
    assert got == 10
    budget = pair.b.budget
    assert 0 <= budget.floor_used <= budget.floor_pool
    # Local streams reading, more than max_streams: the floors' share is never exceeded.
    for _ in range(3):
        pair.flush()
        local = StreamCore(StreamOptions.create(allow_half_open=True))
        pair.open_stream(pair.b, local)
        pair.b.start_reading(local)
    pair.flush()
    assert budget.floor_used <= budget.floor_pool


def test_empty_chunks_neither_open_nor_grow_a_window():
    """An empty chunk gives its credit back and nothing else: a reader that took nothing keeps
    one credit (no window opened from the pool, no growth, no wider connection window)."""
    now = [0.0]
    process = Budget(1 << 32)
    config = CoreConfig(process_budget=process, idle_timeout=None, clock=lambda: now[0])
    pair = CorePair(config, config)
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    window = pair.b.budget.window
    for _ in range(60):
        now[0] += 0.05
        credits = 0
        while (item := pair.b.next_outgoing()) is not None:
            if item.event == wire.READ and item.args[0] == reader.id:
                credits += item.args[2] if len(item.args) > 2 else 1
        now[0] += 0.05
        for _ in range(credits):  # the peer spends every credit on an empty chunk
            assert pair.b.receive_write(reader.id, b"", "buffer") is None
    assert reader.window is not None and not reader.window.proven
    assert reader.window.size == reader.window.base and reader.window.outstanding == 1
    assert pair.b.budget.window == window
    assert reader.holding is not None and reader.holding.reserved <= pair.b.budget.floor


@pytest.mark.parametrize("seed", [111, 140, *range(20)])
def test_a_shrinking_window_that_goes_dry_is_paid_from_its_floor(seed):
    """Under memory pressure a grown window returns no credit for what is consumed; a stream
    that so goes dry with debt the pool cannot pay must get its floor at once (it waited for
    a wake from another stream, which never came when the others were stalled)."""
    rnd = random.Random(seed)
    now = [0.0]
    limit = rnd.choice([300, 400, 600]) * 1024
    process = Budget(limit)

    def config(**settings) -> CoreConfig:
        base = dict(
            max_chunk=1024,
            window=4,
            max_window=64 * 1024,
            clock=lambda: now[0],
            process_budget=process,
            idle_timeout=None,
        )
        return CoreConfig(**(base | settings))  # type: ignore[arg-type]

    max_streams = rnd.choice([2, 4, 8])
    pair = CorePair(
        config(),
        config(
            max_buffered=rnd.choice([64, 100, 160]) * 1024,
            max_streams=max_streams,
            connection_window=rnd.choice([4096, 16384]),
        ),
    )

    def step(readers: list[StreamCore], part: int | None = None) -> None:
        now[0] += 0.05
        while pair.send(pair.b):
            pass
        while pair.deliver(pair.b):
            pass
        now[0] += 0.05
        while pair.send(pair.a):
            pass
        while pair.deliver(pair.a):
            pass
        for reader in readers:
            taken = 0
            while reader.inbox and (part is None or taken < part):
                pair.b.take(reader, 1 << 20)
                taken += 1

    streams = []
    for _ in range(min(max_streams, rnd.randint(2, 3))):
        writer = StreamCore(StreamOptions())
        reader = pair.open_stream(pair.a, writer)
        pair.b.start_reading(reader)
        pair.a.write(writer, b"x" * (8 << 20))
        streams.append((writer, reader))
    readers = [reader for _, reader in streams]
    for _ in range(rnd.randint(5, 40)):
        step(readers, rnd.choice([None, None, 3, 10]))
    other = Budget(limit, process)  # another connection now holds half the process or more
    other._add(min(int(limit * rnd.choice([0.5, 0.6, 0.7])), process.free), 0)
    writer, last = streams[-1]
    for _ in range(rnd.randint(0, 3)):
        step(readers, 1)
    for _ in range(150):  # only the last stream's reader goes on reading; the others stall
        step([last])
    before = last.activity
    for _ in range(30):
        step([last])
    assert last.error is None
    assert last.activity > before or not writer.pending_size, "a reading stream stalled"


def test_many_reading_streams_beyond_the_connection_window_move_full_chunks():
    """A reading stream gone dry gets its one credit outside the connection window in full when
    the pool has room: 20 streams behind a window of 2 credits still send max_chunk chunks,
    not floor-sized ones (they did: 100 streams on one connection fell to 0.08x one stream)."""
    process = Budget(1 << 30)
    chunk = 64 * 1024  # above the floor (32 KiB with the default budget and max_streams)
    reading = CoreConfig(max_chunk=chunk, connection_window=2 * chunk, process_budget=process)
    pair = CorePair(CoreConfig(max_chunk=chunk, process_budget=process), reading)
    readers = []
    for _ in range(20):
        writer = StreamCore(StreamOptions())
        reader = pair.open_stream(pair.a, writer)
        pair.b.start_reading(reader)
        pair.a.write(writer, b"m" * (8 * chunk))
        pair.a.end(writer)
        readers.append(reader)
    sizes: list[int] = []
    for _ in range(200):
        while pair.send(pair.b):
            pass
        while pair.deliver(pair.b):
            pass
        while pair.send(pair.a):
            pass
        sizes += [len(o.args[1]) for o in pair.wires[id(pair.a)] if getattr(o, "event", None) == wire.WRITE]
        while pair.deliver(pair.a):
            pass
        for reader in readers:
            drain(pair, reader)
        if all(r.readable_ended for r in readers):
            break
    assert all(r.readable_ended for r in readers)
    assert pair.b.budget.floor < chunk
    # Each stream's first credit is its floor's (it had not read yet); every chunk after is full.
    assert sizes.count(chunk) >= 20 * 7, sorted(set(sizes))


def test_room_freed_by_a_garbage_collected_stream_wakes_the_streams_waiting_for_it():
    """L2: a stream the peer ended, whose bytes nobody read, leaves the registry but stays
    counted until it is garbage-collected; the room it then gave back woke nobody, so a stream
    of another connection waiting for the process's room stalled. The driver's on_freed hook
    (here: a list the test runs, as the loop would) schedules the wake."""
    process = Budget(1 << 30)
    first = CorePair(
        CoreConfig(process_budget=process), CoreConfig(process_budget=process, idle_timeout=None)
    )
    second = CorePair(
        CoreConfig(process_budget=process), CoreConfig(process_budget=process, idle_timeout=None)
    )
    scheduled: list[Callable[[], None]] = []
    for pair in (first, second):
        pair.b.budget.on_freed = lambda budget=pair.b.budget: scheduled.append(budget.wake)
    writer = StreamCore(StreamOptions())
    unread = first.open_stream(first.a, writer)
    first.b.start_reading(unread)
    first.a.write(writer, b"u" * 300_000)
    first.a.end(writer)
    first.flush()
    first.b.take(unread, 1 << 20)  # one chunk: the window opens, the rest arrives unread
    first.flush()
    assert unread.id not in first.b.streams and first.b.budget.held > 0
    process.limit = process.used  # the process is full: nothing more fits
    waiting_writer = StreamCore(StreamOptions())
    waiting = second.open_stream(second.a, waiting_writer)
    second.b.start_reading(waiting)
    second.a.write(waiting_writer, b"w" * 1000)
    second.a.end(waiting_writer)
    second.flush()
    assert not waiting.inbox and waiting.window is not None and waiting.window.outstanding == 0
    for record in (*first.decoded.values(), *first.events.values()):
        record.clear()  # the pair's own records of decoded streams and the events carrying them
    del unread
    gc.collect()
    assert scheduled, "the room freed scheduled no wake"
    for wake in scheduled:
        wake()
    second.flush()
    assert drain(second, waiting) == 1000
