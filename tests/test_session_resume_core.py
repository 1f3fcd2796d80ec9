"""Negotiated ``resume`` at the core (``sio_stream.core._resume``), with two cores back to back:
the wires are cut at any point (everything in flight, acks included, is lost), both sides
suspend, exchange their resume states, and every byte (object) arrives exactly once, in order,
with the writer's replay buffer bounded by the reader's window and empty at the end."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from sio_stream import ConnectionAbortedStreamError
from sio_stream.core import _wire as wire
from sio_stream.core._core import FEATURE_RESUME, OUR_FEATURES, CoreConfig, StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair, take_all

WINDOW, CHUNK = 4, 8


def config(**overrides: Any) -> CoreConfig:
    settings_: dict[str, Any] = {
        "window": WINDOW,
        "object_window": WINDOW,
        "max_chunk": CHUNK,
        "max_window": WINDOW * CHUNK,
        "features": OUR_FEATURES | {FEATURE_RESUME},
        "resume_timeout": 30.0,
    }
    settings_.update(overrides)
    return CoreConfig(**settings_)


def cut(pair: CorePair) -> None:
    """The transport drops: whatever is on the wires (events and acks) is lost."""
    for queue in pair.wires.values():
        queue.clear()
    pair.a.suspend()
    pair.b.suspend()


def resume(pair: CorePair) -> None:
    """The client (a) reports its state in its hello; the server (b) answers with its own."""
    client_state = pair.a.resume_state()
    server_state = pair.b.resume_state()
    pair.b.apply_resume(client_state)
    pair.a.apply_resume(server_state)


def test_a_cut_loses_in_flight_writes_and_reads_and_the_resume_replays_them() -> None:
    pair = CorePair(config(), config())
    assert pair.a.resumable and pair.b.resumable
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    pair.flush()
    data = bytes(range(256)) * 4
    pair.a.write(sender, data)
    pair.a.end(sender)
    # Some chunks reach the reader, more are on the wire when it drops.
    pair.send(pair.a)
    pair.deliver(pair.a)
    pair.send(pair.a)
    got = b"".join(take_all(pair.b, receiver))
    assert sender.replay and pair.a.budget.retained > 0
    cut(pair)
    resume(pair)
    assert pair.a.resumes == pair.b.resumes == 1
    got = pair.read_to_end(pair.b, receiver, got, rounds=200)
    pair.flush()
    assert got == data
    assert sender.write_finished and receiver.readable_ended
    assert pair.a.streams == {} and pair.b.streams == {}
    assert pair.a.budget.retained == 0 and not sender.replay


def test_a_stream_the_peer_does_not_have_fails_at_the_resume() -> None:
    pair = CorePair(config(), config())
    sender = StreamCore(StreamOptions())
    pair.open_stream(pair.a, sender)
    # The peer dropped its end (say it failed and its $stream-error was lost with the connection).
    pair.b.streams.clear()
    cut(pair)
    resume(pair)
    assert isinstance(sender.error, ConnectionAbortedStreamError)
    assert pair.a.streams == {}


def test_application_events_queued_during_the_drop_go_after_the_resume() -> None:
    pair = CorePair(config(), config())
    cut(pair)
    late = StreamCore(StreamOptions())
    placeholder = pair.a.attach(late)
    from sio_stream.core._core import Outgoing

    pair.a.queue(Outgoing(wire.STREAM, ("e", placeholder)))
    pair.a.announce(late)
    assert pair.a.next_outgoing() is None  # suspended: nothing goes
    resume(pair)
    pair.flush()
    assert late.error is None and pair.decoded[id(pair.b)][-1].id == late.id


def test_without_resume_negotiated_reads_carry_no_acknowledgement() -> None:
    pair = CorePair(config(), config(resume_timeout=0.0))
    assert not pair.a.resumable and not pair.b.resumable
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    pair.send(pair.b)
    read = pair.wires[id(pair.b)][-1]
    assert read.event == wire.READ
    assert len(read.args) == 3 or "received" not in read.args[3]
    pair.a.write(sender, b"x" * 20)
    pair.flush()
    assert not sender.replay and pair.a.budget.retained == 0


# -- a sweep of cut points ------------------------------------------------------------------------
ACTIONS = st.lists(st.integers(0, 6), min_size=1, max_size=120)


def run_with_cuts(object_mode: bool, actions: list[int], cuts: list[int], size: int, both_ways: bool) -> None:
    pair = CorePair(config(), config())
    options = StreamOptions.create(object_mode=object_mode)
    a_stream = StreamCore(options)
    b_stream = pair.open_stream(pair.a, a_stream)
    pair.b.start_reading(b_stream)
    pair.a.start_reading(a_stream)
    up: list[Any] = (
        [{"n": i} for i in range(size)] if object_mode else [bytes([i % 251]) * 3 for i in range(size)]
    )
    down = list(up) if both_ways else []
    got_up: list[Any] = []
    got_down: list[Any] = []
    written_up = written_down = 0
    cut_at = set(cuts)
    bound = 2 * WINDOW * (CHUNK if not object_mode else 1)

    def step(action: int) -> None:
        nonlocal written_up, written_down
        if action == 0:
            pair.send(pair.a)
        elif action == 1:
            pair.deliver(pair.a)
        elif action == 2:
            pair.send(pair.b)
        elif action == 3:
            pair.deliver(pair.b)
        elif action == 4:
            got_up.extend(take_all(pair.b, b_stream))
        elif action == 5:
            got_down.extend(take_all(pair.a, a_stream))
        elif action == 6:
            if written_up < len(up):
                pair.a.write(a_stream, up[written_up])
                written_up += 1
            if written_down < len(down):
                pair.b.write(b_stream, down[written_down])
                written_down += 1

    for index, action in enumerate(actions):
        if index in cut_at:
            cut(pair)
            resume(pair)
        step(action)
        # What a writer keeps for replay stays within (about) two windows of the reader.
        assert a_stream.sent_units - a_stream.acked_units <= bound + CHUNK
        assert b_stream.sent_units - b_stream.acked_units <= bound + CHUNK
    while written_up < len(up) or written_down < len(down):
        step(6)
        pair.flush()
        got_up.extend(take_all(pair.b, b_stream))
        got_down.extend(take_all(pair.a, a_stream))

    def received() -> int:
        if object_mode:
            return len(got_up) + len(got_down)
        return sum(map(len, got_up)) + sum(map(len, got_down))

    total = len(up) + len(down) if object_mode else 3 * (len(up) + len(down))
    for _ in range(500):
        if received() >= total:
            break
        pair.flush()
        got_up.extend(take_all(pair.b, b_stream))
        got_down.extend(take_all(pair.a, a_stream))
    # Half-open off: the reader's side ends with the writer's.
    pair.a.end(a_stream)
    for _ in range(500):
        pair.flush()
        got_up.extend(take_all(pair.b, b_stream))
        got_down.extend(take_all(pair.a, a_stream))
        if b_stream.readable_ended and a_stream.readable_ended:
            break
    pair.flush()
    assert a_stream.error is None and b_stream.error is None
    if object_mode:
        assert got_up == up and got_down == down
    else:
        assert b"".join(got_up) == b"".join(up) and b"".join(got_down) == b"".join(down)
    assert pair.a.streams == {} and pair.b.streams == {}
    assert pair.a.budget.retained == 0 and pair.b.budget.retained == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=ACTIONS,
    cuts=st.lists(st.integers(0, 119), max_size=3),
    size=st.integers(1, 40),
    both_ways=st.booleans(),
)
def test_bytes_arrive_exactly_once_whatever_the_cut_points(
    actions: list[int], cuts: list[int], size: int, both_ways: bool
) -> None:
    run_with_cuts(False, actions, cuts, size, both_ways)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=ACTIONS,
    cuts=st.lists(st.integers(0, 119), max_size=3),
    size=st.integers(1, 40),
    both_ways=st.booleans(),
)
def test_objects_arrive_exactly_once_whatever_the_cut_points(
    actions: list[int], cuts: list[int], size: int, both_ways: bool
) -> None:
    run_with_cuts(True, actions, cuts, size, both_ways)


def test_a_second_drop_before_the_answer_arrives_loses_nothing() -> None:
    # The server applied the client's state and started replaying; its answer and the replay
    # are lost in a second drop. The client, still suspended, resumes again from where it was.
    pair = CorePair(config(), config())
    down = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.b, down)
    pair.a.start_reading(reader)
    pair.flush()
    data = bytes(range(200)) * 3
    pair.b.write(down, data)
    pair.b.end(down)
    pair.send(pair.b)
    pair.send(pair.b)
    got = b""
    cut(pair)
    client_state = pair.a.resume_state()
    pair.b.resume_state()
    pair.b.apply_resume(client_state)
    while pair.send(pair.b):  # the replay leaves the server, and is lost
        pass
    assert pair.b.next_outgoing() is None
    cut(pair)
    assert pair.a.resumes == 0 and pair.b.resumes == 1
    resume(pair)
    got = pair.read_to_end(pair.a, reader, got, rounds=200)
    pair.flush()
    assert got == data and down.error is None and reader.error is None
    assert pair.a.streams == {} and pair.b.streams == {} and pair.b.budget.retained == 0
