"""Turns: streams that wait for the connection window take it in turns, a debt per read, each
sized to what its writer has left (negotiated ``final-size``).

The rule (toward a writer that announced ``final-size``, which takes our read size, when more
than one stream owes credit): a stream whose reader has read and whose next credit
only the connection window holds back (credit in flight and the pool's room would cover it)
waits for its turn, instead of taking one credit outside the window at once (or, once such
credits filled the pool, a floor-sized one); its turn pays its debt in one ``$stream-read``, up
to its configured window and half the connection window, and sends it to the back of the
queue. Many streams then move full chunks with one read per turn: 100 uploads of 8 MiB on one
connection (benchmarks/concurrency.py, counted at the server) made 2,732 chunks (1,161 of them
floor-sized) and 2,925 reads of one credit, with 35 MiB in flight, before; 1,700 chunks and 569
reads with turns (one stream of 800 MiB: 1,601 chunks, 1,602 reads).

Final size (QUIC's): once its application ended the stream, a writer's every
``$stream-write`` carries ``{"left": N}`` in its fourth argument (beside a digest announcement):
the bytes left to send after this chunk. A turn then asks for no more credits than that needs,
each no larger than what is left (rounded up to 1 KiB): a stream with 8 KiB left reserves
8 KiB of the window, not a window of chunks. Without it a turn of a whole window let two
40 KiB streams through a 4 MiB window per round trip (100 of them on a 50 ms link: 5.6 MB/s
against 12.4 when each dry stream took one credit outside the window), which reverted the first
turns. A count of the bytes the writer holds while it is not ended was tried and is not used:
a bulk writer's buffer (256 KiB high-water mark) holds less than a turn and is mostly empty
when a chunk leaves, so it could tell neither bulk streams from small ones nor credit that
will come back from credit a quiet writer holds.

A stream whose writer has not ended takes whole turns. That costs short streams whose writers
stay open (a request written before the writer waits for its answer): each such turn holds up
to half the window for a chunk or two, until turns may fail and dry streams are paid as before.
Two cores back to back, beside 4 bulk uploads: 20 streams of 40 KiB ended at once had their
data within 2 round trips, left open 8-10; 20 of 200 KiB 7-9 against 8-10; one of 1 MiB 8
either way. A slow start (a turn of at most one credit more than the whole chunks the stream
moved) was tried and is not used: one open 1 MiB stream took 3 round trips, but the open
40 KiB ones up to 13 (each one-credit turn is a credit it then holds), and 100 uploads of
8 MiB made 696 reads instead of 506. A chunk shorter than the read size is no sign of a quiet
writer either: 100 uploads of 8 MiB written in 64 KiB pieces sent 2,500 such chunks of 2,700
(the sender takes what a bulk writer holds, under its 256 KiB high-water mark).

Liveness: waiting is safe while the window turns (credit paid from it comes back as room when
its chunks arrive). Credit that arrives for a reader that stopped reading becomes held bytes:
once credit in flight and the pool's room no longer cover a turn, the waiting streams are paid
as before. A stream whose writer went quiet keeps the credit it holds, and if such streams
hold the window nothing comes back: so the driver calls :meth:`Turns.check` every
:data:`STALL_CHECK` seconds while debts wait, and a check that finds no chunk consumed on the
connection since the previous one declares the window **stalled**; until the window has room
again a dry stream is paid as before (one credit outside the window, or from its floor), so it
moves whatever the quiet streams hold.

A peer that did not announce ``final-size`` (socket.io-stream, an older sio_stream or an older
build of our JavaScript client) takes no turns: its streams are paid as before. ``left`` is only
a size: an absurd one changes no bound (credit stays within the window, the budget and the
floors), and one that is not a non-negative integer fails its stream with
:class:`~sio_stream.RemoteProtocolError`.
Pure: no I/O; the driver owns the timer.
"""

from __future__ import annotations

import reprlib
from typing import Any

from ._config import LEFT_KEY

#: Seconds between stall checks while debts wait: a stream held back by quiet streams' credit
#: moves again within two checks. Far above a loopback or WAN round trip (credit paid from the
#: window comes back within one), short enough that a stalled stream hardly notices.
STALL_CHECK = 0.5
#: Credit for a final remainder is rounded up to this: chunk sizes stay round.
SIZE_STEP = 1024


class Turns:
    """Whether the connection window turns (see the module's rule)."""

    __slots__ = ("stalled", "turned", "waiting", "_seen")

    def __init__(self) -> None:
        #: Nothing came back on window credit for a whole check while debts waited: dry streams
        #: are paid outside the window again until it has room.
        self.stalled = False
        #: Chunks consumed on the connection so far (room that came back).
        self.turned = 0
        #: Debts wait (the driver's stall checks run).
        self.waiting = False
        self._seen = 0

    def start(self) -> bool:
        """Debts wait after a pass: True when they did not before (the driver starts checking)."""
        if self.waiting:
            return False
        self.waiting = True
        self._seen = self.turned
        return True

    def stop(self) -> None:
        """No debt waits any more."""
        self.waiting = False
        self.stalled = False

    def check(self) -> bool:
        """One stall check: True when the window just stalled (nothing turned since the last
        check while debts waited)."""
        if not self.waiting or self.stalled:
            return False
        if self.turned != self._seen:
            self._seen = self.turned
            return False
        self.stalled = True
        return True


def with_left(marker: dict[str, Any] | None, left: int) -> dict[str, Any]:
    """The fourth argument of an ended writer's write: ``marker`` (a digest announcement, or
    ``None``) with the bytes ``left`` after this chunk."""
    hint = dict(marker) if marker else {}
    hint[LEFT_KEY] = left
    return hint


def has_left(marker: Any) -> bool:
    """``marker`` carries a final size (an argument without one is a digest announcement)."""
    return isinstance(marker, dict) and LEFT_KEY in marker


def read_left(marker: dict[str, Any]) -> int | str:
    """The bytes left from a write's fourth argument, or why it is not a count (the stream then
    fails)."""
    left = marker[LEFT_KEY]
    if isinstance(left, bool) or not isinstance(left, int) or left < 0:
        return f"bad left count: {reprlib.repr(left)}"
    return left


def turn_size(full: int, left: int | None) -> int:
    """Bytes per credit of a turn: ``full`` (the reader's read size), cut to a final remainder
    ``left`` (rounded up to SIZE_STEP; ``None``: not known)."""
    if left is None:
        return full
    return max(1, min(full, -(-max(left, 1) // SIZE_STEP) * SIZE_STEP))


def turn_credits(owed: int, base: int, window: int | None, size: int, left: int | None) -> int:
    """Credits paid on a turn: the debt, up to the stream's configured window ``base`` (a few
    streams whose windows grew took their whole 8 MiB transfer in one read, and finished 3.4x
    faster than the last of 100), half the connection ``window`` (two streams in flight) and
    what a final remainder ``left`` needs; one at least."""
    turn = min(owed, base)
    if window is not None:
        turn = min(turn, max(1, window // size // 2))
    if left is not None:
        turn = min(turn, max(1, -(-left // size)))
    return max(1, turn)
