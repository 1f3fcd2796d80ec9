"""Writes that reach the reader before the event announcing their stream (negotiated
``initial-credit``, sio_stream.core._early): with the offer taken, a writer sends right behind
its event, and a stream returned in an ack that crossed cluster nodes (or a server whose handler
threads ran the writes first) showed the writes to the reader first. They were dropped and the
stream later ended cleanly, short. Now they are held within the offer and delivered when the
event comes, and a primed stream whose bytes do not add up to the final size its end carries
fails with IntegrityError at both ends: never a clean short end."""

from __future__ import annotations

from typing import Any

import pytest

from sio_stream import IntegrityError, RemoteProtocolError
from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._config import FINAL_SIZE_KEY, CoreConfig
from sio_stream.core._core import Outgoing, PendingReply, ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair

CHUNK = 1024
CREDITS = 8
OFFER = CREDITS * CHUNK
DATA = bytes(range(256)) * (3 * OFFER // 256)  # three offers: the rest needs reads


def config() -> CoreConfig:
    return CoreConfig(
        max_chunk=CHUNK,
        window=4,
        max_window=64 * CHUNK,
        initial_credit=OFFER,
        process_budget=Budget(1 << 30),
    )


def primed_upload(pair: CorePair, data: bytes = DATA, *, end: bool = False) -> StreamCore:
    """The writer (``pair.a``) sends a stream that takes the reader's offer, and ``data``:
    everything its credit lets go sits on its wire, the event first."""
    writer = StreamCore(StreamOptions())
    placeholder = pair.a.attach(writer)
    assert placeholder[wire.PLACEHOLDER_CREDIT_KEY] == CREDITS
    pair.a.queue(Outgoing(wire.STREAM, ("upload", placeholder)))
    pair.a.announce(writer)
    pair.a.write(writer, data)
    if end:
        pair.a.end(writer)
    while pair.send(pair.a):
        pass
    return writer


def event_last(pair: CorePair) -> None:
    """Reorder the writer's wire: its ``$stream`` event goes behind the writes (and end) its
    initial credit let go, as when the answer carrying a stream took another path."""
    queue = pair.wires[id(pair.a)]
    events = [item for item in queue if isinstance(item, Outgoing) and item.event == wire.STREAM]
    for item in events:
        queue.remove(item)
    queue.extend(events)


def read_all(pair: CorePair, reader: StreamCore) -> bytes:
    pair.b.start_reading(reader)
    return pair.read_to_end(pair.b, reader, rounds=1_000)


@pytest.mark.parametrize("data", [DATA, DATA[: 3 * CHUNK]], ids=["beyond-the-offer", "within-the-offer"])
def test_writes_that_come_before_their_event_are_held_and_delivered_when_it_comes(data: bytes) -> None:
    """Before the fix: within the offer, the stream ended cleanly with nothing; beyond it, the
    reader waited for the chunks its primed credit had paid for, and got nothing either."""
    pair = CorePair(config(), config())
    writer = primed_upload(pair, data)
    event_last(pair)
    while pair.deliver(pair.a):
        pass
    (reader,) = pair.decoded[id(pair.b)]
    early = reader.bytes_received
    pair.a.end(writer)
    got = read_all(pair, reader)
    assert len(got) == len(data) and got == data
    assert reader.error is None and writer.error is None
    assert early == min(OFFER, len(data))  # every early chunk arrived with the event
    assert pair.b.early.bytes == 0 and not pair.b.early.held
    assert pair.b.budget.held == 0 and pair.b.budget.reserved == 0


def test_a_whole_stream_and_its_end_before_the_event_arrive_and_the_ends_ack_waits() -> None:
    pair = CorePair(config(), config())
    small = DATA[: 3 * CHUNK]
    writer = primed_upload(pair, small, end=True)
    event_last(pair)
    assert [getattr(item, "event", None) for item in pair.wires[id(pair.a)]] == [wire.WRITE] * 3 + [
        wire.END,
        wire.STREAM,
    ]
    for _ in range(4):
        pair.deliver(pair.a)
    assert not pair.wires[id(pair.b)]  # the end's ack waits for the event
    assert writer.end_ack_pending
    pair.deliver(pair.a)  # the event
    (reader,) = pair.decoded[id(pair.b)]
    got = read_all(pair, reader)
    assert got == small and reader.readable_ended and reader.error is None
    assert writer.error is None and not writer.end_ack_pending


def test_a_primed_stream_that_lost_a_write_fails_at_both_ends_instead_of_ending_short() -> None:
    """The loss itself, whatever caused it: one early write vanishes on the way. The end carries
    the final size, so the reader's count does not add up."""
    pair = CorePair(config(), config())
    small = DATA[: 3 * CHUNK]
    writer = primed_upload(pair, small, end=True)
    queue = pair.wires[id(pair.a)]
    lost = next(item for item in queue if isinstance(item, Outgoing) and item.event == wire.WRITE)
    queue.remove(lost)
    end = next(item for item in queue if isinstance(item, Outgoing) and item.event == wire.END)
    assert end.args[1][FINAL_SIZE_KEY] == len(small)
    while pair.deliver(pair.a):
        pass
    (reader,) = pair.decoded[id(pair.b)]
    got = read_all(pair, reader)
    assert len(got) < len(small)
    assert isinstance(reader.error, IntegrityError) and not reader.readable_ended
    assert "final size" in str(reader.error)
    assert isinstance(writer.error, IntegrityError)  # told by the end's ack


def test_writes_beyond_the_offer_before_the_event_are_lost_and_the_stream_fails_when_it_comes() -> None:
    """Only the offer's credit is held (it was paid for by the offer); a write beyond it is
    dropped, and the stream whose first bytes it carried fails when its event arrives."""
    pair = CorePair(config(), config())
    core = pair.b
    for _ in range(CREDITS):
        assert core.receive_write("ghost", b"g" * CHUNK, "buffer") is None  # held
    assert core.early.bytes == OFFER
    # The offer is full: the real stream's first write is dropped, and so is the ghost's next.
    assert core.receive_write("real", b"r" * CHUNK, "buffer") == "invalid stream id: real"
    assert core.receive_write("ghost", b"g" * CHUNK, "buffer") == "invalid stream id: ghost"
    assert core.early.bytes == 0  # the ghost's held writes went with it
    real = core.decode_placeholder("real", None, CREDITS)
    assert isinstance(real.error, IntegrityError) and "before its event" in str(real.error)
    errors = [item.args for item in _drain(core) if item.event == wire.ERROR]
    assert errors and errors[0][0] == "real"
    assert core.budget.held == 0 and core.budget.reserved == 0 and not core.closed


@pytest.mark.parametrize(
    "chunk",
    [b"x" * (CHUNK + 1), "text", 12, None],
    ids=["beyond-the-read-size", "text", "number", "none"],
)
def test_an_early_write_that_could_not_be_accepted_is_lost_not_held(chunk: Any) -> None:
    core = CorePair(config(), config()).b
    assert core.receive_write("s", chunk, "buffer") == "invalid stream id: s"
    assert core.early.bytes == 0 and not core.early.held
    assert isinstance(core.decode_placeholder("s", None, 1).error, IntegrityError)


def test_ids_never_announced_hold_at_most_the_offer_and_are_released() -> None:
    """A hostile writer's writes for ids it never announces: bounded by the offer (counted in
    the budget as offered), released by the idle sweeps and by the connection's end."""
    pair = CorePair(config(), config())
    core = pair.b
    held = sum(core.receive_write(f"id{i}", b"h" * CHUNK, "buffer") is None for i in range(100))
    assert held == CREDITS and core.early.bytes <= OFFER and len(core.early.held) <= CREDITS
    assert core.budget.offered == OFFER  # the room they use was counted as offered already
    reply = core.receive_end("id0", None)
    assert isinstance(reply, PendingReply) and not reply.done
    for _ in range(3):
        core.sweep_idle(2, "idle")
    assert core.early.bytes == 0 and not core.early.held
    assert reply.done and reply.value == "invalid stream id: id0"  # a writer that sent data fails
    assert isinstance(core.decode_placeholder("id1", None, CREDITS).error, IntegrityError)
    assert len(core.early.lost) <= core.early.max_lost

    other = CorePair(config(), config()).b
    assert other.receive_write("x", b"h" * CHUNK, "buffer") is None
    other.connection_lost()
    assert other.early.bytes == 0 and not other.early.held and not other.early.lost


def test_the_offer_taken_by_one_stream_drops_what_is_held_for_others() -> None:
    pair = CorePair(config(), config())
    core = pair.b
    assert core.receive_write("other", b"o" * CHUNK, "buffer") is None
    assert core.receive_write("mine", b"m" * CHUNK, "buffer") is None
    mine = core.decode_placeholder("mine", None, CREDITS)
    assert mine.error is None and mine.bytes_received == CHUNK
    assert core.early.bytes == 0 and not core.early.held and "other" in core.early.lost
    # The offer is gone: a write for an unknown id is refused again, and not held.
    assert core.receive_write("later", b"l", "buffer") == "invalid stream id: later"
    assert not core.early.held


def test_early_writes_for_a_stream_that_took_no_credit_fail_it() -> None:
    core = CorePair(config(), config()).b
    assert core.receive_write("s", b"x", "buffer") is None
    stream = core.decode_placeholder("s", None, None)
    assert isinstance(stream.error, RemoteProtocolError)
    assert core.budget.held == 0


def test_nothing_is_held_without_an_offer() -> None:
    plain = CoreConfig(max_chunk=CHUNK, process_budget=Budget(1 << 30))
    core = ProtocolCore(plain)
    core.receive_hello(ProtocolCore(plain).hello().args[0])
    assert core.initial_offer is None
    assert core.receive_write("s", b"x", "buffer") == "invalid stream id: s"
    assert not core.early.held and not core.early.lost


def _drain(core: ProtocolCore) -> list[Outgoing]:
    out = []
    while (item := core.next_outgoing()) is not None:
        out.append(item)
    return out


@pytest.mark.parametrize(
    "size", ["3", -1, True, 1.5, None], ids=["string", "negative", "bool", "float", "none"]
)
def test_a_final_size_that_is_no_byte_count_fails_the_stream(size: Any) -> None:
    core = CorePair(config(), config()).b
    stream = core.decode_placeholder("s", None, 1)
    answer = core.receive_end("s", {FINAL_SIZE_KEY: size})
    assert isinstance(stream.error, RemoteProtocolError) and "final size" in str(stream.error)
    assert answer == str(stream.error)


def test_a_final_size_from_a_peer_without_initial_credit_is_no_size() -> None:
    """Only a peer that announced ``initial-credit`` sends one: from others the end's value is
    left as it was (and a dict of two keys carries no digest the reader checks)."""
    plain = CoreConfig(max_chunk=CHUNK, process_budget=Budget(1 << 30))
    plain.features = plain.features - {"initial-credit"}
    pair = CorePair(plain, plain)
    stream = pair.b.decode_placeholder("s", None)
    pair.b.start_reading(stream)
    assert pair.b.receive_end("s", {FINAL_SIZE_KEY: 99}) is None
    assert stream.error is None and stream.readable_ended


# -- what a hostile peer can make a reader hold (the review's probes) ------------------------------


def held_memory(receive: Any) -> int:
    """Bytes of Python objects still allocated after ``receive(i)`` for each of the offer's ids."""
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(CREDITS):
            receive(i)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def junk() -> dict[str, Any]:
    """What python-socketio hands over for a JSON argument of some 300 KB: 100,000 little lists."""
    return {"junk": [[] for _ in range(100_000)]}


def test_a_held_write_keeps_its_bytes_not_the_json_beside_them() -> None:
    """A write of an empty chunk counts nothing against the offer; its fourth argument was kept
    whole (51 MB held for an 8 KiB offer before the fix). Now such a write is not held at all,
    and one with a small marker keeps only that."""
    core = CorePair(config(), config()).b
    held = held_memory(lambda i: core.receive_write(f"id{i}", b"", "buffer", junk()))
    assert held <= 2 * OFFER, f"held {held:,} bytes for an offer of {OFFER:,}"
    assert core.early.held == {}
    assert core.receive_write("ok", b"x" * 10, None, {"digest": "sha256"}) is None  # held
    assert core.early.held["ok"].writes == [(b"x" * 10, None, {"digest": "sha256"})]


def test_a_held_write_keeps_the_bytes_a_text_chunk_decodes_to() -> None:
    core = CorePair(config(), config()).b
    assert core.receive_write("hex", "ab" * 100, "hex") is None
    assert core.early.held["hex"].writes == [(b"\xab" * 100, None, None)]


def test_a_held_end_keeps_its_final_size_not_the_json_beside_it() -> None:
    core = CorePair(config(), config()).b

    def end(i: int) -> None:
        answer = core.receive_end(f"id{i}", {FINAL_SIZE_KEY: 0, **junk()})
        assert isinstance(answer, str) and "invalid stream id" in answer  # not held

    held = held_memory(end)
    assert held <= 2 * OFFER, f"held {held:,} bytes for an offer of {OFFER:,}"
    assert isinstance(core.receive_end("ok", {FINAL_SIZE_KEY: 0, "sha256": "ab" * 32}), PendingReply)


def test_nothing_is_held_once_the_connection_is_gone() -> None:
    core = CorePair(config(), config()).b
    core.connection_lost()
    assert core.receive_write("late", b"x") is not None  # refused, not held
    assert isinstance(core.receive_end("late", {FINAL_SIZE_KEY: 1}), str)
    assert core.early.held == {}


def test_a_reader_that_ends_its_side_first_gets_an_end_saying_what_was_sent() -> None:
    """Duplex without half-open: the reader ends its side before reading all of a primed
    stream; the writer drops what it still buffered and ends. Its end said the bytes its
    application wrote, so the reader failed a stream nothing was lost from with IntegrityError."""
    pair = CorePair(config(), config())
    primed_upload(pair, DATA)  # three offers: the writer keeps two buffered
    while pair.deliver(pair.a):
        pass
    (reader,) = pair.decoded[id(pair.b)]
    pair.b.end(reader)
    read_all(pair, reader)
    pair.flush()
    assert not isinstance(reader.error, IntegrityError), reader.error
