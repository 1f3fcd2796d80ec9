"""The reading side of the core: credit granted against the memory budget, chunks arriving
within it, and data taken by the application. A mixin of :class:`~sio_stream.core._core.ProtocolCore`.

The rule for granting (see also :mod:`sio_stream.core._window` and :mod:`sio_stream.core._budget`): a
stream's window opens with one credit when the application starts reading and grows as chunks
are consumed; credit goes back as chunks are consumed (in quarter-window batches toward a
sio_stream peer, one read per chunk toward JavaScript). Credit is paid from two sources:

* a stream that is **dry** (nothing outstanding, nothing unread) and was not paid from the
  pool gets credit from its own floor (one chunk, or the small objects that fit), whatever its
  place in the queue and whatever the others hold: a stream whose reader reads always moves
  (toward a sio_stream writer the credit asks for chunks of at most the floor's size; a
  JavaScript writer's larger chunk must fit in the free room on arrival). A dry stream whose
  reader has read gets that one credit in full when the pool has room, outside the connection
  window: many streams then move full chunks, not floor-sized ones;
* the connection's shared pool pays streams whose reader consumed a chunk (a stream that only
  waits for data never takes from it), oldest debt first, as far as the connection window,
  the limit and the process budget allow; the first stream that cannot be paid keeps its place
  and the ones behind it wait (they still get their floors).

Toward a writer that announced ``final-size`` (it says what is left once its stream was ended),
a dry stream whose reader has read waits for its turn when only the connection window is short,
and is then paid its debt in one batch, sized to what is left (see :mod:`sio_stream.core._turns`,
which also says how a window held by quiet streams is detected, after which the rule above
applies again).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from . import _wire as wire
from ._budget import Budget
from ._chunks import ByteQueue
from ._config import (
    CONSUMED_KEY,
    FEATURE_BATCH_READ,
    FEATURE_CLAIM,
    FEATURE_CONSUMED,
    FEATURE_FINAL_SIZE,
    FEATURE_READ_SIZE,
    FEATURE_WINDOW_GROWTH,
    PLAIN_CREDITS,
    PROBE_CREDITS,
    RECEIVED_KEY,
    CoreConfig,
)
from ._progress import progress_due
from ._state import ReadInput, ReadState
from ._streamcore import Outgoing, StreamCore
from ._tuning import Tuner
from ._turns import Turns, turn_credits, turn_size
from ._window import CreditLimit


class _Core(Protocol):
    """What the reading methods use of the core they are mixed into."""

    config: CoreConfig
    budget: Budget
    peer_features: frozenset[str]
    peer_credit_limit: CreditLimit | None
    starved: dict[StreamCore, None]
    floor_due: dict[StreamCore, None]
    grown: dict[StreamCore, int]
    reached: int
    window_tuner: Tuner
    window_tuned: int
    turns: Turns
    turn_waiters: dict[StreamCore, None]
    on_turn_wait: Callable[[], None]
    streams: dict[str, StreamCore]
    suspended: bool

    @property
    def resumable(self) -> bool: ...

    def _queue(self, item: Outgoing | StreamCore) -> None: ...

    def _refuse(self, stream: StreamCore, message: str) -> str: ...

    def _arrive(
        self, stream: StreamCore, credits: int, size: int, per_item: int | None = None
    ) -> str | None: ...

    def _open_window(self, stream: StreamCore) -> None: ...

    def _credit_bytes(self, stream: StreamCore) -> int: ...

    def _grant(self, stream: StreamCore, count: int) -> bool: ...

    def _credit_cap(self, stream: StreamCore) -> int | None: ...

    def _sized(self, stream: StreamCore) -> bool: ...

    def _may_grow(self, stream: StreamCore) -> bool: ...

    def _pay(self) -> None: ...

    def _due_floor(self, stream: StreamCore) -> None: ...

    def _fit_connection_window(self, stream: StreamCore, size: int) -> None: ...

    def _tune_connection_window(self, stream: StreamCore, size: int) -> None: ...

    def _reads_alone(self, stream: StreamCore) -> bool: ...

    def _pay_pooled(self, stream: StreamCore, size: int) -> None: ...

    def _floor_credit_bytes(self, stream: StreamCore) -> int: ...

    def _pay_floor(self, stream: StreamCore) -> None: ...

    def _turn(self, stream: StreamCore, size: int) -> int: ...

    def _take_turn(self, stream: StreamCore, turn: int, size: int) -> bool | None: ...

    def _covered(self, stream: StreamCore) -> bool: ...

    def _behind_turn(self, stream: StreamCore) -> bool: ...

    def _turns_may_fail(self, room: int | None = None) -> bool: ...

    def _wait_turn(self, stream: StreamCore) -> None: ...

    def _send_credit(self, stream: StreamCore, count: int, size: int) -> None: ...

    def _queue_reads(self, stream: StreamCore, count: int, read_size: int) -> None: ...

    def _stop_credit(self, stream: StreamCore, *, held: bool) -> None: ...

    def _consumed(self, stream: StreamCore) -> None: ...

    def _returned(self, stream: StreamCore) -> None: ...


class ReadingMixin:
    """The reading methods of :class:`~sio_stream.core._core.ProtocolCore`."""

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
        stream.tuner.round_trip.arrived(credits, self.config.clock())
        holding = stream.holding
        pooled = holding.reserved - holding.floor_reserved
        if not holding.arrive(credits, outstanding, size):
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
        if self.turn_waiters and holding.reserved - holding.floor_reserved < pooled:
            # Credit from the pool arrived: the streams waiting for their turn look again once
            # the room covers the first one's turn (the rule the budget wakes them by: 100
            # streams on a connection made a pass at each of 3,300 chunks, and the room covered
            # a turn at 12 of them), or at once when turns may fail (the credit becomes held
            # bytes if its reader stopped reading). One room check answers both.
            budget = self.budget
            room = budget.grantable(window=False)
            if budget.windowed(room) + budget.floor >= budget.wanted or self._turns_may_fail(room):
                self._pay()
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
        if stream.window.opened:
            # Open already: nothing to grant. The reader comes here each time it waits for data
            # (about once per chunk), and sizing a floor's credit for nothing was a third of
            # what the budget's ceiling cost per chunk with 100 streams.
            return
        per_credit = self._floor_credit_bytes(stream)
        grant = stream.window.open(max(1, self.budget.floor // per_credit))
        self._grant(stream, grant)

    def _credit_bytes(self: _Core, stream: StreamCore) -> int:
        """Bytes to reserve for one credit of ``stream``: our read size when the writer promises
        to stay within it (read-size), else the largest chunk or object seen so far."""
        size = stream.credit_size
        if self._sized(stream):
            # No larger than what the writer said is left, once it ended (see _turns.py).
            size = turn_size(self.config.max_chunk, stream.peer_left)
        # Never more than the budget itself could hold (tiny budgets): larger chunks are then
        # checked against the free room on arrival.
        return max(1, min(size, self.budget.ceiling))

    def _sized(self: _Core, stream: StreamCore) -> bool:
        """The writer sends no chunk larger than our last read's size (read-size)."""
        return not stream.object_mode and FEATURE_READ_SIZE in self.peer_features

    def _may_grow(self: _Core, stream: StreamCore) -> bool:
        """A byte stream's window may grow toward a writer that takes credit as a limit only."""
        return (
            not stream.object_mode
            and FEATURE_WINDOW_GROWTH in self.peer_features
            and FEATURE_BATCH_READ in self.peer_features
        )

    def _grant(self: _Core, stream: StreamCore, count: int) -> bool:
        """The window wants ``count`` more credits granted: they join the stream's debt, and
        debts are paid in FIFO order as far as the budget allows (see :meth:`_pay`). True when
        a pass ran for them."""
        cap = self._credit_cap(stream)
        if cap is not None:
            assert stream.window is not None
            allowed = max(0, cap - stream.window.outstanding - stream.owed_credit)
            stream.parked += max(0, count - allowed)
            count = min(count, allowed)
        if count > 0:
            stream.owed_credit += count
            self.starved.setdefault(stream)
        if stream.owed_credit:
            self._due_floor(stream)
            if count > 0 and not self._behind_turn(stream):
                self._pay()
                return True
        return False

    def _due_floor(self: _Core, stream: StreamCore) -> None:
        """Note a starved stream its floor may pay (it is dry, or its writer's chunk size is not
        ours to set). A stream becomes dry only as its reader consumes (:meth:`_consumed`,
        :meth:`_returned`), and both come here: so a pass need not visit every starved stream."""
        assert stream.window is not None
        if stream.window.dry or not self._sized(stream):
            self.floor_due.setdefault(stream)

    def _credit_cap(self: _Core, stream: StreamCore) -> int | None:
        """Most credits ``stream`` may have outstanding now, beyond its window (``None``: no cap):
        within the peer writer's announced credit-limit too (its limit assumes our max_chunk)."""
        if FEATURE_BATCH_READ not in self.peer_features:
            return PLAIN_CREDITS
        cap = PROBE_CREDITS if stream.probing else None
        if self.peer_credit_limit is not None:
            limit = self.peer_credit_limit.reader_credits(stream.object_mode, self.config.max_chunk)
            cap = limit if cap is None else min(cap, limit)
        return cap

    def _pay(self: _Core) -> None:
        """Grant owed credit (see the module's rule): the shared pool, oldest debt first, up to
        the first stream it cannot pay; then the floors of the streams in ``floor_due``. Waits
        for room while any debt is left.

        A pass costs what it pays, not the number of starved streams: the streams behind the
        first one the pool cannot pay are visited only where a floor may pay them (with 100
        streams on a connection, visiting them all on every chunk consumed cost a third of the
        server's time). The outcome is that of visiting them all: a floor pays only a dry
        stream, or one whose writer's chunk size is not ours to set, and :meth:`_due_floor`
        notes both."""
        short = False
        wanted = 1
        gone: list[StreamCore] = []
        rotate: list[StreamCore] = []
        if self.turn_waiters and self._turns_may_fail():
            # Their turns may never come: each is looked at again (below), and paid as before
            # (its floor, or one credit outside the window) where waiting is not safe.
            self.floor_due.update(self.turn_waiters)
            self.turn_waiters.clear()
        for stream in self.starved:
            if stream.read_state is not ReadState.READING or stream.owner is not self or stream.settled:
                gone.append(stream)
                continue
            assert stream.window is not None
            # Sized once for the pass: its turn, the room the turn waits for and the pool's
            # credit (sized three times, with 100 streams a pass cost 1.4 sizings per chunk).
            size = self._credit_bytes(stream) if stream.window.proven else 0
            turn = self._turn(stream, size) if size else 0
            if turn and self._covered(stream):
                continue  # what its writer has left is granted: nothing to wait for
            taken = self._take_turn(stream, turn, size) if turn else None
            if taken:
                self.turn_waiters.pop(stream, None)
                (rotate if stream.owed_credit else gone).append(stream)  # the others go first
                continue
            if taken is False:
                # Waits for its whole turn (a part now would be a read per credit), and the
                # streams behind it with it; no floor pays it while the window turns. Credit
                # that comes back wakes it (_arrive), and room for less than its turn does not.
                if stream.window.dry:
                    self._wait_turn(stream)
                    self.floor_due.pop(stream, None)
                wanted = turn * size
                break
            if size:
                self._pay_pooled(stream, size)
            if stream.owed_credit:
                self._pay_floor(stream)
            if not stream.owed_credit:
                gone.append(stream)
            elif stream.window.proven:
                # Only a stream the pool could have paid keeps the others behind it waiting.
                short = short or stream.window.dry
                break
            else:
                short = short or stream.window.dry
        for stream in gone:
            stream.owed_credit = 0
            del self.starved[stream]
            self.floor_due.pop(stream, None)
            self.turn_waiters.pop(stream, None)
        for stream in rotate:
            del self.starved[stream]
            self.starved[stream] = None
        for stream in list(self.floor_due):
            if stream not in self.starved:
                del self.floor_due[stream]
                continue
            if stream.read_state is not ReadState.READING or stream.owner is not self or stream.settled:
                stream.owed_credit = 0
                del self.starved[stream], self.floor_due[stream]
                continue
            assert stream.window is not None
            size = self._credit_bytes(stream) if stream.window.proven and stream.window.dry else 0
            turn = self._turn(stream, size) if size else 0
            if turn and self._take_turn(stream, turn, size) is False:
                # Its turn comes as the window turns (see _turns.py): no floor pays it.
                del self.floor_due[stream]
                self._wait_turn(stream)
                continue
            self._pay_floor(stream)
            if not stream.owed_credit:
                del self.starved[stream], self.floor_due[stream]
            elif stream.window.dry:
                short = True
            elif self._sized(stream):
                del self.floor_due[stream]  # not dry: no floor pays it until it is dry again
        # Room freed wakes us when the pool has some, or, with a floor unpaid, any room at all.
        self.budget.floor_short = short
        self.budget.wanted = wanted
        if self.starved and not self.suspended:
            # A suspended session is not woken by room freed elsewhere (its peer could not use
            # credit before it comes back): its debts are paid at the resume (apply_resume).
            self.budget.wait(self, self._pay)
        if self.turn_waiters:
            if self.turns.start():
                self.on_turn_wait()
        elif self.turns.waiting and not self.starved:
            # The checks go on while debts wait, so that a stalled window stays stalled (turns
            # that began again would wait for the next check every time).
            self.turns.stop()

    def check_turns(self: _Core) -> bool:
        """One stall check (the glue calls it every ``STALL_CHECK`` seconds after
        :attr:`on_turn_wait`, while it returns True): a window that stopped turning while debts
        wait is stalled, and dry streams are paid outside it again (see _turns.py)."""
        if self.turns.check():
            self.floor_due.update(self.turn_waiters)
            self.turn_waiters.clear()
            for stream in self.starved:
                self._due_floor(stream)
            self._pay()
        return self.turns.waiting

    def _turn(self: _Core, stream: StreamCore, size: int) -> int:
        """Credits of ``size`` bytes (its :meth:`_credit_bytes`) ``stream`` is paid on its turn
        (see _turns.py), or 0 when it takes no turns: its writer did not announce
        ``final-size``, it is the only stream owed credit (it takes what the window has), the
        window stalled, or the link is long for the window."""
        if (
            len(self.starved) < 2
            or self.turns.stalled
            or FEATURE_FINAL_SIZE not in self.peer_features
            or not self._sized(stream)
        ):
            return 0
        assert stream.window is not None
        return turn_credits(
            stream.owed_credit, stream.window.base, self.budget.window, size, stream.peer_left
        )

    def _take_turn(self: _Core, stream: StreamCore, turn: int, size: int) -> bool | None:
        """Pay ``stream``'s whole turn of ``turn`` credits of ``size`` bytes from the pool (and
        its unused floor), topping up credit still outstanding to a larger read size (its next
        read's size applies to every credit it holds): True. Otherwise False when the turn will
        fit once the credit in flight from the pool comes back (it waits: held bytes come back
        only if their readers read, so they do not count), ``None`` when it will not (the
        budget, not the window, is short). One function, since a busy connection asks it on
        every chunk consumed; one room check answers both questions (two were a quarter of the
        room checks per chunk with 100 streams)."""
        assert stream.window is not None and stream.holding is not None
        needed = turn * size
        top_up = stream.window.outstanding * max(0, size - stream.grant_size)
        budget = self.budget
        floor_room = stream.holding.floor_room
        room = budget.grantable(window=False)
        if min(budget.windowed(room) + floor_room, budget.free) >= needed + top_up:
            if stream.holding.reserve(needed + top_up):
                self._send_credit(stream, turn, size)
                return True
            return None
        if room + floor_room + budget.pooled >= needed:
            return False
        return None

    def _covered(self: _Core, stream: StreamCore) -> bool:
        """``stream`` has credit outstanding for all its writer said is left (a dry one never
        is: it always gets a credit, whatever its writer said)."""
        assert stream.window is not None
        left = stream.peer_left
        outstanding = stream.window.outstanding
        return left is not None and outstanding > 0 and outstanding * stream.grant_size >= left

    def _behind_turn(self: _Core, stream: StreamCore) -> bool:
        """A pass for ``stream``'s new debt would pay nothing: the first stream owed credit waits
        for a turn the room does not cover yet (the rule the budget wakes passes by), and
        ``stream`` still has credit outstanding toward a read-size writer (no floor pays it, and
        the pool pays it only after that turn). A chunk consumed then cost a pass that looked at
        two turns and paid none (100 streams on a connection: three chunks in four)."""
        assert stream.window is not None
        budget = self.budget
        if not (
            self.turn_waiters
            and not self.turns.stalled
            and not budget.floor_short
            and not stream.window.dry
            and self._sized(stream)
            and next(iter(self.starved), None) in self.turn_waiters
        ):
            return False
        room = budget.grantable(window=False)  # once for both questions
        return budget.windowed(room) + budget.floor < budget.wanted and not self._turns_may_fail(room)

    def _turns_may_fail(self: _Core, room: int | None = None) -> bool:
        """Credit in flight and the pool's room no longer cover a turn of half the window: the
        waiting streams must be looked at again (credit that arrived for readers that do not
        read became held bytes). ``room``: ``grantable(window=False)`` when the caller has it."""
        budget = self.budget
        if room is None:
            room = budget.grantable(window=False)
        return room + budget.pooled < (budget.window or 0) // 2

    def _pay_pooled(self: _Core, stream: StreamCore, size: int) -> None:
        """As many owed credits of full ``size`` (:meth:`_credit_bytes`) as the shared pool (and
        the stream's unused floor) can reserve; toward a read-size writer, credit still
        outstanding is topped up to that size too, since its next read's size applies to every
        credit it holds."""
        assert stream.window is not None and stream.holding is not None
        top_up = 0
        if self._sized(stream) and stream.grant_size < size:
            top_up = stream.window.outstanding * (size - stream.grant_size)
        holding = stream.holding
        room = min(self.budget.grantable() + holding.floor_room, self.budget.free) - top_up
        count = min(stream.owed_credit, room // size)
        if count > 0 and holding.reserve(count * size + top_up):
            self._send_credit(stream, count, size)

    def _floor_credit_bytes(self: _Core, stream: StreamCore) -> int:
        """Bytes reserved per credit paid from a floor: the usual reservation, cut to the floor
        (toward a read-size writer that is also the size its read asks for)."""
        size = self._credit_bytes(stream)
        return min(size, self.budget.floor) if self.budget.floor else size

    def _pay_floor(self: _Core, stream: StreamCore) -> None:
        """Credit from the stream's floor: as many owed credits as fit in its unused room (one
        chunk of bytes, or several small objects), and one at least when the stream is dry. A
        JavaScript writer's chunk larger than that needs free room when it arrives. Toward a
        read-size writer only a dry stream is paid this way (a smaller read would shrink the
        chunks of the credit it still holds)."""
        assert stream.holding is not None and stream.window is not None
        dry = stream.window.dry
        if not dry and (self._sized(stream) or not stream.holding.floor_room):
            return  # the common case in a busy pass: nothing to pay, decided cheaply
        full = self._credit_bytes(stream)
        if dry and stream.window.proven and stream.holding.reserve(full, window=False):
            # A reader that reads gets its one credit outside the connection window in full,
            # its floor plus the pool's room (the window schedules; this keeps many streams at
            # full-size chunks instead of floor-sized ones while the window is busy).
            self._send_credit(stream, 1, full)
            return
        size = self._floor_credit_bytes(stream)
        count = min(stream.owed_credit, stream.holding.floor_room // size)
        if stream.window.dry:
            count = max(1, count)
        elif self._sized(stream):
            count = 0
        if count and stream.holding.reserve(count * size):
            self._send_credit(stream, count, size)

    def _send_credit(self: _Core, stream: StreamCore, count: int, size: int) -> None:
        """``count`` credits of ``size`` bytes each were reserved: put them on the wire."""
        assert stream.window is not None
        stream.owed_credit -= count
        stream.window.grant(count)
        stream.tuner.round_trip.granted(count, self.config.clock())
        read_size = self.config.max_chunk
        if self._sized(stream):
            stream.grant_size = read_size = size
        self._queue_reads(stream, count, read_size)

    def _queue_reads(self: _Core, stream: StreamCore, count: int, read_size: int) -> None:
        """Queue the ``$stream-read`` events that grant ``count`` credits of ``read_size``."""
        assert stream.window is not None
        if FEATURE_BATCH_READ in self.peer_features:
            if FEATURE_CONSUMED in self.peer_features or self.resumable:
                # What the application consumed so far, so that the writer never reads credit
                # as consumption (the first grant is one credit, the next a whole window); with
                # negotiated resume, what arrived (the writer drops what it kept of it).
                report: dict[str, int] = {}
                if FEATURE_CONSUMED in self.peer_features:
                    report[CONSUMED_KEY] = stream.window.consumed_total
                if self.resumable:
                    report[RECEIVED_KEY] = stream.told_received = stream.received_units
                self._queue(Outgoing(wire.READ, (stream.id, read_size, count, report)))
            else:
                self._queue(Outgoing(wire.READ, (stream.id, read_size, count)))
        else:
            for _ in range(count):
                self._queue(Outgoing(wire.READ, (stream.id, read_size)))

    def _wait_turn(self: _Core, stream: StreamCore) -> None:
        """``stream`` (dry) waits for its turn. With negotiated ``resume`` its writer keeps every
        byte our last read did not say we received (see _resume.py): until its turn that was all
        its previous turn moved, so 100 streams on a connection held a window each at the
        writer (100 x 8 MiB uploads: 196 MiB retained at its peak, a fresh page fault every
        4 KiB as the writer's heap grew, +0.3-0.4 CPU s/GiB at the writer). A read of 0 credits
        says what arrived without granting any (a writer takes it as a claim, after applying
        its ``received``): once per wait, and only when a chunk's worth or more arrived since
        the last read (what a stream waiting after its first, floor-sized chunk leaves kept is
        not worth a packet: a quarter of these reads were for 32 KiB)."""
        self.turn_waiters[stream] = None
        if (
            stream.received_units - stream.told_received >= self.config.max_chunk
            and self.resumable
            and FEATURE_CLAIM in self.peer_features
        ):
            stream.told_received = stream.received_units
            self._queue(
                Outgoing(
                    wire.READ, (stream.id, self.config.max_chunk, 0, {RECEIVED_KEY: stream.received_units})
                )
            )

    def _fit_connection_window(self: _Core, stream: StreamCore, size: int) -> None:
        """``stream``'s window is now ``size`` bytes (0: it reads no more). The connection window
        follows the largest grown stream window, so that two such streams run side by side (as
        HTTP/2 clients keep theirs at 1.5-2x a stream's), within the shared pool; it goes back to
        its configured size as grown streams end or shrink back."""
        if self.budget.window is None:
            return
        assert stream.window is not None
        if size and stream.window.size > stream.window.base:
            self.grown[stream] = size
        else:
            self.grown.pop(stream, None)
        if (
            self.window_tuned
            and not size
            and not self.grown
            and not self.starved
            and not any(s.read_state is ReadState.READING for s in self.streams.values() if s is not stream)
        ):
            self.window_tuned = 0  # no stream reads any more: start over
        wanted = max(2 * max(self.grown.values(), default=0), self.window_tuned)
        pool = self.budget.limit - self.budget.floor_pool
        self.budget.window = max(self.config.connection_window, min(wanted, pool))

    def _tune_connection_window(self: _Core, stream: StreamCore, size: int) -> None:
        """A chunk of ``stream`` was consumed while streams wait for the connection window: the
        window, not the streams' own, limits them (several streams sharing a long link each
        drain too slowly to grow, and two of the largest window stay too small). Counted in
        credits of this stream's size, the connection window grows as a stream's does (see
        sio_stream.core._tuning), on the round trip of the stream that consumed. ``size``: its
        :meth:`_credit_bytes`."""
        budget = self.budget
        assert budget.window is not None
        if budget.window - budget.pooled >= size or budget.grantable(window=False) < size:
            return  # the window has room, or something else (the budget) is the limit
        wanted = self.window_tuner.grow(
            budget.window // size, self.config.clock(), stream.tuner.round_trip.seconds
        )
        if wanted:
            self.window_tuned = wanted * size  # within the shared pool (_fit_connection_window)
            assert stream.window is not None
            self._fit_connection_window(stream, stream.window.size * size if stream in self.grown else 0)

    def _reads_alone(self: _Core, stream: StreamCore) -> bool:
        """No other stream of the connection reads (once per stream, as its window opens)."""
        return not any(s.read_state is ReadState.READING for s in self.streams.values() if s is not stream)

    def _stop_credit(self: _Core, stream: StreamCore, *, held: bool) -> None:
        """``stream`` reads no more: its debt and reservation go (and its held bytes with
        ``held``); room freed wakes the streams waiting for it."""
        stream.owed_credit = 0
        stream.parked = 0
        self.starved.pop(stream, None)
        self.floor_due.pop(stream, None)
        self.turn_waiters.pop(stream, None)
        if stream in self.grown or self.window_tuned:
            self._fit_connection_window(stream, 0)
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

    def _returned(self: _Core, stream: StreamCore) -> None:
        """A chunk that carried nothing (empty) used a credit: give it back as it was."""
        assert stream.window is not None
        stream.window.buffered -= 1
        if stream.read_state is ReadState.READING and stream.owner is self:
            self._grant(stream, 1)

    def _consumed(self: _Core, stream: StreamCore) -> None:
        assert stream.window is not None
        window = stream.window
        process = self.budget.parent
        # Memory pressure: the process account above half its limit (gRPC's C core scales its
        # windows down from 20 % to 50 % of its quota; one line is enough here).
        pressed = process is not None and process.used * 2 >= process.limit
        credits = window.consumed(shrink=pressed)
        turns = self.turns
        turns.turned += 1  # room came back: the window turns (see _turns.py)
        if turns.stalled and self.budget.grantable() >= self._credit_bytes(stream):
            turns.stalled = False
        if stream.read_state is not ReadState.READING or stream.owner is not self:
            return
        grew = 0
        if pressed:
            self.reached = 0
        # Sized once for this chunk (twice, with many streams waiting, cost 0.8 sizings per chunk).
        size = 0
        if self._may_grow(stream):
            size = self._credit_bytes(stream)
            cap = self.config.max_window // size
            # More than one credit back: this chunk (the floor's) opened the window to its size.
            opening = credits > 1
            if opening and self.reached and self._reads_alone(stream):
                # As Linux caches a route's metrics: the window opens at the one an earlier
                # stream of this connection reached, as far as the pool has room for it now.
                # Alone only: streams that start together share the link (the first to open
                # took the pool, 8 streams at 150 ms moved 0.41-0.48x raw TCP, not 0.52-0.53x).
                grew = window.grow(cap, min(self.reached, self.budget.grantable(window=False)) // size)
            wanted = stream.tuner.grow(window.size, self.config.clock(), opening=opening)
            if wanted and not pressed:
                # Granted now, with this chunk's credit: the decision came at a window's last chunk.
                grew += window.grow(cap, wanted)
            credits += grew
            if grew:
                self.reached = max(self.reached, window.size * size)
        if grew or (pressed and stream in self.grown):  # grew, or shrinks back under pressure
            self._fit_connection_window(stream, window.size * (size or self._credit_bytes(stream)))
            size = 0  # the connection window, so the largest credit (the budget's ceiling), moved
        if self.starved and not pressed and self._may_grow(stream) and self.budget.window is not None:
            self._tune_connection_window(stream, size or self._credit_bytes(stream))
        if FEATURE_BATCH_READ in self.peer_features:
            # Toward a sio_stream peer, grant in batches of a quarter window: one packet instead of
            # several, while at least three quarters of the window stay in flight. (Half-window
            # batches let the in-flight data drop to half a window before each refill: 0.85-0.93x
            # of raw python-socketio at 20 ms RTT, against 0.95-0.96x with quarter batches.) A
            # window still small, or a stream gone dry, is refilled at once.
            paid = False
            stream.owed_reads += credits
            if (
                stream.owed_reads * 4 >= stream.window.current
                or stream.window.dry
                or (FEATURE_CONSUMED in self.peer_features and progress_due(stream))
            ):
                paid = self._grant(stream, stream.owed_reads)
                stream.owed_reads = 0
        else:
            paid = self._grant(stream, credits)
        if stream.owed_credit and window.dry and not paid:
            # Gone dry with debt the pool could not pay (a shrinking window returns no credit,
            # a JavaScript writer's credit may all be parked): its floor pays now. (A pass that
            # just ran for the new debt saw it dry already: a second one paid nothing, 870 times
            # in 100 uploads of 8 MiB.)
            self._due_floor(stream)
            self._pay()
