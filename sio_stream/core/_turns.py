"""Turns: streams that wait for the connection window take it in turns, a debt at a time.

Toward a sio_stream writer (``read-size``: the reader sets the chunk size), when several streams
owe credit, a stream whose reader has read and whose turn the connection window holds back
(credit in flight and the pool's room would cover it) waits in the FIFO of debts instead of
taking one credit outside the window at once (or, with the pool full of such credit, a
floor-sized one). Its turn pays its debt in one ``$stream-read``, up to its configured window
and half the connection window, and sends it to the back of the queue. Measured with 100
uploads of 8 MiB on one connection (benchmarks/concurrency.py's row, loopback): 1,700 chunks
and ~470 reads, most of 4 credits, where immediate credit made ~2,750 chunks (1,050 of them
floor-sized, 32 KiB) and ~2,780 reads of one credit with 35 MiB in flight; both processes
spent 1.85-2.0 CPU s/GiB against 2.8, and 100 streams moved 1.1-1.6x one stream's aggregate
against 0.46-0.72x (same run, busy 2-core machine).

Liveness: waiting is safe while the window turns (credit paid from it comes back as room when
its chunks are read). Credit that arrives for a reader that stopped reading becomes held bytes:
once credit in flight and the pool's room no longer cover a turn, the waiting streams are paid
as before. A stream whose writer went quiet keeps the credit it holds, and if such streams
hold the window nothing comes back: so the driver calls :meth:`Turns.check` every
:data:`STALL_CHECK` seconds while debts wait, and a check that finds no chunk consumed on the
connection since the previous one declares the window **stalled**; until the window has room
again a dry stream is paid as before (one credit outside the window, or from its floor), so it
moves whatever the quiet streams hold. Pure: the driver owns the timer.
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
