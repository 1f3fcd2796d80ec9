"""The protocol core driven back to back (no network), by hand and by hypothesis."""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from sio_stream import RemoteProtocolError, StreamBrokenError, StreamClosedError
from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._core import FEATURE_BATCH_READ, CoreConfig, Outgoing, ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions
from sio_stream.core._state import ReadState, WriteState
from tests.corepair import CorePair


def drain(core: ProtocolCore, stream: StreamCore, max_bytes: int = 1 << 30) -> bytes:
    out = bytearray()
    while stream.inbox:
        out += core.take(stream, max_bytes)
    return bytes(out)


def test_bytes_flow_and_both_registries_empty_after_end():
    pair = CorePair(CoreConfig(window=2, max_chunk=4), CoreConfig(window=3, max_chunk=5))
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    received = bytearray()
    pair.a.write(sender, b"hello world, this is a stream")
    pair.a.end(sender)
    for _ in range(100):
        pair.flush()
        received += drain(pair.b, receiver)
        if receiver.readable_ended:
            break
    pair.flush()
    assert bytes(received) == b"hello world, this is a stream"
    assert receiver.readable_ended and sender.write_finished
    assert pair.a.streams == {} and pair.b.streams == {}


def test_plain_peer_gets_one_read_per_credit_and_acked_writes():
    pair = CorePair(CoreConfig(window=4), CoreConfig(window=4), hello=False)
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)

    def reads_sent() -> list[Outgoing]:
        while pair.send(pair.b):
            pass
        reads = [item for item in pair.wires[id(pair.b)] if isinstance(item, Outgoing)]
        while pair.deliver(pair.b):
            pass
        return reads

    # The window opens with one credit (its floor) and grows as chunks are consumed, to two
    # outstanding at most (PLAIN_CREDITS: a JavaScript writer uses no more), one read each.
    reads = reads_sent()
    assert [r.event for r in reads] == [wire.READ]
    pair.a.write(sender, b"x")
    item = pair.a.next_outgoing()
    assert item is not None and item.event == wire.WRITE and item.on_ack is not None
    pair.b.receive_write(*item.args)
    assert pair.b.take(receiver, 10) == b"x"
    reads = reads_sent()
    assert [r.event for r in reads] == [wire.READ] * 2
    assert all(len(r.args) == 2 for r in reads), "no count argument toward a plain peer"
    assert receiver.window is not None and receiver.window.outstanding == 2


def test_batched_reads_and_unacked_writes_between_sio_stream_peers():
    pair = CorePair(CoreConfig(window=8), CoreConfig(window=8))
    assert FEATURE_BATCH_READ in pair.a.peer_features
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    item = pair.b.next_outgoing()
    # The floor's credit: one chunk of at most the floor's size (read-size).
    assert item is not None and item.event == wire.READ and item.args[2] == 1
    assert item.args[1] == pair.b.budget.floor < pair.b.config.max_chunk
    pair.a.receive_read(*item.args)
    pair.a.write(sender, b"data")
    write = pair.a.next_outgoing()
    assert write is not None and write.event == wire.WRITE and write.on_ack is None
    # Consumed: the reader reads, the whole window opens, in full-size chunks from the pool.
    pair.b.receive_write(*write.args)
    assert pair.b.take(receiver, 100) == b"data"
    item = pair.b.next_outgoing()
    assert item is not None and item.event == wire.READ
    # The window's credit is not consumption: the read says what was consumed (one chunk).
    assert item.args[1:] == (pair.b.config.max_chunk, 8, {"consumed": 1})


def test_the_window_grows_to_its_size_while_the_reader_keeps_up():
    pair = CorePair(CoreConfig(window=8, max_chunk=1000), CoreConfig(window=8, max_chunk=1000))
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    assert receiver.window is not None
    seen = []
    for _ in range(6):
        pair.a.write(sender, b"y" * 8000)
        pair.flush()
        seen.append(receiver.window.outstanding + receiver.window.buffered)
        drain(pair.b, receiver)
        pair.flush()
    assert seen[0] == 1 and max(seen) == 8, seen
    assert seen == sorted(seen), "it only grows while the reader keeps up"


