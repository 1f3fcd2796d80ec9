"""Negotiated ``resume`` for a stream whose carrying event is sent again (issue 21), at the core
with two cores back to back: the sender of the event *reads* the stream (a download), its
reader already asked for credit, and the drop loses the event with those reads (or catches
them still queued). After the resume the event goes again and the stream starts afresh on the
peer, which never granted or received anything for it: the reader must ask again, or the
download waits forever for credit that went nowhere. The same for object streams, for either
side of the session, and for a stream the sender *writes* (its first chunk, digest
announcement and end go again from byte 0)."""

from __future__ import annotations

import hashlib
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from sio_stream.core import _wire as wire
from sio_stream.core._core import Outgoing, ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair, take_all
from tests.test_session_events_core import resume
from tests.test_session_resume_core import config, cut

DATA = bytes(range(256)) * 3  # many chunks of the pair's 8 bytes: several windows
OBJECTS = [{"n": n} for n in range(40)]


def emit_reading(
    pair: CorePair, sender: ProtocolCore, *, object_mode: bool, n: int | None = None
) -> StreamCore:
    """``sender`` emits ``download`` with a fresh stream it reads (the peer writes into it); its
    reader starts at once, so a ``$stream-read`` is queued right behind the event."""
    stream = StreamCore(StreamOptions.create(object_mode=object_mode))
    placeholder = sender.attach(stream)
    args = ("download", placeholder) if n is None else ("download", n, placeholder)
    sender.queue(Outgoing(wire.STREAM, args))
    sender.start_reading(stream)
    sender.announce(stream)
    return stream


def queued_events(core: ProtocolCore) -> list[str | None]:
    return [item.event if isinstance(item, Outgoing) else None for item in core.outbox]


def lose(pair: CorePair, sender: ProtocolCore, *, sent: bool) -> None:
    """The drop. ``sent``: the event and the read went on the wire first (and are lost there);
    else they are still queued when it drops."""
    if sent:
        while pair.send(sender):
            pass
        assert [item.event for item in pair.wires[id(sender)]] == [wire.STREAM, wire.READ]  # type: ignore[union-attr]
    else:
        assert queued_events(sender)[:2] == [wire.STREAM, wire.READ]
    cut(pair)


def serve(pair: CorePair, sender: ProtocolCore, stream: StreamCore, payload: Any) -> Any:
    """After the resume: the peer's handler gets the event again and writes ``payload`` into the
    stream; ``sender`` reads it all. Returns what it read."""
    peer = pair.other(sender)
    pair.flush()
    names = [name for name, _args in pair.events[id(peer)]]
    assert names == ["download"]  # handled exactly once
    (writer,) = pair.events[id(peer)][0][1]
    assert isinstance(writer, StreamCore) and writer.id == stream.id
    if isinstance(payload, bytes):
        peer.write(writer, payload)
    else:
        for value in payload:
            peer.write(writer, value)
    peer.end(writer)
    got: list[Any] = []
    for _ in range(500):
        pair.flush()
        got.extend(take_all(sender, stream))
        if stream.readable_ended:
            break
    assert stream.error is None and writer.error is None
    return b"".join(got) if isinstance(payload, bytes) else got


@pytest.mark.parametrize("sent", [True, False], ids=["lost-on-the-wire", "still-queued"])
@pytest.mark.parametrize("object_mode", [False, True], ids=["bytes", "objects"])
@pytest.mark.parametrize("side", ["client", "server"])
def test_a_reader_whose_event_is_sent_again_asks_for_credit_again(
    sent: bool, object_mode: bool, side: str
) -> None:
    pair = CorePair(config(), config())
    sender = pair.a if side == "client" else pair.b
    stream = emit_reading(pair, sender, object_mode=object_mode)
    lose(pair, sender, sent=sent)
    resume(pair)
    payload: Any = OBJECTS if object_mode else DATA
    assert serve(pair, sender, stream, payload) == payload
    pair.flush()
    assert pair.a.streams == {} and pair.b.streams == {}
    assert pair.a.budget.retained == pair.b.budget.retained == 0


