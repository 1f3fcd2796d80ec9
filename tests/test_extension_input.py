"""Bad input for the flow-control extensions (batch-read counts, ``consumed``, ``window-growth``,
``read-size``): a peer announcing absurd windows, reporting consumption on a stream it does not
write to, writing beyond its credit or its read size. Each time: a typed protocol error for that
stream (or the input capped), nothing held beyond the budgets, and the connection's other streams
unaffected. Two cores back to back, the hostile side fed by hand."""

from __future__ import annotations

from sio_stream import RemoteProtocolError
from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._config import OUR_FEATURES
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


def test_an_absurd_window_puts_no_more_than_max_credit_chunks_on_the_wire() -> None:
    core = ProtocolCore(CoreConfig(max_chunk=CHUNK, max_credit=16))
    core.receive_hello({"version": 1, "features": sorted(OUR_FEATURES)})
    greedy, other = StreamCore(StreamOptions()), StreamCore(StreamOptions())
    for stream in (greedy, other):
        core.attach(stream)
        core.announce(stream)
        core.write(stream, b"g" * (100 * CHUNK))
    core.receive_read(greedy.id, CHUNK, 10**18, {"consumed": 0})
    core.receive_read(other.id, CHUNK, 4, {"consumed": 0})
    writes: dict[str, int] = {greedy.id: 0, other.id: 0}
    while (item := core.next_outgoing()) is not None:
        if isinstance(item, Outgoing) and item.event == wire.WRITE:
            writes[item.args[0]] += 1
    assert writes == {greedy.id: 16, other.id: 4}
    assert greedy.error is None and other.error is None


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