def test_write_without_credit_fails_the_stream_on_both_sides():
    pair = CorePair()
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    # The receiver never read: no credit was granted, yet a write arrives.
    ack = pair.b.receive_write(sender.id, b"unasked", "buffer")
    assert ack is not None and "without a read" in ack
    assert isinstance(receiver.error, RemoteProtocolError)
    assert pair.b.streams == {}
    item = pair.b.next_outgoing()
    assert item is not None and item.event == wire.ERROR and item.args[0] == sender.id
    pair.a.receive_error(*item.args)
    assert isinstance(sender.error, StreamBrokenError) and sender.error.remote
    assert pair.a.streams == {}


def test_write_beyond_credit_is_refused():
    pair = CorePair(CoreConfig(window=1), CoreConfig(window=1))
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    assert pair.b.receive_write(sender.id, b"one", "buffer") is None
    refused = pair.b.receive_write(sender.id, b"two", "buffer")
    assert refused is not None and "beyond granted credit" in refused
    assert receiver.error is not None


def test_unknown_ids_are_answered_or_ignored_as_in_javascript():
    core = ProtocolCore()
    assert core.receive_write("nope", b"x", "buffer") == "invalid stream id: nope"
    core.receive_read("nope", 100)
    core.receive_end("nope")
    core.receive_error("nope", "boom")
    core.receive_write(42, b"x", "buffer")
    assert core.next_outgoing() is None


def test_decoded_duplicate_id_is_refused_with_the_javascript_message():
    core = ProtocolCore()
    first = core.decode_placeholder("abc", None)
    second = core.decode_placeholder("abc", None)
    assert first.error is None
    assert second.error is not None and "Decoded stream already exists: abc" in second.error.message
    item = core.next_outgoing()
    assert item is not None and item.args == ("abc", "Decoded stream already exists: abc")
    assert core.streams == {"abc": first}


def test_sending_a_stream_twice_or_after_destroy_is_a_local_error():
    import pytest

    from sio_stream import LocalProtocolError

    core = ProtocolCore()
    stream = StreamCore(StreamOptions())
    core.attach(stream)
    with pytest.raises(LocalProtocolError):
        core.attach(stream)
    other = ProtocolCore()
    with pytest.raises(LocalProtocolError):
        other.attach(stream)
    destroyed = StreamCore(StreamOptions())
    core.fail(destroyed, StreamClosedError("gone"))
    with pytest.raises(LocalProtocolError):
        core.attach(destroyed)


def test_end_in_default_mode_ends_both_directions_and_half_open_keeps_reading():
    pair = CorePair()
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    pair.flush()
    pair.a.end(sender)
    pair.flush()
    assert sender.read_state is ReadState.ENDED
    assert receiver.write_state is WriteState.ENDED  # the reader's own side ended too
    half = StreamCore(StreamOptions.create(allow_half_open=True))
    peer = pair.open_stream(pair.a, half)
    pair.a.start_reading(half)
    pair.flush()
    pair.b.end(peer)  # the peer finished writing; our writable side stays open
    pair.flush()
    assert half.read_state is ReadState.ENDED and half.write_state is WriteState.OPEN
    pair.a.write(half, b"still writing")
    pair.b.start_reading(peer)
    pair.flush()
    assert drain(pair.b, peer) == b"still writing"


