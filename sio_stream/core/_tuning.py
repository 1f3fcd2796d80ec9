"""Read windows that tune themselves to the link: the round trip seen in the credit loop, and
the rule that quadruples a window while it, not the link or the reader, limits the stream.

Round trip, without an extra packet: each grant of credit is stamped; when the chunk that used
the last credit of a grant arrives, the time since the grant is one sample. Samples include
the writer's own delays and the link's queue, so the estimate is their minimum (as BBR's
min_rtt): the round trip of an empty pipe.

Growth (quic-go's and quiche's rule, in chunks, with a faster step): every time the reader has
consumed a whole window since the last decision, it looks at how long that took. Under two
round trips, data came as fast as credit went out: the window is the limit, so its size grows
fourfold, up to the cap. Otherwise the link or the reader is the limit and the window stays.
Fourfold, not twofold: a decision needs a whole window to come back, about 1.2-1.5 round trips,
so doubling took 560 ms to go from 2 to 16 MiB on a 150 ms link, where a transfer of three
bandwidth-delay products lasts about a second (benchmarks/links.py). A window settles between
one and four bandwidth-delay products, or at the cap (the cap bounds memory; a window beyond
what the link needs costs reserved credit, not held bytes, while the reader keeps up). On
loopback a window drains in far more than two (tiny) round trips, so it does not grow there.

Pressure: growth needs the process account below half its limit; above it a grown window
shrinks back, one consumed chunk at a time, to its configured size (see
:meth:`sio_stream.core._window.ReadWindow.consumed`). Pure: the caller passes the time.
"""

from __future__ import annotations

import math
from collections import deque


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

    def arrived(self, count: int, now: float) -> None:
        self._arrived += count
        while self._grants and self._grants[0][0] <= self._arrived:
            _, when = self._grants.popleft()
            self.seconds = min(self.seconds, now - when)


class Tuner:
    """One stream's growth decisions: counts the chunks consumed since the last decision."""

    __slots__ = ("round_trip", "_since", "_started")

    def __init__(self) -> None:
        self.round_trip = RoundTrip()
        self._since = 0
        self._started: float | None = None

    def grow(self, size: int, now: float, round_trip: float | None = None) -> bool:
        """One chunk was consumed from a window of ``size`` chunks: True when the window should
        grow (a whole window went through in under two round trips)."""
        if self._started is None:
            self._started = now
        self._since += 1
        if self._since < size:
            return False
        elapsed = now - self._started
        self._since = 0
        self._started = now
        rtt = self.round_trip.seconds if round_trip is None else round_trip
        return elapsed < 2 * rtt
