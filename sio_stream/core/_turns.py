"""Turns: streams that wait for the connection window take it in turns, a whole debt at a time.

Toward a sio_stream writer (``read-size``: the reader sets the chunk size), a stream whose reader
reads and that the connection window cannot pay now waits for its turn in the FIFO of debts,
instead of taking its one credit outside the window at once (or, with the pool full of such
credit, a floor-sized one); when its turn comes it is paid its whole debt in one
``$stream-read`` (up to half the connection window). Measured with 100 uploads of 8 MiB on one
connection (benchmarks/concurrency.py, loopback): 1,700 chunks and ~500 reads of 4 credits,
where the immediate credit made ~2,750 chunks (1,050 of them floor-sized, 32 KiB) and ~2,800
reads of one credit, 35 MiB in flight; 100 streams then cost what one stream costs per byte.

Liveness: waiting is safe while the window turns (credit paid from it comes back as chunks). A
stream whose writer went quiet keeps the credit it holds, and if such streams hold the whole
window nothing comes back any more. So the driver calls :meth:`Turns.check` every
:data:`STALL_CHECK` seconds while debts wait: a check that finds no chunk arrived on window
credit since the previous one declares the window **stalled**, and until the window has room
again a dry stream is paid as before (one credit outside the window, or from its floor), so
it moves whatever the quiet streams hold. Pure: the driver owns the timer.
"""

from __future__ import annotations

#: Seconds between stall checks while debts wait: a stream held back by quiet streams' credit
#: moves again within two checks. Far above a loopback or WAN round trip (credit paid from the
#: window comes back within one), short enough that a stalled stream hardly notices.
STALL_CHECK = 0.5


class Turns:
    """Whether the connection window turns (see the module's rule)."""

    __slots__ = ("stalled", "turned", "waiting", "_seen")

    def __init__(self) -> None:
        #: Nothing came back on window credit for a whole check while debts waited: dry streams
        #: are paid outside the window again until it has room.
        self.stalled = False
        #: Chunks arrived on window (pooled) credit so far.
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