def test_connection_lost_fails_everything_and_empties_the_registry():
    pair = CorePair()
    streams = [StreamCore(StreamOptions()) for _ in range(5)]
    for s in streams:
        pair.open_stream(pair.a, s)
    pair.a.connection_lost()
    assert pair.a.streams == {}
    assert all(s.error is not None and s.error.message == wire.CONNECTION_ABORTED for s in streams)
    assert pair.a.next_outgoing() is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=20),
    window=st.integers(min_value=1, max_value=6),
    max_chunk=st.integers(min_value=1, max_value=900),
    read_sizes=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=10),
    hello=st.booleans(),
    schedule=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=60),
)
def test_random_bytes_arrive_identical_and_credit_is_never_exceeded(
    payload, cuts, window, max_chunk, read_sizes, hello, schedule
):
    pair = CorePair(CoreConfig(max_chunk=max_chunk), CoreConfig(window=window), hello=hello)
    a, b = pair.a, pair.b
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(a, sender)
    pieces, pos, i = [], 0, 0
    while pos < len(payload):
        pieces.append(payload[pos : pos + cuts[i % len(cuts)]])
        pos += cuts[i % len(cuts)]
        i += 1
    received = bytearray()
    steps = 0
    ended = False
    while not receiver.readable_ended:
        steps += 1
        assert steps < 200_000, "no progress"
        action = schedule[steps % len(schedule)] if steps < 5000 else steps % 6
        if action == 0 and pieces:
            a.write(sender, pieces.pop(0))
        elif action == 0 and not ended:
            a.end(sender)
            ended = True
        elif action == 1:
            pair.send(a)
        elif action == 2:
            pair.deliver(a)
        elif action == 3:
            pair.send(b)
            pair.deliver(b)
        elif action == 4:
            b.start_reading(receiver)
            if receiver.inbox:
                received += b.take(receiver, read_sizes[steps % len(read_sizes)])
        else:
            if not pieces and not ended:
                a.end(sender)
                ended = True
            b.start_reading(receiver)
            pair.flush()
            received += drain(b, receiver)
        # Invariants of the credit window, after every step:
        assert receiver.error is None and sender.error is None
        assert receiver.window is not None
        win = receiver.window
        assert win.outstanding + win.buffered <= win.size
        assert pair.in_flight_writes(a, sender.id) <= win.outstanding
        assert sender.credit.available <= win.outstanding
    pair.flush()
    assert bytes(received) == payload
    assert a.streams == {} and b.streams == {}


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ).filter(lambda v: v is not None),
        max_size=30,
    ),
    window=st.integers(min_value=1, max_value=5),
)
def test_objects_arrive_in_order(values, window):
    pair = CorePair(CoreConfig(), CoreConfig(object_window=window))
    sender = StreamCore(StreamOptions.create(object_mode=True))
    receiver = pair.open_stream(pair.a, sender)
    assert receiver.object_mode
    pair.b.start_reading(receiver)
    got = []
    for value in values:
        pair.a.write(sender, value)
        pair.flush()
        while receiver.inbox:
            got.append(pair.b.take(receiver, 1))
    pair.a.end(sender)
    pair.flush()
    while receiver.inbox:
        got.append(pair.b.take(receiver, 1))
    pair.flush()
    assert got == values
    assert receiver.readable_ended


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2), max_size=40),
    window=st.integers(min_value=1, max_value=9),
    hello=st.booleans(),
    burst=st.integers(min_value=1, max_value=12),
)
def test_object_batches_stay_in_order_and_in_credit(values, window, hello, burst):
    """Objects written in bursts go out in batches toward a sio_stream peer (one object per
    write otherwise); the reader never holds more than its window, and order is kept."""
    pair = CorePair(CoreConfig(), CoreConfig(object_window=window), hello=hello)
    sender = StreamCore(StreamOptions.create(object_mode=True))
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    encodings: list[str] = []
    receive_write = pair.b.receive_write

    def spy(stream_id, chunk, encoding=None):
        encodings.append(encoding)
        result = receive_write(stream_id, chunk, encoding)
        assert receiver.window is not None
        assert receiver.window.outstanding + receiver.window.buffered <= window
        assert len(receiver.inbox) <= window
        return result

    pair.b.receive_write = spy  # type: ignore[method-assign]
    got: list = []
    for start in range(0, len(values), burst):
        for value in values[start : start + burst]:
            pair.a.write(sender, value)
        pair.flush()
        while receiver.inbox:
            while receiver.inbox:
                got.append(pair.b.take(receiver, 1))
            pair.flush()
    pair.a.end(sender)
    pair.flush()
    while receiver.inbox:
        got.append(pair.b.take(receiver, 1))
    pair.flush()
    assert got == values
    assert receiver.readable_ended
    assert receiver.error is None and sender.error is None
    if not hello:
        assert wire.OBJECT_BATCH not in encodings
    elif burst > 1 and window > 1 and len(values) > 1:
        assert wire.OBJECT_BATCH in encodings
        assert len(encodings) < len(values)


def test_bad_object_batch_is_refused():
    pair = CorePair(CoreConfig(), CoreConfig(object_window=4))
    sender = StreamCore(StreamOptions.create(object_mode=True))
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    pair.flush()
    assert pair.b.receive_write(receiver.id, [1, 2, 3, 4, 5], wire.OBJECT_BATCH) is not None
    assert receiver.error is not None


