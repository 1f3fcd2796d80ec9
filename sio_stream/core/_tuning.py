"""Read windows that tune themselves to the link: the round trip seen in the credit loop, and
the rule that grows a window, to what the link carries, while it, not the link or the reader,
limits the stream.

Round trip, without an extra packet: each grant of credit is stamped; when the chunk that used
the last credit of a grant arrives, the time since the grant is one sample. Samples include
the writer's own delays and the link's queue, so the estimate is their minimum (as BBR's
min_rtt): the round trip of an empty pipe.

Growth (quic-go's and quiche's rule, in chunks, sized from the drain): every time the reader
has consumed a whole window since the last decision, it looks at how long that took. Under two
round trips, data came as fast as credit went out: the window is the limit, and it grows to
twice the chunks the link would carry in a round trip at the rate the window drained (the
fastest from its first chunk over at least half of it: a window granted at once arrives as a
burst at the link's rate; grpc-go's BDP estimate doubles its sample too), and at least
fourfold, up to the cap. Otherwise the link or the reader is the limit and the window stays.
Measured (benchmarks/ramp.py, 100 MB/s at 150 ms): fourfold growth alone went 2 -> 8 -> 32 MiB
in two decisions of 1.2-1.5 round trips each; the first window's burst (2 MiB in about 20 ms)
sizes it to 25-32 MiB in one. A window settles between one and four bandwidth-delay products,
or at the cap (the cap bounds memory; a window beyond what the link needs costs reserved
credit, not held bytes, while the reader keeps up). The chunk that opens a window (the
floor's, a round trip before the window's) starts the count and is not in it. A reader slower
than the link drains its window at its own pace: that is the rate measured, and past two round
trips nothing grows.

Pressure: growth needs the process account below half its limit; above it a grown window
shrinks back, one consumed chunk at a time, to its configured size (see
:meth:`sio_stream.core._window.ReadWindow.consumed`). Pure: the caller passes the time.
"""

from __future__ import annotations

import math
from collections import deque

from ._window import GROWTH

#: What a measured bandwidth-delay product is multiplied by to size a window: a window refilled
#: in quarter batches keeps three quarters of itself in flight, and a busy link's queue
#: lengthens the round trip a stream sees (grpc-go's BDP estimator also doubles its sample).
HEADROOM = 2
#: A window drained in no measurable time (a simulated clock): as large as the cap allows.
_MOST = 1 << 40


class RoundTrip:
    """The smallest time from granting credit to the arrival of the chunk that used it."""

    __slots__ = ("_grants", "_granted", "_arrived", "seconds")

    def __init__(self) -> None:
        self._grants: deque[tuple[int, float]] = deque()  # (credits granted so far, when)
        self._granted = 0
        self._arrived = 0
        self.seconds = math.inf

    def granted(self, count: int, now: float) -> None:
        self._granted += count
        self._grants.append((self._granted, now))

    def unstamped(self, count: int) -> None:
        """``count`` credits were granted at no time we know (initial credit, which the writer
        took before the reader knew the stream): their chunks are counted, never sampled. A
        stamp at the stream's decoding made the burst's first chunks after the next grant look
        like a round trip of a few milliseconds, and the window never grew."""
        self._granted += count

    def arrived(self, count: int, now: float) -> None:
        self._arrived += count
        while self._grants and self._grants[0][0] <= self._arrived:
            _, when = self._grants.popleft()
            self.seconds = min(self.seconds, now - when)


class Tuner:
    """One window's growth decisions: counts the chunks consumed since the last decision, and
    the fastest rate they came at (see :meth:`grow`)."""

    __slots__ = ("round_trip", "_since", "_started", "_first", "_rate")

    def __init__(self) -> None:
        self.round_trip = RoundTrip()
        self._since = 0
        self._started: float | None = None  # the last decision (or the window's opening)
        self._first: float | None = None  # the first chunk consumed since then
        self._rate = 0.0  # chunks per second, the fastest over half the window or more

    def grow(self, size: int, now: float, round_trip: float | None = None, *, opening: bool = False) -> int:
        """One chunk was consumed from a window of ``size`` chunks: the size the window should
        grow to (at least ``size * GROWTH``, see the module's rule), or 0 to keep it.

        The rate is the fastest from the first chunk counted to any later one at least half the
        window away: one late chunk at a window's end (a writer's pause, a busy machine) cut a
        150 ms link's first decision from 60 chunks to 20. With ``opening``, the chunk opened
        the window to its size (the floor's): it starts the count and is not in it, since it
        came a round trip before the window's and would make the burst look slow."""
        if opening or self._started is None:
            self._restart(now)
            return 0
        if self._first is None:
            self._first = now
        self._since += 1
        gaps = self._since - 1
        if gaps and 2 * gaps >= size - 1:
            spent = now - self._first
            self._rate = max(self._rate, gaps / spent if spent > 0 else math.inf)
        if self._since < size:
            return 0
        elapsed, rate = now - self._started, self._rate
        self._restart(now)
        rtt = self.round_trip.seconds if round_trip is None else round_trip
        if not elapsed < 2 * rtt:
            return 0
        if not math.isfinite(rtt) or not rate:
            return size * GROWTH  # no round trip measured yet, or a window of one chunk
        # Chunks a round trip carries at that rate: the link's bandwidth-delay product, or the
        # reader's pace (twice, and a bound for a rate measured in no time: a simulated clock).
        wanted = HEADROOM * rate * rtt
        return max(size * GROWTH, math.ceil(min(wanted, _MOST)))

    def _restart(self, now: float) -> None:
        self._started, self._first, self._since, self._rate = now, None, 0, 0.0
