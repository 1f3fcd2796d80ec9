"""Credit-window flow control. The unit of credit is one chunk (one ``$stream-write``).

A reader grants credit with ``$stream-read``; a writer spends one credit per chunk. Chunk
size is bounded separately (the writer's maximum chunk, the receiver's message limit), so a
reader's memory is bounded by ``window`` chunks.

A writer bounds the credit it accepts per stream (:class:`CreditLimit`): credit is what lets
it hand data to the transport, and a reader's window never needs more. Between two peers that
announced ``credit-limit`` the bound is the writer's, in bytes, told in its hello, and the
reader keeps its windows within it; credit beyond it is a protocol violation. Toward other
peers it is ``max_credit`` chunks, beyond which a sio_stream reader is in violation too, and a
JavaScript one (which never grants more than two) is clamped.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any

from ._wire import positive_ints

#: What a window's size is multiplied by at least when it grows (see sio_stream.core._tuning).
GROWTH = 4


class ReadWindow:
    """The reading side's window: how many chunks it has asked for and holds.

    Rule for granting: :meth:`open` grants what the stream's floor holds (one chunk of bytes,
    or as many small objects as fit), when the application starts reading; the first chunk
    :meth:`consumed` opens the rest of the window (``size``), and after that each chunk consumed
    gives its credit back (:meth:`grow` opens what the window grew by at once). A stream nobody
    writes to, or whose reader never reads, so keeps one credit outstanding: it holds no window
    it does not use (toward a JavaScript writer exactly
    one read per chunk: it remembers surplus reads only as "one pending read", so a reader
    that waited to refill in batches would deadlock against it). :meth:`grant` records credit
    actually sent, so ``outstanding`` never counts credit the reader still holds back.
    Invariant: ``outstanding + buffered <= current <= size``.
    """

    __slots__ = ("size", "base", "current", "outstanding", "buffered", "opened", "proven", "consumed_total")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a read window holds at least one chunk")
        self.size = size  # what the window grows to (see sio_stream.core._tuning)
        self.base = size  # the configured size, where a grown window shrinks back to
        self.current = 1  # the window reached so far (grows to size)
        self.outstanding = 0  # granted, not yet arrived
        self.buffered = 0  # arrived, not yet consumed
        self.opened = False
        #: The application consumed a chunk: the stream reads, it is not just waiting for data.
        self.proven = False
        #: Chunks the application consumed so far (told to a writer that announced ``consumed``).
        self.consumed_total = 0

    @property
    def dry(self) -> bool:
        """Nothing granted is outstanding or unread: the peer cannot send us anything."""
        return self.outstanding == 0 and self.buffered == 0

    def open(self, initial: int = 1) -> int:
        """Start reading with a window of ``initial`` credits (at most ``size``): the number of
        credits to grant now (0 if already open)."""
        if self.opened:
            return 0
        self.opened = True
        self.current = max(1, min(self.size, initial))
        return max(0, self.current - self.outstanding - self.buffered)

    def grant(self, count: int) -> None:
        """``count`` credits were put on the wire."""
        self.outstanding += count

    def received(self, count: int = 1) -> bool:
        """``count`` chunks arrived. False when they came without credit (a protocol violation)."""
        if self.outstanding < count:
            return False
        self.outstanding -= count
        self.buffered += count
        return True

    def consumed(self, shrink: bool = False) -> int:
        """The application finished one chunk: the credits to grant back (its own, and one
        more while the window grows). With ``shrink`` (memory pressure) a window grown beyond
        its configured size keeps the chunk's credit instead, and shrinks by one."""
        self.buffered -= 1
        self.consumed_total += 1
        self.proven = True
        if shrink and self.current > self.base:
            self.current -= 1
            self.size = max(self.base, self.current)
            return 0
        if self.current < self.size:
            # The reader keeps up: open what the window may hold at once (one round trip, where
            # TCP's slow start takes log2(size)).
            more = self.size - self.current
            self.current = self.size
            return 1 + more
        return 1

    def grow(self, cap: int, wanted: int) -> int:
        """The window grows to ``wanted`` chunks (see :mod:`sio_stream.core._tuning`), at most
        ``cap``, and opens to it at once: the credits to grant now (0 when it did not grow)."""
        wanted = min(cap, wanted)
        if wanted <= self.size:
            return 0
        self.size = wanted
        more = max(0, self.size - self.current)
        self.current = self.size
        return more


@dataclass(frozen=True)
class CreditLimit:
    """The most unused credit a writer accepts per stream: ``bytes`` for a byte stream (credits
    times the chunk each lets it send), ``objects`` for an object-mode stream. Sent in the hello
    as ``{"bytes": ..., "objects": ...}`` (negotiated ``credit-limit``)."""

    bytes: int
    objects: int

    def to_wire(self) -> dict[str, int]:
        return {"bytes": self.bytes, "objects": self.objects}

    @classmethod
    def from_wire(cls, value: Any) -> CreditLimit | None:
        """The peer's announced limit, ``None`` when malformed (the peer is then held to the
        plain ``max_credit`` count instead)."""
        numbers = positive_ints(value, "bytes", "objects")
        return None if numbers is None else cls(*numbers)

    def writer_credits(self, object_mode: bool, chunk: int) -> int:
        """Credits a writer accepts when each lets it send ``chunk`` bytes (at least one)."""
        return self.objects if object_mode else max(1, self.bytes // max(1, chunk))

    def reader_credits(self, object_mode: bool, read_size: int) -> int:
        """Credits a reader whose reads ask for at most ``read_size`` bytes keeps outstanding."""
        return self.writer_credits(object_mode, read_size)


class WriteCredit:
    """The writing side's view: credits the peer granted and chunks not yet acknowledged.

    Credits above ``limit`` are dropped (:meth:`granted` says so, and the core decides whether
    that fails the stream), so a peer flooding ``$stream-read`` cannot make the writer put more
    than ``limit`` chunks on the wire ahead of the reader. Toward a reader that
    announced ``consumed``, ``consumed`` is what it reported its application consumed: never
    more than ``spent`` and never less than before (see :meth:`reported`).
    """

    __slots__ = ("available", "unacked", "limit", "spent", "consumed")

    def __init__(self, limit: int) -> None:
        self.available = 0
        self.unacked = 0
        self.limit = limit
        self.spent = 0  # credits used so far (one per chunk, one per object of a batch)
        self.consumed = 0

    def spend(self, count: int) -> None:
        """``count`` credits went into one ``$stream-write``."""
        self.available -= count
        self.spent += count

    def reported(self, consumed: object) -> str | None:
        """The reader says its application consumed ``consumed`` credits so far: ``None`` when
        that is an integer between the last report and what was sent, else why it is not (the
        stream then fails: a reader that lies about consumption would make progress lie)."""
        if isinstance(consumed, bool) or not isinstance(consumed, int):
            return f"bad consumed count: {reprlib.repr(consumed)}"
        if consumed < self.consumed:
            return f"consumed count went backwards: {consumed} after {self.consumed}"
        if consumed > self.spent:
            return f"consumed count {consumed} beyond the {self.spent} chunks sent"
        self.consumed = consumed
        return None

    def granted(self, count: int = 1) -> bool:
        """The peer granted ``count`` more chunks: False when that went beyond ``limit`` (what
        is beyond is dropped)."""
        total = self.available + count
        self.available = min(total, self.limit)
        return total <= self.limit

    def acknowledged(self) -> None:
        """The peer acknowledged one chunk."""
        self.unacked = max(0, self.unacked - 1)
