"""Windows that tune themselves (sio_stream.core._tuning), over two cores back to back and a
clock the test moves: one round trip is half of it each way."""

from __future__ import annotations

import pytest

from sio_stream._errors import StreamBrokenError
from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._config import FEATURE_WINDOW_GROWTH, OUR_FEATURES, CoreConfig
from sio_stream.core._core import ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions
from sio_stream.core._tuning import RoundTrip
from tests.corepair import CorePair

CHUNK = 1024
RTT = 0.1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_pair(clock: Clock, *, reader_features=OUR_FEATURES, writer_features=OUR_FEATURES, **reader):
    process = Budget(reader.pop("process_limit", 1 << 30))
    settings = dict(max_chunk=CHUNK, window=4, max_window=64 * CHUNK, clock=clock, process_budget=process)
    writer = CoreConfig(**settings, features=writer_features)  # type: ignore[arg-type]
    reading = CoreConfig(**(settings | reader), features=reader_features)  # type: ignore[arg-type]
    return CorePair(writer, reading), process


def deliver_all(pair: CorePair, core: ProtocolCore) -> None:
    while pair.send(core):
        pass
    while pair.deliver(core):
        pass


def round_trip(pair: CorePair, clock: Clock, reader: StreamCore, take: int | None) -> int:
    """Credit goes out, half a round trip, the writes come back, half a round trip; then the
    reader consumes ``take`` chunks (all, with ``None``). Returns the chunks consumed."""
    clock.now += RTT / 2
    deliver_all(pair, pair.b)  # the reads reach the writer
    clock.now += RTT / 2
    deliver_all(pair, pair.a)  # the chunks reach the reader
    taken = 0
    while reader.inbox and (take is None or taken < take):
        pair.b.take(reader, 1 << 20)
        taken += 1
    return taken


def bulk_stream(pair: CorePair) -> tuple[StreamCore, StreamCore]:
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.a.write(writer, b"x" * (4096 * CHUNK))
    return writer, reader


def test_the_round_trip_is_the_smallest_grant_to_arrival_time():
    rtt = RoundTrip()
    rtt.granted(2, now=0.0)
    rtt.granted(1, now=1.0)
    rtt.arrived(1, now=0.5)  # the first grant is not used up yet: no sample
    assert rtt.seconds == float("inf")
    rtt.arrived(1, now=0.7)
    assert rtt.seconds == pytest.approx(0.7)
    rtt.arrived(1, now=1.2)
    assert rtt.seconds == pytest.approx(0.2)


def test_a_window_that_limits_a_long_link_doubles_up_to_its_cap():
    clock = Clock()
    pair, _ = make_pair(clock)
    _, reader = bulk_stream(pair)
    assert reader.window is not None
    sizes = []
    for _ in range(40):
        round_trip(pair, clock, reader, None)
        sizes.append(reader.window.size)
        in_flight = reader.window.outstanding + reader.window.buffered
        assert in_flight <= reader.window.size <= 64
    assert sizes[0] == 4 and sizes[-1] == 64, sizes  # max_window / max_chunk
    assert sizes == sorted(sizes)
    # The connection window followed, within the budget's shared half.
    assert pair.b.budget.window is not None and pair.b.budget.window >= 64 * CHUNK


def test_no_growth_toward_a_writer_that_counts_credit_as_progress():
    clock = Clock()
    pair, _ = make_pair(clock, writer_features=OUR_FEATURES - {FEATURE_WINDOW_GROWTH})
    _, reader = bulk_stream(pair)
    assert reader.window is not None
    for _ in range(40):
        round_trip(pair, clock, reader, None)
    assert reader.window.size == 4


def test_no_growth_when_the_reader_is_the_limit():
    clock = Clock()
    pair, _ = make_pair(clock)
    _, reader = bulk_stream(pair)
    assert reader.window is not None
    for _ in range(60):
        round_trip(pair, clock, reader, 1)  # one chunk a round trip: the window is not the limit
    assert reader.window.size == 4


