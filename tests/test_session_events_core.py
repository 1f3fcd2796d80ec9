"""Application events across a drop, at the core (``sio_stream.core._sent_events``), with two
cores back to back: one side emits events (plain ones, and ones carrying a stream it then
writes and ends), the wires are cut at any point (everything in flight, acks included, is lost;
sometimes the resume itself is cut after the server answered), and the peer handles every event
exactly once, in order, with every carried stream's bytes intact. Hypothesis sweeps the
interleavings and the cut points (several hundred cut points in all)."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from sio_stream.core import _wire as wire
from sio_stream.core._core import Outgoing, ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions
from sio_stream.core._sent_events import SentEvents
from tests.corepair import CorePair, take_all
from tests.test_session_resume_core import config, cut


def resume(pair: CorePair, *, answer_lost: bool = False) -> None:
    """The client (a) reports its state and its count of events in its hello; the server (b)
    applies it and answers with its own. ``answer_lost``: a second drop takes the answer and
    whatever the server sent after it; the client is still suspended."""
    client = (pair.a.resume_state(), pair.a.events_received, pair.a.sent_events.awaited())
    server = (pair.b.resume_state(), pair.b.events_received, pair.b.sent_events.awaited())
    pair.b.apply_resume(*client)
    if answer_lost:
        while pair.send(pair.b):  # what the server sends next is lost too
            pass
        cut(pair)
        return
    pair.a.apply_resume(*server)


def events_of(pair: CorePair, core: ProtocolCore) -> list[Any]:
    return [args[0] if args else None for _name, args in pair.events[id(core)]]


def run(actions: list[int], cuts: dict[int, bool], count: int) -> None:
    pair = CorePair(config(), config())
    sent: list[int] = []
    carried: dict[int, tuple[StreamCore, bytes]] = {}
    acked: list[int] = []

    def emit() -> None:
        n = len(sent)
        if n >= count:
            return
        sent.append(n)
        if n % 2:
            stream = StreamCore(StreamOptions())
            placeholder = pair.a.attach(stream)
            pair.a.queue(Outgoing(wire.STREAM, ("upload", n, placeholder), lambda *_a, n=n: acked.append(n)))
            pair.a.announce(stream)
            data = bytes([n % 251]) * (n * 5 + 1)
            pair.a.write(stream, data)
            pair.a.end(stream)
            carried[n] = (stream, data)
        else:
            pair.a.queue(Outgoing(wire.STREAM, ("note", n)))

    def read_all() -> None:
        for stream in pair.decoded[id(pair.b)]:
            if stream.read_state.name == "IDLE":
                pair.b.start_reading(stream)
            got.setdefault(stream.id, bytearray()).extend(b"".join(take_all(pair.b, stream)))

    got: dict[str, bytearray] = {}
    for index, action in enumerate(actions):
        if index in cuts:
            cut(pair)
            resume(pair, answer_lost=cuts[index])
            if cuts[index]:
                resume(pair)
        if action == 0:
            emit()
        elif action == 1:
            pair.send(pair.a)
        elif action == 2:
            pair.deliver(pair.a)
        elif action == 3:
            pair.send(pair.b)
        elif action == 4:
            pair.deliver(pair.b)
        else:
            read_all()
    while len(sent) < count:
        emit()
    for _ in range(200):
        pair.flush()
        read_all()
        if all(stream.id not in pair.a.streams for stream, _ in carried.values()):
            break
    pair.flush()
    # Every event handled once, in order; every stream's bytes exactly once.
    assert events_of(pair, pair.b) == sent
    for stream, data in carried.values():
        assert stream.error is None
        assert bytes(got[stream.id]) == data
    # Every answer exactly once: python-socketio's ack, or the reply sent again after a resume.
    assert sorted(acked) == [n for n in sent if n % 2]
    assert pair.a.streams == {} and pair.b.streams == {}
    assert pair.a.budget.retained == 0
    # Kept for replay: only plain events after the last acked one (nothing confirms those
    # while the connection is up; the next resume does). Event n is number n + 1.
    last_acked = max((n for n in sent if n % 2), default=-1)
    assert all(number > last_acked + 1 for number, _item, _ids in pair.a.sent_events.kept)


ACTIONS = st.lists(st.integers(0, 5), min_size=1, max_size=80)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=ACTIONS,
    cuts=st.dictionaries(st.integers(0, 79), st.booleans(), min_size=1, max_size=4),
    count=st.integers(1, 12),
)
def test_events_and_their_streams_arrive_exactly_once_whatever_the_cut_points(
    actions: list[int], cuts: dict[int, bool], count: int
) -> None:
    run(actions, {at % len(actions): lost for at, lost in cuts.items()}, count)  # every cut lands


def test_a_cut_between_every_pair_of_steps_of_a_fixed_exchange() -> None:
    # Exhaustive over one exchange: 4 events (two with streams), cut once at each step.
    actions = [0, 1, 0, 1, 2, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5] * 2
    for at in range(len(actions)):
        for answer_lost in (False, True):
            run(actions, {at: answer_lost}, 4)


def test_an_event_the_peer_had_is_not_sent_again() -> None:
    pair = CorePair(config(), config())
    pair.a.queue(Outgoing(wire.STREAM, ("note", 1)))
    pair.send(pair.a)
    pair.deliver(pair.a)  # arrived; nothing confirmed it to the sender
    assert len(pair.a.sent_events) == 1
    cut(pair)
    resume(pair)
    pair.flush()
    assert events_of(pair, pair.b) == [1]
    assert len(pair.a.sent_events) == 0  # the peer's count confirmed it


def test_the_record_is_bounded_and_a_forgotten_event_is_not_replayed_out_of_order() -> None:
    log = SentEvents(cap=3)
    items = [Outgoing(wire.STREAM, ("note", i)) for i in range(5)]
    for item in items:
        log.record(item, [])
    assert len(log) == 3
    # The peer got one event; the 2nd and 3rd were forgotten: nothing goes, numbering restarts.
    assert log.unreceived(1) is None and log.sent == 1 and len(log) == 0
    # Bad counts: beyond what was sent, not a count.
    log = SentEvents()
    log.record(items[0], [])
    assert log.unreceived(2) is None and log.unreceived(True) is None and log.unreceived("1") is None
    log.record(items[1], [])
    again = log.unreceived(0)
    assert again is not None and [item.args[1] for item, _ in again] == [0, 1]


def test_a_read_of_a_carried_stream_confirms_its_event_and_those_before() -> None:
    pair = CorePair(config(), config())
    pair.a.queue(Outgoing(wire.STREAM, ("note", 0)))
    pair.send(pair.a)
    pair.deliver(pair.a)
    stream = StreamCore(StreamOptions())
    peer = pair.open_stream(pair.a, stream)
    assert len(pair.a.sent_events) == 2
    pair.b.start_reading(peer)
    pair.flush()
    assert len(pair.a.sent_events) == 0


def test_an_answer_the_handler_gives_after_the_resume_is_sent_then() -> None:
    pair = CorePair(config(), config())
    acked: list[tuple[Any, ...]] = []
    pair.a.queue(Outgoing(wire.STREAM, ("slow",), lambda *args: acked.append(args)))
    pair.send(pair.a)
    item = pair.wires[id(pair.a)].popleft()
    number = pair.b.event_received()  # the handler starts; no answer yet
    assert number == 1 and item.args == ("slow",)
    cut(pair)
    resume(pair)
    pair.flush()
    assert acked == []  # still running: nothing to send yet
    pair.b.event_answered(number, ({"size": 3},))  # python-socketio's ack would go to the dead sid
    pair.flush()
    assert acked == [({"size": 3},)]
    assert pair.a.sent_events.awaiting == {}


def test_an_answer_forgotten_by_the_peer_fails_the_call_with_a_typed_reply() -> None:
    pair = CorePair(config(), config())
    acked: list[tuple[Any, ...]] = []
    pair.b.answers.cap = 1
    pair.a.queue(Outgoing(wire.STREAM, ("first",), lambda *args: acked.append(args)))
    pair.a.queue(Outgoing(wire.STREAM, ("second",)))
    pair.send(pair.a)
    pair.send(pair.a)
    pair.deliver(pair.a)
    pair.deliver(pair.a)
    pair.wires[id(pair.b)].clear()  # both acks lost
    cut(pair)
    resume(pair)
    pair.flush()
    assert acked == [({wire.ERROR_REPLY_KEY: "the answer was lost with a dropped connection"},)]
    assert [name for name, _ in pair.events[id(pair.b)]] == ["first", "second"]  # never twice


def test_an_end_queued_while_suspended_goes_after_the_replay() -> None:
    # Every byte was sent (some lost in the cut), then the application ends the stream while
    # the connection is down: the end must not overtake the bytes the resume sends again.
    pair = CorePair(config(), config())
    stream = StreamCore(StreamOptions())
    peer = pair.open_stream(pair.a, stream)
    pair.b.start_reading(peer)
    pair.flush()
    data = bytes(range(8))  # one chunk, within the credit: it leaves at once
    pair.a.write(stream, data)
    assert pair.send(pair.a) and stream.pending_size == 0
    cut(pair)  # and is lost
    pair.a.end(stream)  # queued while suspended
    assert [getattr(item, "event", None) for item in pair.a.outbox] == [wire.END]
    resume(pair)
    got = pair.read_to_end(pair.b, peer, rounds=100)
    assert got == data and stream.error is None and peer.error is None
