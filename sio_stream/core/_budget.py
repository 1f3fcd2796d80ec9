"""Memory accounts: how many bytes a peer may make us hold, per connection and per process.

A :class:`Budget` counts two things in bytes: ``held`` (received, not yet taken by the
application) and ``reserved`` (credit granted to the peer whose data has not arrived yet).
Invariant, for every account: ``held + reserved <= limit``. A connection's account has the
process account as its ``parent``; every change is applied to both, so the process account
is the sum of its connections.

Three verbs, as in h2's window: :meth:`Budget.reserve` (before granting credit; refuses what
does not fit), :meth:`Budget.arrive` (data came: its reservation becomes held bytes, and any
excess over the reservation must fit in the free room or the data is refused) and
:meth:`Budget.release` (the application took the bytes, or the stream went away). Room that
frees up wakes the account's waiters, oldest first: callbacks that retry their grants.

Liveness (the rule that keeps a quiet stream from starving the others): a connection's
account is split into a **floor** for each stream it may hold (``floor`` bytes, ``slots``
streams, ``floor * slots <= limit / 2``) and a **shared pool** (the rest). The first ``floor``
bytes a stream holds or reserves come from its floor, which nothing else may use; anything
beyond comes from the shared pool, under the connection window (HTTP/2's: bytes of credit
outstanding from the pool) and the fairness rule below. So a stream that waits for data (quiet),
or whose reader stalls, costs the others at most its floor, and a stream whose reader reads
always finds the room for one credit of its floor, whatever the other streams hold.

Fairness: a connection may grow freely up to the process account's contention line (3/4 of
its limit); beyond it, only up to its max-min fair share (:meth:`Budget.fair_level`): those
holding the most are refused new credit first, and what is left is shared by the others and
one connection yet to come, so they keep moving. Nothing here closes a connection or fails a stream.

Pure: no I/O, no async library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: The process budget's default. A 2-core server with a few GiB survives it: measured
#: (benchmarks/hostile.py) RSS stays within budget + ~60 MiB of fixed overhead under floods of
#: large objects, and eight connections can each fill a 64 MiB connection budget.
DEFAULT_PROCESS_LIMIT = 512 * 1024 * 1024

#: Above this fraction of its limit the process account is contended (see fairness above).
_CONTENDED_NUM, _CONTENDED_DEN = 3, 4
#: Initial credit offered over all connections stays within 1/8 of the process limit (64 MiB by
#: default: four offers of 16 MiB): what the process account may go beyond its limit by when
#: every offer is taken at once (see Budget.offer).
OFFER_SHARE = 8


@dataclass(frozen=True)
class BudgetStatistics:
    """A snapshot of one account (see :meth:`Budget.statistics`)."""

    limit: int
    window: int | None
    held: int
    reserved: int
    accounts: int  #: connection accounts under a process account (0 for a connection)
    waiting: int  #: callbacks waiting for room


@dataclass(frozen=True)
class ConnectionStatistics:
    """The accounting of one connection (see :meth:`sio_stream.StreamSocket.statistics`)."""

    peer: object  #: the client's sid on a server, ``None`` on a client
    held: int  #: bytes received and not yet read (byte chunks, objects at their JSON size)
    reserved: int  #: bytes of credit granted and not yet arrived
    credits: int  #: credits (chunks or objects) granted and not yet arrived
    streams: int  #: streams open
    waiting_streams: int  #: streams owed credit the budget has no room for yet
    limit: int  #: the connection's budget (``max_buffered``)
    retained: int = 0  #: bytes sent and kept for replay until the peer acknowledges them (resume)
    suspended: bool = False  #: the transport dropped; the session waits for the client (resume)
    resent: int = 0  #: units (bytes; objects in object mode) sent again after resumes
    unsent: int = 0  #: bytes waiting in python-engineio's send queue (see limits: what a writer queues)


@dataclass(frozen=True)
class StreamSocketStatistics:
    """A snapshot of a StreamSocket's memory accounting, in the style of anyio's
    ``MemoryObjectStreamStatistics``: per connection, and the process budget they share."""

    connections: tuple[ConnectionStatistics, ...]
    held: int  #: over this socket's connections
    reserved: int
    credits: int
    streams: int
    process: BudgetStatistics  #: the process account (every socket sharing it)
    resumes: int = 0  #: sessions resumed after a dropped connection (negotiated ``resume``)
    suspended: int = 0  #: sessions waiting for their client to come back
    resent: int = 0  #: units (bytes, or objects) sent again after resumes, over the connections


class Budget:
    """One memory account: ``held + reserved <= limit`` bytes, with an optional parent account.

    The parent (the process account) is shared by many connections, possibly of several
    ``StreamSocket`` objects; it must only be used from one event loop thread.
    """

    __slots__ = (
        "limit",
        "window",
        "held",
        "reserved",
        "retained",
        "parent",
        "_waiters",
        "_members",
        "_changes",
        "_fair",
        "_waking",
        "_closed",
        "floor",
        "floor_pool",
        "floor_used",
        "floor_reserved",
        "floor_short",
        "wanted",
        "on_freed",
        "offered",
    )

    def __init__(
        self,
        limit: int,
        parent: Budget | None = None,
        *,
        window: int | None = None,
        floor: int = 0,
        slots: int = 0,
    ) -> None:
        for value in (limit, window if window is not None else 1):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"a budget's limit is a positive number of bytes, not {value!r}")
        if floor < 0 or slots < 0 or floor * slots > limit // 2:
            raise ValueError(f"{slots} floors of {floor} bytes do not fit in half of {limit} bytes")
        self.limit = limit
        #: Most bytes of credit outstanding at once from the shared pool (HTTP/2's connection
        #: window): streams beyond it wait their turn. ``None``: only the limit bounds it.
        self.window = window
        self.held = 0
        self.reserved = 0
        #: Bytes a resumable session's writers keep for replay (sent, not yet acknowledged):
        #: counted in :attr:`used`, so that limits and fairness see them, not in ``held``.
        self.retained = 0
        #: Bytes of each stream's floor; the floors' share of the limit (``floor * slots``), and
        #: the part of it in use: the sum over streams of ``min(floor, held + reserved)``.
        self.floor = floor
        self.floor_pool = floor * slots
        self.floor_used = 0
        #: The part of ``reserved`` its floors cover (a floor covers a stream's held bytes
        #: first): the rest is credit outstanding from the pool, what the window bounds.
        self.floor_reserved = 0
        #: A stream's floor credit did not fit (the limit or the process was full): room freed
        #: must wake this account's waiters even while its pool has none.
        self.floor_short = False
        #: The least credit from the pool worth waking the waiters for: a stream waiting for its
        #: turn needs a whole turn (see _turns.py), and room for less woke it for nothing on
        #: every chunk consumed (100 streams: 7,600 passes for 1,700 chunks).
        self.wanted = 1
        self.parent = parent
        #: Bytes of initial credit offered to peers and not used yet (see :meth:`offer`).
        self.offered = 0
        #: Called when a garbage-collected stream gave room back (see :meth:`Holding.drop`), from
        #: its finalizer: at any moment, in any thread. It must only schedule a call of
        #: :meth:`wake` on the account's own thread (the driver sets it); ``None``: nobody does.
        self.on_freed: Callable[[], None] | None = None
        # Insertion-ordered: a FIFO without duplicates, with O(1) removal.
        self._waiters: dict[object, Callable[[], None]] = {}
        self._members: set[Budget] = set()
        #: Counts every change of ``used`` here or below (and of the members): the key of the
        #: cached :meth:`fair_level`, which sorts the members. Uncached, every waiter woken by
        #: room freed on a contended process sorted them all again: a thousand sessions that
        #: expired together took minutes (O(n) waiters x O(n log n) each, per expiry).
        self._changes = 0
        self._fair: tuple[int, int, int] | None = None  # (changes, limit, level)
        self._waking = False
        self._closed = False
        if parent is not None:
            parent._members.add(self)
            parent._changes += 1

    @property
    def used(self) -> int:
        return self.held + self.reserved + self.retained

    def retain(self, size: int) -> None:
        """Count ``size`` bytes kept for replay (negative: released; wakes waiters)."""
        account: Budget | None = self
        while account is not None:
            account.retained += size
            account._changes += 1
            account = account.parent
        if size < 0:
            self._wake()

    @property
    def free(self) -> int:
        """Bytes that could still arrive as excess (no fairness rule): the least of this account
        and its ancestors."""
        room = self.limit - self.used
        parent = self.parent
        while parent is not None:
            room = min(room, parent.limit - parent.used)
            parent = parent.parent
        return room

    @property
    def ceiling(self) -> int:
        """The most this account could ever reserve at once: the least of its window, its limit
        and the contention line of its parent (a connection alone reaches no further)."""
        # Comparisons, not min(): every credit's size is cut to it, several times per chunk.
        top = self.limit
        if self.window is not None and self.window < top:
            top = self.window
        if self.floor_pool and self.limit - self.floor_pool < top:
            # Pooled credit never exceeds the shared pool (the limit less the floors).
            top = self.limit - self.floor_pool
        parent = self.parent
        while parent is not None:
            line = parent.limit * _CONTENDED_NUM // _CONTENDED_DEN
            if line < top:
                top = line
            parent = parent.parent
        return top if top > 1 else 1

    def grantable(self, window: bool = True) -> int:
        """Bytes of new credit this account may reserve now from its shared pool: :attr:`free`
        less the floors not in use, nothing for a connection using more than its fair share of
        a contended parent, and (with ``window``) no more than the account's :attr:`window` of
        credit outstanding from the pool (a floor's credit is not counted there)."""
        # Written out (free, used, _fair_room and pooled inline): with many streams on a
        # connection it runs about eight times per chunk (each budget wake, each turn), and the
        # property calls it made were most of its cost.
        used = self.held + self.reserved + self.retained
        room = self.limit - used
        fair = self.limit
        parent = self.parent
        if parent is not None:
            parent_used = parent.held + parent.reserved + parent.retained
            if parent.limit - parent_used < room:
                room = parent.limit - parent_used
            above = parent.parent
            while above is not None:
                if above.limit - above.used < room:
                    room = above.limit - above.used
                above = above.parent
            below_line = parent.limit * _CONTENDED_NUM // _CONTENDED_DEN - parent_used
            # Far from contended, no need to rank the connections (as _fair_room).
            fair = below_line if below_line >= self.limit else max(below_line, parent.fair_level() - used)
        room -= self.floor_pool - self.floor_used
        if fair < room:
            room = fair
        if window and self.window is not None and self.window - (self.reserved - self.floor_reserved) < room:
            room = self.window - (self.reserved - self.floor_reserved)
        return room if room > 0 else 0

    def windowed(self, room: int) -> int:
        """:meth:`grantable` (under the window) from ``room``, what ``grantable(window=False)``
        returned with nothing changed since: one room check where a caller needs both (a turn
        asks whether it fits now, and else whether it will once the window turns)."""
        if self.window is not None and self.window - (self.reserved - self.floor_reserved) < room:
            room = self.window - (self.reserved - self.floor_reserved)
        return room if room > 0 else 0

    @property
    def pooled(self) -> int:
        """Bytes of credit outstanding from the shared pool (reserved beyond the floors). Not
        ``reserved - floor_used``: floors full of held bytes would let the window overshoot."""
        return self.reserved - self.floor_reserved

    def _fair_room(self) -> int:
        """What this account may still add under the fairness rule: anything up to the
        parent's contention line (3/4 of its limit), and beyond it only up to the max-min fair
        level. (Checking only whether the parent is contended already let one grant jump from
        just under the line to the whole limit, leaving a newcomer nothing.)"""
        parent = self.parent
        if parent is None:
            return self.limit
        below_line = parent.limit * _CONTENDED_NUM // _CONTENDED_DEN - parent.used
        if below_line >= self.limit:
            return below_line  # far from contended: no need to rank the connections
        return max(below_line, parent.fair_level() - self.used)

    def fair_level(self) -> int:
        """Max-min fair share of this (process) account: connections using more than their
        share keep what they hold (it cannot be taken back) and get nothing more; what is
        left is shared equally by the others and one newcomer, so a connection that reads what
        it receives always finds room, however much the slow ones hold."""
        changes = self._changes  # read first: a finalizer may change a member while we count
        cached = self._fair
        if cached is not None and cached[0] == changes and cached[1] == self.limit:
            return cached[2]
        members = sorted((c.used for c in self._members), reverse=True)
        # Bytes of connections already gone (streams the application still holds) stay counted.
        room = self.limit - (self.used - sum(members))
        count = len(members)
        for used in members:
            if used * count <= room:
                break
            room -= used
            count -= 1
        # One share more than there are connections under it: room stays for a connection that
        # arrives later (what slow readers hold cannot be taken back to make room for it).
        level = room // (count + 1)
        self._fair = (changes, self.limit, level)
        return level

    def floor_share(self) -> int:
        """The floors one connection of this (process) account may use beyond the fairness rule:
        its max-min :meth:`fair_level`, or an equal split among the connections and one
        newcomer, whichever is larger."""
        return max(self.fair_level(), self.limit // (len(self._members) + 1))

    # -- initial credit (negotiated initial-credit, see _initial.py) -----------------------------------
    def offer(self, size: int) -> bool:
        """Offer the peer ``size`` bytes of initial credit (credit it may use on a new stream
        before we know the stream): False when the process's share of offers
        (:data:`OFFER_SHARE` of its limit) has no room for it, or the process or this account
        has not that much free beside the offers already made. An offer is not counted in
        :attr:`used` (an idle connection's offer holds nothing): the stream that takes it is
        reserved at once (:meth:`Holding.reserve` with ``force``), so an account may go beyond
        its limit by at most the offers outstanding when it filled, and no new offer is made
        while it is beyond: the process stays within its limit plus that share."""
        process = self.parent if self.parent is not None else self
        if (
            size < 1
            or process.offered + size > process.limit // OFFER_SHARE
            or process.used + process.offered + size > process.limit
            or self.used + self.offered + size > self.limit
        ):
            return False
        self.offered += size
        if process is not self:
            process.offered += size
        return True

    def withdraw(self, size: int) -> None:
        """An offer of ``size`` bytes was taken by a stream, or the connection is gone."""
        size = min(size, self.offered)
        self.offered -= size
        if self.parent is not None:
            self.parent.offered = max(0, self.parent.offered - size)

    # -- the three verbs ---------------------------------------------------------------------------
    def reserve(self, size: int, floor_room: int = 0, *, window: bool = True, force: bool = False) -> bool:
        """Reserve ``size`` bytes for credit about to be granted, of which up to ``floor_room``
        come from the stream's unused floor; False (nothing reserved) when the rest does not fit
        in :meth:`grantable` (``window``: under the connection window too) or the whole does not
        fit in :attr:`free`. With ``force`` it is reserved whatever room there is: credit the
        peer holds already (an initial credit we offered, see :meth:`offer`)."""
        if force:
            self._add(0, size)
            return True
        pooled = size - min(size, floor_room)
        if size > self.free or (pooled > 0 and pooled > self.grantable(window)):
            return False
        floor_part = size - pooled
        # Floors skip the fairness rule only within the connection's share of the process
        # (counted on its floors alone): quiet streams on a few connections must not fill it.
        # The share is the max-min level or an equal split, whichever is larger: the max-min
        # level falls to nothing when stalled readers hold the rest, and a reading stream's
        # floor must still be paid then (a stream went dry and was never paid again).
        if (
            floor_part
            and self.parent is not None
            and size > self._fair_room()
            and self.floor_used + floor_part > self.parent.floor_share()
        ):
            return False

        self._add(0, size)
        return True

    def arrive(self, reserved: int, size: int, floor_room: int = 0, *, wake: bool = True) -> bool:
        """``size`` bytes arrived against ``reserved`` bytes of reservation. The reservation is
        always given up; the bytes are held if they fit: any excess over the reservation must
        fit in :attr:`free` less the floors other streams do not use (``floor_room``: the
        arriving stream's own unused floor) and, while the process is contended, in this
        connection's fair share. Data within its reservation is never refused. False when
        refused: nothing is then held for them. Room given back wakes the waiters, unless
        ``wake`` is False (the caller, still updating its own count, calls :meth:`wake`)."""
        self._add(0, -reserved)
        # The reservation was given back just above. A chunk within its reservation is never
        # refused: bytes kept for a resume's replay (``retained``) may fill the account beyond
        # its limit, and room the reader reserved must not fail then. An excess (a JavaScript
        # writer's chunk larger than its credit) must fit in what is free and leave other
        # streams' floors alone: they are what keeps a reading stream moving.
        excess = size - reserved
        if excess > 0 and (
            size > self.free
            or size > self._fair_room()
            or size > self.free - max(0, self.floor_pool - self.floor_used - floor_room)
        ):
            if wake:
                self._wake()
            return False
        self._add(size, 0)
        if size < reserved and wake:
            self._wake()
        return True

    def release(self, held: int = 0, reserved: int = 0) -> None:
        """Give back ``held`` bytes the application took (or a dead stream dropped) and
        ``reserved`` bytes of credit that will never be used; wakes waiters."""
        if held or reserved:
            self._add(-held, -reserved)
            self._wake()

    def wake(self) -> None:
        """Run the waiters now (after an :meth:`arrive` told not to)."""
        self._wake()

    def _add(self, held: int, reserved: int) -> None:
        account: Budget | None = self
        while account is not None:
            account.held += held
            account.reserved += reserved
            account._changes += 1
            account = account.parent

    # -- waiting for room --------------------------------------------------------------------------
    def wait(self, key: object, callback: Callable[[], None]) -> None:
        """Call ``callback`` when room frees (in this account or an ancestor), after the waiters
        registered before it. Registering an existing key keeps its place."""
        self._waiters.setdefault(key, callback)
        parent = self.parent
        while parent is not None:
            # Room freed by another connection must reach this one too.
            parent._waiters.setdefault(self, self._wake)
            parent = parent.parent

    def cancel(self, key: object) -> None:
        """Forget a waiter (a connection that went away, or a suspended session). An account
        left with no waiter stops waiting on its parent too: a parent's wake then costs nothing
        for it (a thousand suspended sessions each woken by every room freed made their expiry
        quadratic)."""
        self._waiters.pop(key, None)
        if not self._waiters and self.parent is not None:
            self.parent.cancel(self)

    def close(self) -> None:
        """This (connection) account is gone: it stops counting as a connection of its parent
        and waits no more; its offer goes back. Bytes still held (streams the application may
        still read) stay counted on both accounts until taken or garbage-collected."""
        self._waiters.clear()
        self.withdraw(self.offered)
        parent = self.parent
        if parent is not None and not self._closed:
            self._closed = True
            parent._waiters.pop(self, None)
            parent._members.discard(self)
            parent._changes += 1
            parent._wake()

    def _wake(self, woken: Budget | None = None) -> None:
        """Run the waiters in FIFO order while there is room; each is removed before it runs (a
        waiter still short of room registers again, at the back). ``woken``: a member account
        that has just run its own waiters on this room; it keeps its place and is not run again
        (the waiters it left are short of room: what ran since only reserved more)."""
        if self._waking:
            return
        self._waking = True
        try:
            for key in list(self._waiters):
                if key is woken:
                    continue
                # The pool has room, or a floor that did not fit may fit now.
                if self.grantable() < self.wanted and not (self.floor_short and self.free > 0):
                    break
                callback = self._waiters.pop(key, None)
                if callback is not None:
                    callback()
        finally:
            self._waking = False
        parent = self.parent
        if parent is not None:
            if self._waiters and not self._closed:
                # Still short of room (its own window, or its fair share of the process): room
                # freed later by other connections must reach this one again.
                parent._waiters.setdefault(self, self._wake)
            # The room freed here is the parent's too: its other members may fit now. Run
            # again from there, this account checked its waiters twice per room freed, and
            # the parent's room once more (with streams waiting on a busy connection: three
            # checks of the room for every chunk consumed or arrived short, not one).
            parent._wake(self)

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(
            self.limit, self.window, self.held, self.reserved, len(self._members), len(self._waiters)
        )


_process_budget = Budget(DEFAULT_PROCESS_LIMIT)


def process_budget() -> Budget:
    """The account every connection joins unless ``ss(..., process_budget=...)`` names another."""
    return _process_budget


def set_process_limit(limit: int) -> None:
    """Change the default process account's limit (bytes). Lowering it below what is in use
    refuses new credit until enough is taken; nothing held is dropped."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"a budget's limit is a positive number of bytes, not {limit!r}")
    _process_budget.limit = limit
    _process_budget._wake()


class Holding:
    """What one stream holds on an account: its ``held`` and ``reserved`` bytes.

    It outlives the stream's place in the registry: bytes received and never read stay counted
    while the application can still read them, and are given back when it does, or when the
    stream object is garbage-collected (:meth:`drop`, quietly: a finalizer must not run
    callbacks).
    """

    __slots__ = ("account", "held", "reserved", "floor_part", "floor_reserved", "floored")

    def __init__(self, account: Budget) -> None:
        self.account = account
        self.held = 0
        self.reserved = 0
        #: min(account.floor, held + reserved), counted in account.floor_used; never beyond the
        #: floors' share (more streams than slots, streams gone from the registry: see unfloor).
        self.floor_part = 0
        #: The part of ``reserved`` within ``floor_part`` (the floor covers held bytes first),
        #: counted in account.floor_reserved.
        self.floor_reserved = 0
        self.floored = True

    @property
    def floor_room(self) -> int:
        """Bytes of this stream's floor not in use: credit of that size always fits."""
        account = self.account
        return max(0, min(account.floor - self.floor_part, account.floor_pool - account.floor_used))

    def _count_floor(self) -> None:
        account = self.account
        part = min(account.floor, self.held + self.reserved) if self.floored else 0
        if part > self.floor_part:
            part = min(part, self.floor_part + max(0, account.floor_pool - account.floor_used))
        account.floor_used += part - self.floor_part
        self.floor_part = part
        covered = max(0, min(self.reserved, part - self.held))
        account.floor_reserved += covered - self.floor_reserved
        self.floor_reserved = covered

    def unfloor(self) -> None:
        """The stream left its connection's registry (unread bytes may stay): its slot is free
        for another stream, so what it still holds counts against the shared pool."""
        self.floored = False
        self._count_floor()

    def reserve(self, size: int, *, window: bool = True, force: bool = False) -> bool:
        if not self.account.reserve(size, self.floor_room, window=window, force=force):
            return False
        self.reserved += size
        self._count_floor()
        return True

    def arrive(self, credits: int, outstanding: int, size: int) -> bool:
        """``size`` bytes arrived for ``credits`` of the ``outstanding`` credits: their share of
        the reservation becomes held bytes (see :meth:`Budget.arrive`). False when refused."""
        share = self.reserved if credits >= outstanding else self.reserved * credits // max(1, outstanding)
        self.reserved -= share
        self._count_floor()
        # Waiters run only once this holding's count is right (they read floor_room).
        if not self.account.arrive(share, size, self.floor_room, wake=False):
            self.account.wake()
            return False
        self.held += size
        self._count_floor()
        if size < share:
            self.account.wake()
        return True

    def take(self, size: int) -> None:
        """The application took ``size`` bytes."""
        size = min(size, self.held)
        if size:
            self.held -= size
            self._count_floor()
            self.account.release(held=size)

    def release(self, *, held: bool = True) -> None:
        """Give back the reservation (credit that will never be used) and, with ``held``,
        the held bytes too."""
        give_held = self.held if held else 0
        reserved = self.reserved
        self.reserved = 0
        self.held -= give_held
        self._count_floor()
        self.account.release(held=give_held, reserved=reserved)

    def drop(self) -> None:
        """Garbage collection of the stream: give everything back. A finalizer must not run the
        waiters (it may interrupt a budget operation, or run in another thread), so the account's
        :attr:`Budget.on_freed` schedules the wake: without it the room freed woke nobody, and
        streams waiting for it (on this connection, or others of the process) stalled."""
        if self.held or self.reserved:
            self.account._add(-self.held, -self.reserved)
            self.held = self.reserved = 0
            self._count_floor()
            account: Budget | None = self.account
            while account is not None:
                if account.on_freed is not None:
                    account.on_freed()
                    return
                account = account.parent