def test_no_growth_under_memory_pressure_and_a_grown_window_shrinks_back():
    clock = Clock()
    pair, process = make_pair(clock)
    _, reader = bulk_stream(pair)
    assert reader.window is not None
    for _ in range(20):
        round_trip(pair, clock, reader, None)
    grown = reader.window.size
    assert grown > 4
    # Memory pressure: another connection holds 60 % of the process account.
    other = Budget(process.limit, process)
    other._add(process.limit * 6 // 10, 0)
    for _ in range(40):
        round_trip(pair, clock, reader, None)
        assert process.used <= process.limit
    assert reader.window.size == reader.window.base == 4
    assert reader.error is None
    other._add(-(process.limit * 6 // 10), 0)  # the pressure goes: the window grows again
    for _ in range(40):
        round_trip(pair, clock, reader, None)
    assert reader.window.size == grown


def test_the_window_grows_in_both_directions_of_a_duplex_stream_only_as_used():
    """Growth is per direction: the quiet direction of a duplex stream stays at its floor."""
    clock = Clock()
    pair, _ = make_pair(clock)
    writer = StreamCore(StreamOptions.create(allow_half_open=True))
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.a.start_reading(writer)  # the other direction reads, nobody writes to it
    pair.a.write(writer, b"y" * (4096 * CHUNK))
    for _ in range(30):
        round_trip(pair, clock, reader, None)
    assert reader.window is not None and writer.window is not None
    assert reader.window.size > 4
    assert writer.window.size == 4 and writer.window.outstanding == 1
    assert [o for o in pair.a.outbox if getattr(o, "event", None) == wire.ERROR] == []


def paced_round_trip(
    pair: CorePair, clock: Clock, reader: StreamCore, per_chunk: float, late: float = 0.0
) -> None:
    """As :func:`round_trip`, over a link with a rate: the chunks arrive one every
    ``per_chunk`` seconds (the last one ``late`` seconds later still), and the reader consumes
    each as it arrives."""
    clock.now += RTT / 2
    deliver_all(pair, pair.b)
    clock.now += RTT / 2
    while pair.send(pair.a):
        pass
    wire = pair.wires[id(pair.a)]
    while wire:
        clock.now += per_chunk + (late if len(wire) == 1 else 0.0)
        pair.deliver(pair.a)
        while reader.inbox:
            pair.b.take(reader, 1 << 20)


def window_sizes(chunks_per_round_trip: int, rounds: int) -> list[int]:
    clock = Clock()
    pair, _ = make_pair(clock)
    _, reader = bulk_stream(pair)
    assert reader.window is not None
    sizes = []
    for _ in range(rounds):
        paced_round_trip(pair, clock, reader, RTT / chunks_per_round_trip)
        sizes.append(reader.window.size)
        assert reader.window.outstanding + reader.window.buffered <= reader.window.size <= 64
    return sizes


def test_a_window_that_drains_in_a_fraction_of_a_round_trip_grows_to_the_link_in_one_decision():
    """The first window (4 chunks) went through in 3/20 of a round trip: the link carries about
    20 chunks a round trip, so the window grows to twice that at once, where growing fourfold
    per decision took one more round trip (4 -> 16 -> 64) on a 150 ms link."""
    sizes = window_sizes(chunks_per_round_trip=20, rounds=3)
    assert sizes[0] == 4 and sizes[1] >= 40, sizes
    assert sizes[2] >= 40


def test_one_late_chunk_does_not_hide_the_rate_of_the_rest():
    """The last chunk of the first window came 50 ms after the others (a writer's pause): the
    rate over the first three still says 20 chunks a round trip (the whole window's said 9)."""
    clock = Clock()
    pair, _ = make_pair(clock)
    _, reader = bulk_stream(pair)
    assert reader.window is not None
    paced_round_trip(pair, clock, reader, RTT / 20)  # the floor's chunk opens the window
    paced_round_trip(pair, clock, reader, RTT / 20, late=RTT / 2)
    assert reader.window.size >= 40


def test_a_window_grows_at_least_fourfold_and_settles_within_four_link_products():
    # 6 chunks a round trip: the first window's burst says 12, fourfold says 16; a window of 16
    # then takes more than two round trips to drain and grows no more.
    sizes = window_sizes(chunks_per_round_trip=6, rounds=8)
    assert sizes[:2] == [4, 16] and sizes[-1] == 16, sizes


def test_the_grown_window_is_granted_at_the_decision():
    """The decision comes at the window's last chunk: the credit it adds must go out with that
    chunk's credit, not a round trip later with the next chunk's."""
    clock = Clock()
    pair, _ = make_pair(clock)
    _, reader = bulk_stream(pair)
    assert reader.window is not None
    paced_round_trip(pair, clock, reader, RTT / 20)  # the floor's chunk opens the window
    paced_round_trip(pair, clock, reader, RTT / 20)  # the window's chunks: it grows
    grown = reader.window.size
    assert grown > 4
    assert reader.window.outstanding + reader.window.buffered == grown
    clock.now += RTT / 2
    deliver_all(pair, pair.b)  # every credit of the grown window reaches the writer at once
    clock.now += RTT / 2
    deliver_all(pair, pair.a)
    assert len(reader.inbox) == grown


def test_the_connection_window_goes_back_when_grown_streams_end():
    """L4: the connection window followed a grown stream's window up, and stayed there after the
    stream ended: every later stream on the connection had the larger pool window."""
    clock = Clock()
    pair, _ = make_pair(clock, connection_window=4 * CHUNK)
    _, reader = bulk_stream(pair)
    assert reader.window is not None
    for _ in range(4):
        round_trip(pair, clock, reader, None)
    assert reader.window.size == 64
    assert pair.b.budget.window == 2 * 64 * CHUNK
    pair.b.fail(reader, StreamBrokenError("the application gave up"))
    assert pair.b.budget.window == 4 * CHUNK


def test_the_connection_window_grows_while_streams_wait_for_it_on_a_long_link():
    """Eight streams sharing a long link each drain too slowly to grow their own windows (here
    they cannot: max_window is their window), so the connection window (two of the largest
    stream window) held them to 4 MiB per round trip: 0.69x raw TCP at 50 ms for 8 streams. It
    now grows as a stream's would while streams wait for it, and goes back once none reads."""
    clock = Clock()
    pair, _ = make_pair(clock, connection_window=4 * CHUNK, max_window=4 * CHUNK)
    streams = [bulk_stream(pair) for _ in range(8)]
    readers = [reader for _, reader in streams]
    for _ in range(12):
        clock.now += RTT / 2
        deliver_all(pair, pair.b)
        clock.now += RTT / 2
        deliver_all(pair, pair.a)
        for reader in readers:
            while reader.inbox:
                pair.b.take(reader, 1 << 20)
    assert all(reader.window is not None and reader.window.size == 4 for reader in readers)
    window = pair.b.budget.window
    assert window is not None and window >= 16 * CHUNK, window
    assert pair.b.budget.pooled <= window
    for reader in readers:
        pair.b.fail(reader, StreamBrokenError("the application gave up"))
    assert pair.b.budget.window == 4 * CHUNK


def test_a_new_stream_opens_at_the_window_an_earlier_stream_of_its_connection_reached():
    """As Linux caches a route's metrics: the next transfer on a long link skips the ramp once
    its reader reads (before that it holds its floor's credit, as any quiet stream)."""
    clock = Clock()
    pair, _ = make_pair(clock)
    _, first = bulk_stream(pair)
    for _ in range(4):
        paced_round_trip(pair, clock, first, RTT / 40)
    assert first.window is not None and first.window.size == 64
    pair.b.fail(first, StreamBrokenError("the application has what it wanted"))
    _, second = bulk_stream(pair)
    assert second.window is not None
    assert second.window.outstanding == 1  # the floor, until the reader consumed a chunk
    paced_round_trip(pair, clock, second, RTT / 40)  # the floor's chunk opens the window
    assert second.window.size == 64
    assert second.window.outstanding + second.window.buffered == 64


def test_no_window_is_remembered_under_memory_pressure():
    clock = Clock()
    pair, process = make_pair(clock)
    _, first = bulk_stream(pair)
    for _ in range(4):
        paced_round_trip(pair, clock, first, RTT / 40)
    assert first.window is not None and first.window.size == 64
    other = Budget(process.limit, process)
    other._add(process.limit * 6 // 10, 0)  # another connection holds 60 % of the process
    paced_round_trip(pair, clock, first, RTT / 40)
    pair.b.fail(first, StreamBrokenError("the application has what it wanted"))
    other._add(-(process.limit * 6 // 10), 0)
    _, second = bulk_stream(pair)
    paced_round_trip(pair, clock, second, RTT / 40)
    assert second.window is not None and second.window.size < 64


def test_streams_that_start_together_do_not_open_at_the_remembered_window():
    """The first of several streams to open took the pool with the remembered window, and the
    others shared what was left: they open at their configured window, and grow as they go."""
    clock = Clock()
    pair, _ = make_pair(clock)
    _, first = bulk_stream(pair)
    for _ in range(4):
        paced_round_trip(pair, clock, first, RTT / 40)
    pair.b.fail(first, StreamBrokenError("the application has what it wanted"))
    readers = [bulk_stream(pair)[1] for _ in range(2)]
    clock.now += RTT / 2
    deliver_all(pair, pair.b)
    clock.now += RTT / 2
    deliver_all(pair, pair.a)  # the floors' chunks
    for reader in readers:
        pair.b.take(reader, 1 << 20)
        assert reader.window is not None and reader.window.size == 4
