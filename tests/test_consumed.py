"""The negotiated ``consumed`` extension: every batched read tells the writer what the reader's
application consumed, so that credit is only a limit (two cores back to back, and hostile
reports fed to a writer by hand)."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from sio_stream import RemoteProtocolError
from sio_stream.core import _wire as wire
from sio_stream.core._config import FEATURE_CONSUMED, OUR_FEATURES
from sio_stream.core._core import CoreConfig, Outgoing, ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions
from sio_stream.core._state import WriteState
from tests.corepair import CorePair


def reads(core: ProtocolCore, stream_id: str) -> list[Outgoing]:
    """Every $stream-read ``core`` queued for ``stream_id`` (taken off its outbox)."""
    out: list[Outgoing] = []
    kept: list[Outgoing] = []
    while (item := core.next_outgoing()) is not None:
        (out if item.event == wire.READ and item.args[0] == stream_id else kept).append(item)
    return out


def test_reads_report_what_was_consumed_not_what_was_granted() -> None:
    pair = CorePair(CoreConfig(window=8, max_chunk=100), CoreConfig(window=8, max_chunk=100))
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    assert receiver.window is not None
    pair.a.write(sender, bytes(100 * 40))
    reports: list[int] = []
    granted = 0
    for _ in range(200):
        for item in list(pair.b.outbox):
            if isinstance(item, Outgoing) and item.event == wire.READ:
                assert len(item.args) == 4, item.args
                reports.append(item.args[3]["consumed"])
                granted += item.args[2]
        pair.flush()
        if receiver.inbox:
            pair.b.take(receiver, 100)
        assert sender.credit.consumed <= receiver.window.consumed_total
        if receiver.window.consumed_total == 40:
            break
    pair.flush()
    assert reports == sorted(reports), "monotonic"
    assert reports[0] == 0 and reports[1] == 1, "the first grant reports nothing; the window opens at 1"
    assert granted > reports[-1] + 1, "credit ran ahead of consumption, as a window does"
    assert sender.credit.consumed == reports[-1] <= 40


def test_objects_are_counted_one_by_one_through_batches() -> None:
    pair = CorePair()
    sender = StreamCore(StreamOptions.create(object_mode=True))
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    assert receiver.window is not None
    for i in range(300):
        pair.a.write(sender, {"n": i})
    taken = 0
    for _ in range(1000):
        pair.flush()
        if not receiver.inbox:
            break
        while receiver.inbox:
            pair.b.take(receiver, 1)
            taken += 1
    pair.flush()
    assert taken == 300
    assert 300 - pair.b.config.object_window <= sender.credit.consumed <= 300


@pytest.mark.parametrize(
    "features",
    [OUR_FEATURES - {FEATURE_CONSUMED}, frozenset()],
    ids=["sio_stream-without-consumed", "plain"],
)
def test_no_report_toward_a_writer_that_did_not_announce_it(features: frozenset[str]) -> None:
    pair = CorePair(CoreConfig(features=features), CoreConfig())
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    assert receiver.window is not None
    pair.a.write(sender, b"x" * 10)
    pair.flush()
    pair.b.take(receiver, 100)
    items = reads(pair.b, receiver.id)
    assert items and all(len(r.args) <= 3 for r in items)


def writer_with_sent(
    chunks: int, *, features: frozenset[str] = OUR_FEATURES
) -> tuple[ProtocolCore, StreamCore]:
    """A writer core whose stream has put ``chunks`` chunks on the wire (the peer is a sio_stream
    reader that announced ``features``)."""
    core = ProtocolCore(CoreConfig())
    core.receive_hello({"version": 1, "features": sorted(features)})
    stream = StreamCore(StreamOptions())
    core.attach(stream)
    core.announce(stream)
    core.receive_read(stream.id, 1024, chunks + 1, {"consumed": 0} if FEATURE_CONSUMED in features else None)
    for _ in range(chunks):
        core.write(stream, b"abc")
        while core.next_outgoing() is not None:
            pass
    assert stream.credit.spent == chunks
    return core, stream


HOSTILE: list[Any] = [
    {"consumed": "3"},
    {"consumed": 1.5},
    {"consumed": True},
    {"consumed": None},
    {"consumed": -1},
    {"consumed": 4},  # beyond the three chunks sent
    {"consumed": 10**100},
    {"consumed": [1]},
    {},
    [2],
    "2",
    2,
]


@pytest.mark.parametrize("report", HOSTILE, ids=repr)
def test_a_hostile_report_fails_that_stream_with_a_protocol_error(report: Any) -> None:
    core, stream = writer_with_sent(3)
    other = StreamCore(StreamOptions())
    core.attach(other)
    core.announce(other)
    core.receive_read(stream.id, 1024, 1, report)
    assert isinstance(stream.error, RemoteProtocolError)
    assert "consumed" in str(stream.error)
    assert stream.write_state is WriteState.FAILED
    sent = [item for item in core.outbox if isinstance(item, Outgoing) and item.event == wire.ERROR]
    assert [item.args[0] for item in sent] == [stream.id]
    assert other.error is None, "only the offending stream fails"


def test_a_report_that_goes_backwards_fails_the_stream() -> None:
    core, stream = writer_with_sent(3)
    core.receive_read(stream.id, 1024, 1, {"consumed": 2})
    assert stream.error is None and stream.credit.consumed == 2
    core.receive_read(stream.id, 1024, 1, {"consumed": 2})  # the same again is fine
    assert stream.error is None
    core.receive_read(stream.id, 1024, 1, {"consumed": 1})
    assert isinstance(stream.error, RemoteProtocolError)
    assert "backwards" in str(stream.error)


def test_unknown_keys_are_ignored() -> None:
    core, stream = writer_with_sent(3)
    core.receive_read(stream.id, 1024, 1, {"consumed": 3, "limit": 99})
    assert stream.error is None and stream.credit.consumed == 3


def test_a_report_from_a_peer_that_did_not_announce_it_is_ignored() -> None:
    core, stream = writer_with_sent(3, features=OUR_FEATURES - {FEATURE_CONSUMED})
    core.receive_read(stream.id, 1024, 1, "nonsense")
    assert stream.error is None and stream.credit.consumed == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=60), st.integers(1, 4))
def test_the_writer_never_hears_more_than_was_consumed(takes: list[int], window: int) -> None:
    """Whatever the reader's pace, the writer's count never exceeds the reader's and never
    goes back; once everything was read and the pair is quiet it is all of it, less at most
    the last quarter window not yet granted back."""
    pair = CorePair(CoreConfig(window=window, max_chunk=10), CoreConfig(window=window, max_chunk=10))
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    assert receiver.window is not None
    total = 10 * len(takes)
    pair.a.write(sender, bytes(total))
    pair.a.end(sender)
    seen = 0
    for n in takes * 20:
        pair.flush()
        for _ in range(n):
            if receiver.inbox:
                pair.b.take(receiver, 10)
        assert seen <= sender.credit.consumed <= receiver.window.consumed_total
        seen = sender.credit.consumed
        if receiver.window.consumed_total == len(takes):
            break
    pair.flush()
    assert receiver.window.consumed_total == len(takes)
    assert sender.error is None
