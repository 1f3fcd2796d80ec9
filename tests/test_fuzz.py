"""Hypothesis drives one protocol core with arbitrary (hostile) peer events and app calls.

Whatever the peer sends: nothing raises out of a ``receive_*`` method, a reader's inbox stays
within ``window * max_read_chunk`` bytes, and the registry stays consistent (every registered
stream is alive and keyed by its id; every failed stream is gone; all gone after a drop).
"""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from sio_stream import StreamError
from sio_stream.core._budget import Budget
from sio_stream.core._chunks import ByteQueue
from sio_stream.core._core import CoreConfig, Outgoing, ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions

WINDOW, MAX_READ_CHUNK, MAX_STREAMS = 3, 64, 6
KNOWN_IDS = [f"id{i}" for i in range(8)]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=100),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ids = st.one_of(st.sampled_from(KNOWN_IDS), json_values)
options = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "highWaterMark": json_values,
            "objectMode": st.one_of(st.booleans(), json_values),
            "allowHalfOpen": st.one_of(st.booleans(), json_values),
            "encoding": json_values,
            "other": json_values,
        },
    ),
)
encodings = st.one_of(st.sampled_from(["buffer", "base64", "utf8", "hex", "latin1", "ucs2"]), json_values)
chunks = st.one_of(st.binary(max_size=200), st.text(max_size=100), json_values)

steps = st.one_of(
    st.tuples(st.just("placeholder"), ids, options),
    st.tuples(st.just("read"), ids, json_values, json_values),
    st.tuples(st.just("write"), ids, chunks, encodings),
    st.tuples(st.just("end"), ids),
    st.tuples(st.just("error"), ids, json_values),
    st.tuples(
        st.just("hello"), st.one_of(json_values, st.just({"features": ["batch-read", "unacked-write"]}))
    ),
    st.tuples(st.just("take"), st.integers(0, 20), st.integers(1, 100)),
    st.tuples(st.just("app_write"), st.integers(0, 20), st.binary(max_size=300)),
    st.tuples(st.just("app_end"), st.integers(0, 20)),
    st.tuples(st.just("drain"), st.sampled_from([(), ("refused",)])),
)


def check(core: ProtocolCore, seen: list[StreamCore]) -> None:
    for key, stream in core.streams.items():
        assert key == stream.id and stream.owner is core
        assert stream.error is None and not stream.settled
        window = stream.window
        assert window is not None and window.outstanding + window.buffered <= window.size
        if isinstance(stream.inbox, ByteQueue):
            assert stream.inbox.size <= window.size * MAX_READ_CHUNK
        assert len(stream.inbox) <= window.size
    for stream in seen:
        if stream.error is not None:
            assert core.streams.get(stream.id) is not stream
    decoded = sum(1 for s in core.streams.values() if s.peer_seen)
    assert decoded <= MAX_STREAMS + 1  # + the local stream the application sent
    # The budget counts exactly what the streams hold (byte chunks, and objects at their JSON
    # size) plus the credit outstanding, and never more than its limits.
    held = sum(s.holding.held for s in seen if s.holding is not None and s.owner is core)
    reserved = sum(s.holding.reserved for s in seen if s.holding is not None and s.owner is core)
    for s in seen:
        if s.holding is not None and s.owner is core:
            if isinstance(s.inbox, ByteQueue):
                assert s.holding.held == s.inbox.size
            else:
                assert s.holding.held == sum(s.inbox_sizes) and len(s.inbox_sizes) == len(s.inbox)
            if s.settled or s.error is not None:
                assert s.holding.reserved == 0 and s.owed_credit == 0
    budget = core.budget
    assert (budget.held, budget.reserved) == (held, reserved)
    assert budget.held + budget.reserved <= budget.limit
    assert budget.reserved <= core.config.connection_window
    assert budget.parent is not None and budget.parent.used <= budget.parent.limit


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=40), st.booleans(), st.sampled_from([300, 2000, 64 * 1024 * 1024]))
def test_hostile_event_sequences_never_escape_the_core(
    sequence: list[tuple[Any, ...]], drop: bool, budget_limit: int
) -> None:
    core = ProtocolCore(
        CoreConfig(
            window=WINDOW,
            max_read_chunk=MAX_READ_CHUNK,
            max_streams=MAX_STREAMS,
            max_buffered=budget_limit,
            connection_window=budget_limit // 2,
            process_budget=Budget(budget_limit * 3 // 4),
        )
    )
    local = StreamCore(StreamOptions(), "id7")
    core.attach(local)
    core.announce(local)
    seen: list[StreamCore] = [local]
    for step in sequence:
        kind = step[0]
        if kind == "placeholder":
            stream = core.decode_placeholder(step[1], step[2])
            seen.append(stream)
            core.start_reading(stream)
        elif kind == "read":
            core.receive_read(step[1], step[2], step[3])
        elif kind == "write":
            answer = core.receive_write(step[1], step[2], step[3])
            assert answer is None or (isinstance(answer, str) and answer)
        elif kind == "end":
            core.receive_end(step[1])
        elif kind == "error":
            core.receive_error(step[1], step[2])
        elif kind == "hello":
            core.receive_hello(step[1])
        elif kind in ("take", "app_write", "app_end"):
            stream = seen[step[1] % len(seen)]
            try:
                if kind == "take":
                    if stream.inbox:
                        core.take(stream, step[2])
                elif kind == "app_write":
                    core.write(stream, step[2] if not stream.object_mode else {"v": len(step[2])})
                else:
                    core.end(stream)
            except StreamError:
                pass  # the application's own calls may raise on a failed or ended stream
        elif kind == "drain":
            while (item := core.next_outgoing()) is not None:
                assert isinstance(item, Outgoing)
                if item.on_ack is not None:
                    item.on_ack(*step[1])
        check(core, seen)
    if drop:
        core.connection_lost()
        assert core.streams == {}
        assert all(s.error is not None or s.settled for s in seen)
        assert core.budget.reserved == 0
    # Once the application has read everything still readable, nothing stays counted.
    for stream in seen:
        while stream.inbox and stream.owner is core:
            core.take(stream, 1 << 20)
        if stream.owner is core:
            core.fail(stream, StreamError("done"), notify=False)
    assert core.budget.used == 0 and core.budget.parent is not None and core.budget.parent.used == 0
