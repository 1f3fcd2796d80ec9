"""The cost of turns: streams that wait for the connection window are looked at when room for
a turn may have come back, not at every chunk (sio_stream.core._turns). Two cores back to back,
counting the passes over the streams owed credit; the outcome (chunks, reads, round trips) is
the same whichever chunks make passes."""

from __future__ import annotations

from sio_stream.core._budget import Budget
from sio_stream.core._core import ProtocolCore
from tests.corepair import CorePair
from tests.test_turns import CHUNK, config, open_uploads, run_to_end


def test_turn_passes_stay_within_one_and_a_half_per_chunk(monkeypatch):
    """30 streams behind a window of 4 chunks, 16 chunks each: a pass at every chunk that
    arrived and two at a chunk consumed by a stream gone dry made 1,185 passes for 510 chunks;
    with the passes where no turn can be paid skipped, 483. The bound is 1.5 per chunk."""
    passes = 0
    real_pay = ProtocolCore._pay

    def counted(self: ProtocolCore) -> None:
        nonlocal passes
        passes += 1
        real_pay(self)

    process = Budget(1 << 30)
    pair = CorePair(config(process), config(process))
    readers = open_uploads(pair, 30, 16 * CHUNK)
    monkeypatch.setattr(ProtocolCore, "_pay", counted)
    sizes, _, _ = run_to_end(pair, readers)
    assert sum(sizes) == 30 * 16 * CHUNK and all(r.readable_ended for r in readers)
    assert passes * 2 < len(sizes) * 3, (passes, len(sizes))