def test_object_batches_stay_under_the_chunk_size():
    """A batch holds about max_chunk bytes of JSON at most (the peer's message limit); objects
    that are not plain JSON (bytes) or larger than that travel alone."""
    pair = CorePair(CoreConfig(max_chunk=100), CoreConfig(object_window=64))
    sender = StreamCore(StreamOptions.create(object_mode=True))
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    pair.flush()
    writes: list[tuple[object, object]] = []
    receive_write = pair.b.receive_write

    def spy(stream_id, chunk, encoding=None):
        writes.append((chunk, encoding))
        return receive_write(stream_id, chunk, encoding)

    pair.b.receive_write = spy  # type: ignore[method-assign]
    values: list = ["x" * 40 for _ in range(6)] + [b"raw", "y" * 300, 1, 2, 3]
    for value in values:
        pair.a.write(sender, value)
    pair.flush()
    got = []
    while receiver.inbox:
        got.append(pair.b.take(receiver, 1))
    assert got == values
    for chunk, encoding in writes:
        if encoding == wire.OBJECT_BATCH:
            assert isinstance(chunk, list) and len(chunk) >= 2
            assert len(json.dumps(chunk, separators=(",", ":"))) <= 100 + len(chunk) + 1
            assert all(not isinstance(v, bytes) for v in chunk)
    assert any(encoding == wire.OBJECT_BATCH for _, encoding in writes)
    assert (b"raw", wire.UTF8) in writes and ("y" * 300, wire.UTF8) in writes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=900), min_size=1, max_size=5),
    objects=st.lists(st.lists(st.text("abcxyz", max_size=40), max_size=12), max_size=3),
    max_buffered=st.integers(min_value=100, max_value=1500),
    connection_window=st.integers(min_value=100, max_value=1500),
    process_limit=st.integers(min_value=150, max_value=3000),
    hello=st.booleans(),
    schedule=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=80),
)
def test_honest_streams_stay_within_the_budgets_and_give_everything_back(
    sizes, objects, max_buffered, connection_window, process_limit, hello, schedule
):
    """Honest peers on both ends, a small reader budget: whatever the interleaving, held and
    reserved bytes stay within the connection and process limits, no stream is refused, every
    byte and object arrives, and the accounts return to zero."""
    process = Budget(process_limit)
    reader_config = CoreConfig(
        window=4,
        max_chunk=100,
        max_buffered=max_buffered,
        connection_window=connection_window,
        process_budget=process,
    )
    pair = CorePair(CoreConfig(max_chunk=100), reader_config, hello=hello)
    a, b = pair.a, pair.b
    writers = [StreamCore(StreamOptions()) for _ in sizes]
    writers += [StreamCore(StreamOptions.create(object_mode=True)) for _ in objects]
    readers = [pair.open_stream(a, w) for w in writers]
    for reader in readers:
        b.start_reading(reader)
    for writer, size in zip(writers, sizes, strict=False):
        a.write(writer, bytes(size % 256 for size in range(size)))
        a.end(writer)
    for writer, values in zip(writers[len(sizes) :], objects, strict=True):
        for value in values:
            a.write(writer, value)
        a.end(writer)
    got: list[Any] = [bytearray() for _ in sizes] + [[] for _ in objects]

    def take_some(index: int) -> None:
        reader = readers[index % len(readers)]
        if reader.inbox:
            value = b.take(reader, 37)
            if reader.object_mode:
                got[index % len(readers)].append(value)
            else:
                got[index % len(readers)] += value

    def check() -> None:
        for account in (b.budget, process):
            assert account.held + account.reserved <= account.limit
        assert b.budget.reserved <= max(connection_window, 100)
        assert all(r.error is None for r in readers), [r.error for r in readers]

    for step, action in enumerate(schedule):
        if action == 0:
            pair.send(a) or pair.send(b)
        elif action == 1:
            pair.deliver(a) or pair.deliver(b)
        else:
            take_some(step)
        check()
    for _ in range(10_000):
        pair.flush()
        check()
        if all(r.readable_ended for r in readers):
            break
        for index in range(len(readers)):
            while readers[index].inbox:
                take_some(index)
    pair.flush()
    assert [bytes(g) for g in got[: len(sizes)]] == [bytes(s % 256 for s in range(n)) for n in sizes]
    assert got[len(sizes) :] == objects
    assert (b.budget.held, b.budget.reserved, process.held, process.reserved) == (0, 0, 0, 0)
    assert a.streams == {} and b.streams == {}