def test_a_reader_restarted_twice_by_two_drops_still_gets_everything() -> None:
    # The event is lost, sent again after the first resume, and lost again with the reads
    # that went with it: each resume asks again for the window, never twice for the same credit.
    pair = CorePair(config(), config())
    stream = emit_reading(pair, pair.a, object_mode=False)
    lose(pair, pair.a, sent=True)
    resume(pair)
    while pair.send(pair.a):
        pass
    assert [getattr(item, "event", None) for item in pair.wires[id(pair.a)]] == [wire.STREAM, wire.READ]
    cut(pair)
    resume(pair)
    assert serve(pair, pair.a, stream, DATA) == DATA
    assert stream.window is not None and stream.window.outstanding <= stream.window.current


def test_a_restarted_reader_asks_once_for_exactly_the_credit_it_counts_outstanding() -> None:
    # One read for all the lost credit, never more: the peer's writer gets no more credit than
    # the reader reserved room for.
    pair = CorePair(config(), config())
    stream = emit_reading(pair, pair.a, object_mode=False)
    lose(pair, pair.a, sent=True)
    resume(pair)
    reads = [item for item in pair.a.outbox if isinstance(item, Outgoing) and item.event == wire.READ]
    assert len(reads) == 1 and reads[0].args[0] == stream.id
    assert stream.window is not None and reads[0].args[2] == stream.window.outstanding


@pytest.mark.parametrize("sent", [True, False], ids=["lost-on-the-wire", "still-queued"])
@pytest.mark.parametrize("empty", [False, True], ids=["data", "empty"])
def test_a_writer_whose_event_is_sent_again_starts_from_byte_0_with_its_digest(
    sent: bool, empty: bool
) -> None:
    # The sender writes (an upload) and ends before the drop: nothing went out but the event
    # (and, for an empty stream, its end), since the peer never granted credit. After the
    # resume the peer reads every byte once and checks the digest announced by the first write.
    pair = CorePair(config(), config())
    stream = StreamCore(StreamOptions())
    pair.a.use_digest(stream, "sha256")
    placeholder = pair.a.attach(stream)
    pair.a.queue(Outgoing(wire.STREAM, ("upload", placeholder)))
    pair.a.announce(stream)
    data = b"" if empty else DATA
    if data:
        pair.a.write(stream, data)
    pair.a.end(stream)
    if sent:
        while pair.send(pair.a):
            pass
    assert (wire.END in queued_events(pair.a)) is (empty and not sent)
    cut(pair)
    resume(pair)
    pair.flush()
    assert [name for name, _args in pair.events[id(pair.b)]] == ["upload"]
    (reader,) = pair.events[id(pair.b)][0][1]
    pair.b.start_reading(reader)
    got = pair.read_to_end(pair.b, reader, rounds=500)
    assert got == data and reader.error is None and stream.error is None
    assert reader.digest_name == "sha256" and reader.digest_value == hashlib.sha256(data).hexdigest()
    pair.flush()
    assert pair.a.streams == {} and pair.b.streams == {}


def payload_of(n: int, object_mode: bool) -> Any:
    if object_mode:
        return [{"n": n, "i": i} for i in range(n * 3 + 1)]
    return bytes([n % 251]) * (n * 11 + 1)


