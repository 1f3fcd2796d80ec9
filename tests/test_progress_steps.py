"""How often a reader reports what it consumed (sio_stream.core._progress): a writer's progress
moves only with the reader's reads, and a stream that fits in a large initial-credit window used
to report in quarter-window steps (4 MiB of a 16 MiB offer). Two cores back to back, the reader
taking one chunk at a time; no clock involved."""

from __future__ import annotations

import itertools

import pytest

from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._config import CONSUMED_KEY, CoreConfig
from sio_stream.core._core import Outgoing, StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair

MiB = 1024 * 1024


def config(chunk: int, offer_chunks: int, window: int = 4) -> CoreConfig:
    return CoreConfig(
        max_chunk=chunk,
        window=window,
        max_window=offer_chunks * chunk,
        max_buffered=64 * MiB + 4 * offer_chunks * chunk,
        initial_credit=offer_chunks * chunk,
        process_budget=Budget(1 << 34),
    )


def run(pair: CorePair, chunk: int, chunks: int) -> tuple[list[int], list[int]]:
    """Upload ``chunks`` chunks from a (primed, when offered) stream of pair.a, written one at a
    time as on a link slower than the reader: each is delivered and taken before the next is
    written. Returns the ``consumed`` values of the reader's reads, and what the writer counted
    as consumed after each chunk taken."""
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    reports: list[int] = []
    progress: list[int] = []
    next_outgoing = pair.b.next_outgoing

    def spy() -> Outgoing | None:
        item = next_outgoing()
        if item is not None and item.event == wire.READ and item.args[0] == reader.id and len(item.args) == 4:
            reports.append(item.args[3][CONSUMED_KEY])
        return item

    pair.b.next_outgoing = spy  # type: ignore[method-assign]
    for _ in range(chunks):
        pair.a.write(writer, b"x" * chunk)
        pair.flush()
        assert reader.inbox, "a chunk within the writer's credit arrives"
        pair.b.take(reader, chunk)
        pair.flush()
        progress.append(writer.credit.consumed)
    pair.a.end(writer)
    pair.flush()
    assert reader.readable_ended and reader.error is None
    return reports, progress


@pytest.mark.parametrize(
    ("chunk", "offer_chunks", "step"),
    [(1024, 32, 4), (512 * 1024, 32, 2)],
    ids=["an-eighth-of-the-window", "one-mib"],
)
def test_a_stream_within_its_offer_reports_every_step_not_every_quarter(
    chunk: int, offer_chunks: int, step: int
) -> None:
    pair = CorePair(config(chunk, offer_chunks), config(chunk, offer_chunks))
    reports, progress = run(pair, chunk, offer_chunks)
    during = [value for value in reports if 0 < value < offer_chunks]
    # Before: reports at 8, 16 and 24 of 32 chunks (a quarter window); now every step.
    assert during == list(range(step, offer_chunks, step)), reports
    # The writer's progress follows within a step of what was taken.
    taken = range(1, len(progress) + 1)
    assert all(done - step <= seen <= done for seen, done in zip(progress, taken, strict=True)), progress


def test_no_read_per_chunk_in_steady_state() -> None:
    """A long stream through the same window: about one read per step, never one per chunk;
    and a window of eight chunks keeps its quarter batches (two chunks) as before."""
    chunk = 512 * 1024
    pair = CorePair(config(chunk, 32), config(chunk, 32))
    reports, _ = run(pair, chunk, 320)
    assert len(reports) <= 320 // 2 + 2, len(reports)
    small = CorePair(config(1024, 0, window=8), config(1024, 0, window=8))
    reports, _ = run(small, 1024, 200)
    steps = {b - a for a, b in itertools.pairwise(reports) if a > 8}
    assert steps == {2}, reports
