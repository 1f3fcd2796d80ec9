"""The reading side of the core: credit granted against the memory budget, chunks arriving
within it, and data taken by the application. A mixin of :class:`~sio_stream._core.ProtocolCore`.

The rule for granting (see also :mod:`sio_stream._window`): a stream's window is opened once,
when the application starts reading; credit goes back as chunks are consumed (in quarter-window
batches toward a sio_stream peer, one read per chunk toward JavaScript), and only as far as the
connection's and the process's budgets have room: a stream that does not fit waits, oldest first.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from . import _wire as wire
from ._budget import Budget
from ._chunks import ByteQueue
from ._config import FEATURE_BATCH_READ, FEATURE_READ_SIZE, PLAIN_CREDITS, PROBE_CREDITS, CoreConfig
from ._state import ReadInput, ReadState
from ._streamcore import Outgoing, StreamCore


class _Core(Protocol):
    """What the reading methods use of the core they are mixed into."""

    config: CoreConfig
    budget: Budget
    peer_features: frozenset[str]
    starved: dict[StreamCore, None]

    def _queue(self, item: Outgoing | StreamCore) -> None: ...

    def _refuse(self, stream: StreamCore, message: str) -> str: ...

    def _arrive(
        self, stream: StreamCore, credits: int, size: int, per_item: int | None = None
    ) -> str | None: ...

    def _open_window(self, stream: StreamCore) -> None: ...

    def _credit_bytes(self, stream: StreamCore) -> int: ...

    def _grant(self, stream: StreamCore, count: int) -> None: ...

    def _credit_cap(self, stream: StreamCore) -> int | None: ...

    def _pay(self) -> None: ...

    def _stop_credit(self, stream: StreamCore, *, held: bool) -> None: ...

    def _consumed(self, stream: StreamCore) -> None: ...


class ReadingMixin:
    """The reading methods of :class:`~sio_stream._core.ProtocolCore`."""

    def _arrive(
        self: _Core, stream: StreamCore, credits: int, size: int, per_item: int | None = None
    ) -> str | None:
        """Spend ``credits`` on a chunk of ``size`` bytes: its reservation becomes held bytes;
        any excess must fit in the free room of the connection and the process. Returns the
        refusal message (the stream then failed) or ``None``."""
        assert stream.window is not None and stream.holding is not None
        outstanding = stream.window.outstanding
        if not stream.window.received(credits):
            return self._refuse(stream, f"write beyond granted credit on stream {stream.id}")
        if not stream.holding.arrive(credits, outstanding, size):
            return self._refuse(
                stream,
                f"a chunk of {size} bytes on stream {stream.id} does not fit in the memory budget "
                f"(connection holds {self.budget.held} of {self.budget.limit} bytes)",
            )
        # Reserve what the writer actually sends from now on (never above the connection's limit).
        seen = per_item if per_item is not None else size
        if seen > stream.credit_size:
            cap = self.budget.limit if stream.object_mode else self.config.max_read_chunk
            stream.credit_size = min(seen, cap)
        stream.probing = False
        if stream.parked:
            parked, stream.parked = stream.parked, 0
            self._grant(stream, parked)  # what the cap allows now; the rest stays parked
        return None

    def start_reading(self: _Core, stream: StreamCore) -> None:
        """The application wants data: grant the window (once), when the peer knows the stream."""
        stream.wants_read = True
        stream.touch()
        if stream.owner is self and stream.announced:
            self._open_window(stream)

    def _open_window(self: _Core, stream: StreamCore) -> None:
        if not stream.move_read(ReadInput.OPEN) or stream.read_state is not ReadState.READING:
            return
        assert stream.window is not None
        grant = stream.window.open()
        self._grant(stream, grant)

    def _credit_bytes(self: _Core, stream: StreamCore) -> int:
        """Bytes to reserve for one credit of ``stream``: our read size when the writer promises
        to stay within it (read-size), else the largest chunk or object seen so far."""
        if not stream.object_mode and FEATURE_READ_SIZE in self.peer_features:
            size = self.config.max_chunk
        else:
            size = stream.credit_size
        # Never more than the budget itself could hold (tiny budgets): larger chunks are then
        # checked against the free room on arrival.
        return min(size, self.budget.ceiling)

    def _grant(self: _Core, stream: StreamCore, count: int) -> None:
        """The window wants ``count`` more credits granted: they join the stream's debt, and
        debts are paid in FIFO order as far as the budget allows (see :meth:`_pay`)."""
        cap = self._credit_cap(stream)
        if cap is not None:
            assert stream.window is not None
            allowed = max(0, cap - stream.window.outstanding - stream.owed_credit)
            stream.parked += max(0, count - allowed)
            count = min(count, allowed)
        if count <= 0:
            return
        stream.owed_credit += count
        self.starved.setdefault(stream)
        self._pay()

    def _credit_cap(self: _Core, stream: StreamCore) -> int | None:
        """Most credits ``stream`` may have outstanding now, beyond its window (``None``: no cap)."""
        if FEATURE_BATCH_READ not in self.peer_features:
            return PLAIN_CREDITS
        return PROBE_CREDITS if stream.probing else None

    def _pay(self: _Core) -> None:
        """Grant owed credit, oldest debt first, as far as the connection's budget (its limit,
        its window of outstanding credit) and the process budget allow. The first stream that
        cannot be paid in full keeps its place and blocks the ones behind it (so a stream opened
        beside bulk ones gets its turn), and the connection waits for room."""
        while self.starved:
            stream = next(iter(self.starved))
            if stream.read_state is not ReadState.READING or stream.owner is not self or stream.settled:
                stream.owed_credit = 0
                del self.starved[stream]
                continue
            assert stream.window is not None and stream.holding is not None
            size = max(1, self._credit_bytes(stream))
            count = min(stream.owed_credit, self.budget.grantable() // size)
            if count <= 0 or not stream.holding.reserve(count * size):
                self.budget.wait(self, self._pay)
                return
            stream.owed_credit -= count
            stream.window.grant(count)
            if FEATURE_BATCH_READ in self.peer_features:
                self._queue(Outgoing(wire.READ, (stream.id, self.config.max_chunk, count)))
            else:
                for _ in range(count):
                    self._queue(Outgoing(wire.READ, (stream.id, self.config.max_chunk)))
            if stream.owed_credit:
                self.budget.wait(self, self._pay)
                return
            del self.starved[stream]

    def _stop_credit(self: _Core, stream: StreamCore, *, held: bool) -> None:
        """``stream`` reads no more: its debt and reservation go (and its held bytes with
        ``held``); room freed wakes the streams waiting for it."""
        stream.owed_credit = 0
        stream.parked = 0
        self.starved.pop(stream, None)
        if stream.holding is not None and stream.owner is self:
            stream.holding.release(held=held)

    def take(self: _Core, stream: StreamCore, max_bytes: int) -> Any:
        """Remove data from the inbox: up to ``max_bytes`` of the head chunk, or one object.

        The caller checks that the inbox is not empty. A chunk used up grants one credit back.
        """
        stream.touch()
        if stream.object_mode:
            assert isinstance(stream.inbox, deque)
            value = stream.inbox.popleft()
            size = stream.inbox_sizes.popleft() if stream.inbox_sizes else 0
            done = True
        else:
            assert isinstance(stream.inbox, ByteQueue)
            value, done = stream.inbox.take_head(max_bytes)
            size = len(value)
        if stream.holding is not None and stream.owner is self:
            stream.holding.take(size)
        if done:
            self._consumed(stream)
        return value

    def _consumed(self: _Core, stream: StreamCore) -> None:
        assert stream.window is not None
        stream.window.consumed()
        if stream.read_state is not ReadState.READING or stream.owner is not self:
            return
        if FEATURE_BATCH_READ in self.peer_features:
            # Toward a sio_stream peer, grant in batches of a quarter window: one packet instead of
            # several, while at least three quarters of the window stay in flight. (Half-window
            # batches let the in-flight data drop to half a window before each refill: 0.85-0.93x
            # of raw python-socketio at 20 ms RTT, against 0.95-0.96x with quarter batches.)
            stream.owed_reads += 1
            if stream.owed_reads * 4 >= stream.window.size:
                self._grant(stream, stream.owed_reads)
                stream.owed_reads = 0
        else:
            self._grant(stream, 1)
