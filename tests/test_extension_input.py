"""Bad input for the flow-control extensions (batch-read counts, ``consumed``, ``window-growth``,
``read-size``): a peer announcing absurd windows, reporting consumption on a stream it does not
write to, writing beyond its credit or its read size. Each time: a typed protocol error for that
stream (or the input capped), nothing held beyond the budgets, and the connection's other streams
unaffected. Two cores back to back, the hostile side fed by hand."""

from __future__ import annotations

from typing import Any

import pytest

from sio_stream import RemoteProtocolError
from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._config import FEATURE_CREDIT_LIMIT, OUR_FEATURES
from sio_stream.core._core import CoreConfig, Outgoing, ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair

CHUNK = 1024


def transfer_works(pair: CorePair, size: int = 20 * CHUNK) -> None:
    """A new stream from ``pair.a`` to ``pair.b`` carries ``size`` bytes intact."""
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.a.write(writer, b"o" * size)
    pair.a.end(writer)
    got = b""
    for _ in range(10_000):
        pair.flush()
        while reader.inbox:
            got += pair.b.take(reader, 1 << 20)
        if reader.readable_ended:
            break
    assert got == b"o" * size and reader.error is None


@pytest.mark.parametrize("credit_limit", [True, False])
def test_an_absurd_window_fails_its_stream_and_nothing_more_goes_on_the_wire(credit_limit: bool) -> None:
    """Credit beyond the writer's limit (its announced credit-limit, else ``max_credit``
    chunks) from a sio_stream peer fails that stream with a protocol error; it used to be
    capped, which let a reader that never reads keep the writer queueing for the transport."""
    core = ProtocolCore(CoreConfig(max_chunk=CHUNK, max_credit=16))
    features = OUR_FEATURES if credit_limit else OUR_FEATURES - {FEATURE_CREDIT_LIMIT}
    core.receive_hello({"version": 1, "features": sorted(features)})
    greedy, other = StreamCore(StreamOptions()), StreamCore(StreamOptions())
    for stream in (greedy, other):
        core.attach(stream)
        core.announce(stream)
        core.write(stream, b"g" * (100 * CHUNK))
    core.receive_read(greedy.id, CHUNK, 10**18, {"consumed": 0})
    core.receive_read(other.id, CHUNK, 4, {"consumed": 0})
    writes: dict[str, int] = {greedy.id: 0, other.id: 0}
    errors: list[tuple[Any, ...]] = []
    while (item := core.next_outgoing()) is not None:
        if isinstance(item, Outgoing) and item.event == wire.WRITE:
            writes[item.args[0]] += 1
        elif isinstance(item, Outgoing) and item.event == wire.ERROR:
            errors.append(item.args)
    assert writes == {greedy.id: 0, other.id: 4}
    assert isinstance(greedy.error, RemoteProtocolError) and "credit beyond the limit" in str(greedy.error)
    assert [args[0] for args in errors] == [greedy.id]
    assert other.error is None


def test_credit_within_the_limit_is_kept() -> None:
    """Up to the limit a sio_stream peer's credit is used as granted (16 chunks here)."""
    core = ProtocolCore(CoreConfig(max_chunk=CHUNK, max_credit=16))
    core.receive_hello({"version": 1, "features": sorted(OUR_FEATURES - {FEATURE_CREDIT_LIMIT})})
    stream = StreamCore(StreamOptions())
    core.attach(stream)
    core.announce(stream)
    core.write(stream, b"g" * (100 * CHUNK))
    core.receive_read(stream.id, CHUNK, 16, {"consumed": 0})
    sent = 0
    while (item := core.next_outgoing()) is not None:
        sent += isinstance(item, Outgoing) and item.event == wire.WRITE
    assert sent == 16 and stream.error is None


def test_a_consumed_report_on_a_stream_the_peer_writes_fails_only_that_stream() -> None:
    """Growth and consumption reports belong to the reading side: a writer that sends them for
    its own stream gets a protocol error on that stream, which gives back what it held."""
    process = Budget(1 << 30)
    pair = CorePair(CoreConfig(process_budget=process), CoreConfig(process_budget=process))
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.a.write(writer, b"w" * (4 * CHUNK))
    pair.flush()
    assert reader.inbox and pair.b.budget.used > 0
    pair.b.receive_read(reader.id, CHUNK, 10**6, {"consumed": 10**6})
    assert isinstance(reader.error, RemoteProtocolError) and "consumed" in str(reader.error)
    pair.flush()
    assert pair.b.budget.used == 0, "the failed stream's bytes and credit are given back"
    transfer_works(pair)


def test_writes_beyond_credit_or_beyond_the_budget_fail_only_their_stream() -> None:
    process = Budget(1 << 30)
    limit = 64 * CHUNK
    pair = CorePair(
        CoreConfig(max_chunk=CHUNK, process_budget=process),
        CoreConfig(max_chunk=CHUNK, max_buffered=limit, max_streams=8, process_budget=process),
    )
    writer = StreamCore(StreamOptions())
    flooding = pair.open_stream(pair.a, writer)
    pair.b.start_reading(flooding)
    pair.flush()
    assert flooding.window is not None and flooding.window.outstanding >= 1
    # Beyond the credit it was given: refused, and the stream fails.
    for _ in range(flooding.window.outstanding + 1):
        refusal = pair.b.receive_write(flooding.id, b"f" * 100)
    assert refusal is not None and "credit" in refusal
    assert isinstance(flooding.error, RemoteProtocolError)
    assert pair.b.budget.used <= limit
    pair.flush()
    # A chunk far beyond the read size it was asked for (read-size promised) and the budget.
    writer = StreamCore(StreamOptions())
    oversized = pair.open_stream(pair.a, writer)
    pair.b.start_reading(oversized)
    pair.flush()
    refusal = pair.b.receive_write(oversized.id, b"x" * (2 * limit))
    assert refusal is not None and "memory budget" in refusal
    assert isinstance(oversized.error, RemoteProtocolError)
    assert pair.b.budget.held <= limit
    pair.flush()
    transfer_works(pair)
    assert pair.b.budget.used == 0


def test_a_reader_keeps_its_window_within_the_writers_announced_credit_limit() -> None:
    """A reader whose window (32 chunks) is larger than what the writer accepts (8 chunks of
    this size, told in its hello) grants no more than that, so an honest transfer never meets
    the writer's protocol error."""
    writer_config = CoreConfig(max_chunk=CHUNK, window=4, max_window=8 * CHUNK)
    pair = CorePair(writer_config, CoreConfig(max_chunk=CHUNK, window=32))
    assert pair.b.peer_credit_limit is not None and pair.b.peer_credit_limit.bytes == 8 * CHUNK
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.a.write(writer, b"w" * (200 * CHUNK))
    pair.a.end(writer)
    got = 0
    most = 0
    for _ in range(10_000):
        pair.flush()
        assert reader.window is not None
        most = max(most, reader.window.outstanding)
        while reader.inbox:
            got += len(pair.b.take(reader, 1 << 20))
        if reader.readable_ended:
            break
    assert got == 200 * CHUNK and reader.error is None and writer.error is None
    assert 4 < most <= 8
