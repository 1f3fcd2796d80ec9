"""One connection's streams for the sync API, with its ordered sender and its timers.

Each connection has a sender (a background task of the server's or client's async mode) that
emits what the core queued, in order, outside :data:`LOCK`; it exits after a few idle seconds
and is started again by the next packet. On the hot paths the thread that queued a packet
emits it itself instead (:mod:`sio_stream.sync._caller_sends`). A ticker task runs the idle
sweeps and claim checks while the connection holds streams.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .._errors import StreamError
from ..core._core import CoreConfig, StreamCore
from ..core._turns import STALL_CHECK
from ..core._wire import HELLO
from ..glue._connection import ConnectionLogic, MeterFunction, no_meter
from ._host import SyncHost
from ._stream import LOCK, SEND_AFTER, IOStream

#: Seconds a sender waits for more to send before its task ends.
_SENDER_LINGER = 5.0
#: Most packets a thread emits for a connection it claimed (see _caller_sends.py) before the
#: sender task takes the rest: an application's ``write()`` or ``receive()`` never stays long
#: sending what other threads queued.
_CALLER_PACKETS = 16
#: Who drains the outbox (``Connection._drainer``).
_TASK = "task"
_CALLER = "caller"
#: Longest sleep of the ticker: claim deadlines added meanwhile are seen within this.
_TICK = 1.0


class Connection(ConnectionLogic):
    """One connection's streams, its ordered sender task and its ticker task.

    ``emit(event, args, ack callback or None)`` sends one packet (blocking; it may block for
    long: a fan-out's deliverer waits for its recipients there); ``is_live()`` says whether the
    connection is still up after an emit raised."""

    def __init__(
        self,
        host: SyncHost,
        config: CoreConfig,
        label: str,
        emit: Callable[[str, tuple[Any, ...], Any], Any],
        is_live: Callable[[], bool],
        caller_sends: bool = False,
        meter: MeterFunction = no_meter,
    ) -> None:
        super().__init__(config, label, IOStream)
        self._emit = emit
        self._is_live = is_live
        self.use_meter(meter)
        self._spawn: Callable[..., Any] = host.sio.start_background_task
        self._sleep: Callable[[float], Any] = host.sio.sleep
        self._create_event: Callable[[], Any] = host.create_event
        self._more = host.create_event()
        #: Who emits the outbox now, one at a time so that packets keep their order: nobody,
        #: the sender task, or the thread that queued them (see _caller_sends.py).
        self._drainer: str | None = None
        self._sender_alive = False
        #: Whether a thread that queued packets may emit them itself: only when ``emit`` never
        #: blocks for long (python-socketio's emits only queue; a fan-out's deliverer waits).
        self._caller_sends = caller_sends
        self._ticking = False
        self._claims: list[tuple[float, Callable[[], None]]] = []
        self._next_sweep = 0.0
        #: When the next stall check of the connection window is due (None: no debt waits).
        self._turn_due: float | None = None
        #: Negotiated resume: set to cancel the running expiry clock of a suspended session.
        self._expiry: Any = None
        # Set once our $stream-hello is on the wire (or the connection is gone): an ack that
        # python-socketio sends from a handler thread must not overtake it, or the peer reads
        # an error reply before it knows we send them (see StreamSocket._on_stream).
        self.hello_out = host.create_event()
        # Room freed by a garbage-collected stream: wake the budget's waiters under LOCK, in a
        # task of its own (the finalizer that frees it may run anywhere, LOCK held or not).
        self.core.budget.on_freed = lambda: self._spawn(self._wake_budget)

    def _wake_budget(self) -> None:
        with LOCK:
            self.core.budget.wake()

    def _transport_drained(self) -> None:
        # Called by engine.io's writer with its queue's own lock held: take LOCK elsewhere.
        self._spawn(self._send_again)

    def _send_again(self) -> None:
        with LOCK:
            self.waiting_for_transport = False
            self._start_sender()

    # -- the sender (started under LOCK) -----------------------------------------------------------
    def _start_sender(self) -> None:
        if self.core.closed or self.core.connecting or self._drainer is not None:
            return  # a drainer looks at the outbox under LOCK before it lets go: it sees this
        if self._caller_sends and SEND_AFTER.claim(self):
            self._drainer = _CALLER
            return
        self._drainer = _TASK
        if self._sender_alive:
            self._more.set()
        else:
            self._sender_alive = True
            self._spawn(self._run_sender)

    def send_here(self) -> None:
        """Drain the outbox from the thread that claimed it (see :mod:`._caller_sends`), up to
        :data:`_CALLER_PACKETS`; the sender task takes what is left."""
        try:
            self._drain(_CALLER_PACKETS)
        except BaseException:
            self.hand_over()
            raise

    def hand_over(self) -> None:
        """Give the outbox to the sender task (its claimant cannot drain it)."""
        with LOCK:
            self._drainer = None
            self._start_sender()

    def _run_sender(self) -> None:
        while True:
            with LOCK:
                mine = self._drainer is _TASK
                if not mine:
                    if self.core.closed:
                        self._sender_alive = False
                        return
                    self._more.clear()  # set again by whoever hands us the outbox
            if mine:
                self._drain(None)
                continue
            if not self._more.wait(_SENDER_LINGER):
                with LOCK:
                    if self._drainer is not _TASK:
                        self._sender_alive = False
                        return

    def _drain(self, limit: int | None) -> None:
        """Emit what the core queued, in order, until nothing is left (or ``limit`` packets were
        sent: the sender task takes the rest); called by the outbox's one drainer."""
        sent = 0
        while True:
            with LOCK:
                if (limit is not None and sent >= limit) or self.transport_full():
                    item = None  # the sender task takes the rest, or the queue's drain does
                else:
                    item = self.core.next_outgoing()
                epoch = self.epoch
                if item is None:
                    self._drainer = None
                    if limit is not None and sent >= limit:
                        self._start_sender()  # not claimed again: this thread's block is over
                    return
            sent += 1
            if epoch != self.epoch:
                # Taken before a drop that the receive loop handled meanwhile: the resume sends
                # again what it carried (writes from the replay, events from their record).
                continue
            on_ack = item.on_ack
            try:
                self._emit(item.event, item.args, None if on_ack is None else _Locked(on_ack))
            except Exception as exc:
                with LOCK:
                    if not self.emit_failed(item, exc, self._is_live()):
                        self._drainer = None
                        return
            finally:
                if item.event == HELLO:
                    self.hello_out.set()  # on the wire, or never going to be: stop waiting

    # -- timers (started under LOCK) ---------------------------------------------------------------
    def watch_idle(self) -> None:
        if self._ticking or self.core.closed:
            return
        if not self._timed():
            return
        self._ticking = True
        self._next_sweep = self._sweep_period() + time.monotonic()
        self._spawn(self._tick)

    def _timed(self) -> bool:
        """Something needs the tick: claims, turn checks, or streams to sweep."""
        return bool(
            self._claims
            or self._turn_due is not None
            or (self.core.config.idle_timeout is not None and self.core.streams)
        )

    def _watch_turns(self) -> None:
        if self._turn_due is None and not self.core.closed:
            self._turn_due = time.monotonic() + STALL_CHECK
            self.watch_idle()

    def _sweep_period(self) -> float:
        timeout = self.core.config.idle_timeout
        return float("inf") if timeout is None else timeout / self.IDLE_SWEEPS

    def expect_claims(self, streams: list[StreamCore], timeout: float | None, event: str) -> None:
        if timeout is None or not streams:
            return
        self._claims.append((time.monotonic() + timeout, self.unclaimed_check(streams, timeout, event)))
        self.watch_idle()

    def _tick(self) -> None:
        while True:
            with LOCK:
                turn = self._turn_due if self._turn_due is not None else float("inf")
                due = min([self._next_sweep, turn, *(deadline for deadline, _ in self._claims)])
            self._sleep(max(0.0, min(due - time.monotonic(), _TICK)))
            with LOCK:
                now = time.monotonic()
                if self.core.closed:
                    self._ticking = False
                    return
                if now >= self._next_sweep:
                    self.sweep_idle()
                    self._next_sweep = now + self._sweep_period()
                for claim in [c for c in self._claims if c[0] <= now]:
                    self._claims.remove(claim)
                    claim[1]()
                if self._turn_due is not None and now >= self._turn_due:
                    self._turn_due = now + STALL_CHECK if self.core.check_turns() else None
                if not self._timed():
                    self._ticking = False
                    return

    # -- negotiated resume (under LOCK) ----------------------------------------------------------------
    def rebind(
        self,
        emit: Callable[[str, tuple[Any, ...], Any], Any],
        is_live: Callable[[], bool],
        label: str,
        meter: MeterFunction = no_meter,
    ) -> None:
        """Send to a resumed session's new connection from now on (the sender reads ``_emit``
        afresh for every packet)."""
        self._emit = emit
        self._is_live = is_live
        self.label = label
        self.use_meter(meter)

    def _stop_sending(self) -> None:
        # The core gives the sender nothing but control packets while suspended; wake it so
        # that it sees so and lingers (a thread cannot be cancelled mid-emit as a task can: a
        # packet it is emitting now goes to the dead transport, and is replayed after the resume).
        self._more.set()

    def _start_expiry(self, delay: float, expire: Callable[[], None]) -> None:
        self._stop_expiry()
        cancelled = self._create_event()
        self._expiry = cancelled

        def run() -> None:
            # An event's wait, not a sleep: a resume wakes the clock's task at once, so a
            # thousand suspended sessions that resume leave no thread sleeping behind them.
            if cancelled.wait(delay):
                return
            with LOCK:
                if self._expiry is cancelled:
                    self._expiry = None
                    expire()

        self._spawn(run)

    def _stop_expiry(self) -> None:
        cancelled, self._expiry = self._expiry, None
        if cancelled is not None:
            cancelled.set()

    def lost(self, error: StreamError | None = None) -> None:
        super().lost(error)
        self._claims.clear()
        self._turn_due = None
        self._more.set()
        self.hello_out.set()


class _Locked:
    """An ack callback of the core, run under :data:`LOCK` (python-socketio calls it from its
    receive loop)."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[..., Any]) -> None:
        self.callback = callback

    def __call__(self, *args: Any) -> None:
        with LOCK:
            self.callback(*args)
