"""What a writer keeps for resume while many streams take turns: a reader that waits for its
turn says what arrived in a read of 0 credits, so the writer's replays stay within what is in
flight instead of a window per stream. Two cores back to back, counted."""

from __future__ import annotations

from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._core import FEATURE_RESUME, OUR_FEATURES, CoreConfig, ProtocolCore
from tests.corepair import CorePair
from tests.test_turns import open_uploads, round_trip, rounds_to_the_end

MiB = 1024 * 1024
CHUNKS = 1600


def run_uploads(streams: int, *, resume: bool = True) -> dict[str, int]:
    """``streams`` uploads sharing ``CHUNKS`` full chunks, to the end: the writes and reads
    that crossed, the reads of 0 credits, and the most the writer kept for replay at once."""
    process = Budget(1 << 30)
    config = CoreConfig(
        process_budget=process,
        idle_timeout=None,
        resume_timeout=30.0 if resume else 0.0,
        features=OUR_FEATURES | {FEATURE_RESUME},
    )
    pair = CorePair(config, config)
    assert pair.b.resumable is resume
    readers = open_uploads(pair, streams, CHUNKS * config.max_chunk // streams)
    counts = {"writes": 0, "reads": 0, "acks": 0, "kept": 0}
    for crossed in rounds_to_the_end(pair, readers, 10 * CHUNKS):
        for event, args in crossed:
            if event == wire.WRITE:
                counts["writes"] += 1
            elif event == wire.READ:
                counts["reads"] += 1
                counts["acks"] += args[2] == 0
        counts["kept"] = max(counts["kept"], kept(pair.a))
    for _ in range(3):
        round_trip(pair)  # the ends' acks: the writer forgets the rest
    assert kept(pair.a) == 0 and not pair.a.streams
    return counts


def kept(core: ProtocolCore) -> int:
    return sum(stream.replay_bytes for stream in core.streams.values())


def test_streams_waiting_for_their_turns_let_the_writer_forget_what_arrived():
    """100 uploads of 8 MiB behind a 4 MiB connection window: the writer kept 200 MiB for
    replay at its peak (each stream's last turn, until its next read) and keeps 7.5 MiB now, at
    the cost of 300 reads of 0 credits (0.18 per chunk: one per stream and turn, none after a
    stream's first, floor-sized chunk, which made 397) beside the 501 that grant credit; the
    chunks are the same. One stream alone keeps its window, and sends no such read."""
    one = run_uploads(1)
    many = run_uploads(100)
    window = CoreConfig().connection_window
    assert one["acks"] == 0 and one["kept"] <= window, one
    assert many["writes"] <= 1700, many
    assert many["kept"] <= 2.5 * window, many  # before: 50 windows
    assert many["acks"] <= 0.18 * many["writes"], many  # one per stream per whole turn
    assert many["reads"] - many["acks"] <= 501, many  # the credit reads as before


def test_without_resume_nothing_is_kept_and_no_read_only_says_what_arrived():
    many = run_uploads(100, resume=False)
    assert many["acks"] == 0 and many["kept"] == 0, many