def run_downloads(actions: list[int], cuts: dict[int, bool], count: int, object_mode: bool) -> None:
    """The client (a) emits ``count`` downloads, the server (b) writes each one's payload when its
    event arrives, and the wires are cut at ``cuts`` (True: the resume's answer is lost too)."""
    pair = CorePair(config(), config())
    streams: list[StreamCore] = []
    got: dict[int, list[Any]] = {}
    served: set[str] = set()

    def emit() -> None:
        if len(streams) < count:
            streams.append(emit_reading(pair, pair.a, object_mode=object_mode, n=len(streams)))

    def serve() -> None:
        for _name, (n, writer) in pair.events[id(pair.b)]:
            if writer.id not in served and writer.error is None:
                served.add(writer.id)
                payload = payload_of(n, object_mode)
                for value in [payload] if isinstance(payload, bytes) else payload:
                    pair.b.write(writer, value)
                pair.b.end(writer)

    def read() -> None:
        for n, stream in enumerate(streams):
            got.setdefault(n, []).extend(take_all(pair.a, stream))

    steps = [emit, lambda: pair.send(pair.a), lambda: pair.deliver(pair.a)]
    steps += [lambda: pair.send(pair.b), lambda: pair.deliver(pair.b), serve, read]
    for index, action in enumerate(actions):
        if index in cuts:
            cut(pair)
            resume(pair, answer_lost=cuts[index])
            if cuts[index]:
                resume(pair)
        steps[action]()
    while len(streams) < count:
        emit()
    for _ in range(500):
        pair.flush()
        serve()
        read()
        if all(stream.readable_ended for stream in streams):
            break
    pair.flush()
    # Every download handled once, in order, and read whole: none waits for credit that went nowhere.
    assert [args[0] for _name, args in pair.events[id(pair.b)]] == list(range(count))
    for n, stream in enumerate(streams):
        assert stream.error is None and stream.readable_ended, n
        data = got[n]
        assert (b"".join(data) if not object_mode else data) == payload_of(n, object_mode)
    assert pair.a.streams == {} and pair.b.streams == {}
    assert pair.a.budget.retained == pair.b.budget.retained == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=st.lists(st.integers(0, 6), min_size=1, max_size=60),
    cuts=st.dictionaries(st.integers(0, 59), st.booleans(), min_size=1, max_size=3),
    count=st.integers(1, 6),
    object_mode=st.booleans(),
)
def test_downloads_complete_exactly_once_whatever_the_cut_points(
    actions: list[int], cuts: dict[int, bool], count: int, object_mode: bool
) -> None:
    run_downloads(actions, {at % len(actions): lost for at, lost in cuts.items()}, count, object_mode)


def test_a_cut_between_every_pair_of_steps_of_a_fixed_download_exchange() -> None:
    actions = [0, 1, 0, 2, 1, 2, 5, 3, 4, 6, 0, 1, 2, 5, 3, 4, 6, 3, 4, 6]
    for at in range(len(actions)):
        for answer_lost in (False, True):
            for object_mode in (False, True):
                run_downloads(actions, {at: answer_lost}, 3, object_mode)


def test_a_reader_returned_in_an_answer_lost_in_a_drop_asks_again_behind_the_reply() -> None:
    # The server answers the client's ``slot`` event with a stream it reads (the client uploads
    # into it); the drop loses the answer and the server's reads. After the resume the answer
    # goes again as a reply, its stream starts afresh, and the server's reader asks again.
    pair = CorePair(config(), config())
    uploads: list[StreamCore] = []

    def answered(*args: Any) -> None:
        (placeholder,) = args
        uploads.append(pair.a.decode_placeholder(placeholder["$stream"], placeholder.get("options")))

    pair.a.queue(Outgoing(wire.STREAM, ("slot",), answered))
    pair.send(pair.a)
    pair.wires[id(pair.a)].popleft()  # delivered by hand: its handler answers below
    number = pair.b.event_received()
    slot = StreamCore(StreamOptions())
    placeholder = pair.b.attach(slot)
    pair.b.start_reading(slot)
    pair.b.announce(slot)
    pair.b.event_answered(number, (placeholder,))  # python-socketio's ack: lost in the drop
    while pair.send(pair.b):
        pass
    assert [getattr(item, "event", None) for item in pair.wires[id(pair.b)]] == [wire.READ]
    cut(pair)
    resume(pair)
    pair.flush()
    (upload,) = uploads
    assert upload.id == slot.id
    pair.a.write(upload, DATA)
    pair.a.end(upload)
    got = pair.read_to_end(pair.b, slot, rounds=500)
    assert got == DATA and slot.error is None and upload.error is None
