"""One connection's streams and its ordered sender, on asyncio.

Every packet sio_stream sends on a connection goes through :class:`Connection`'s single sender
task, in the order the protocol core queued it: python-socketio's ``emit`` is not safe to call
concurrently for binary packets, and a stream must be announced before its reads and writes.
The sender task exists only while there is something to send, so an idle connection holds no task;
it also stops while python-engineio holds too much of this connection's data unsent (a peer that
does not read its socket, see :mod:`sio_stream.glue._unsent`), and the queue's drain starts it again.
What a connection does besides sending and timing is in :class:`~sio_stream.glue._connection.ConnectionLogic`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import StreamError
from ..core._core import CoreConfig, StreamCore
from ..core._turns import STALL_CHECK
from ..glue._connection import ConnectionLogic, MeterFunction, no_meter
from ._stream import IOStream

#: Sends one event: ``(event, args, ack callback or None)``.
EmitFunction = Callable[[str, tuple[Any, ...], Callable[..., Any] | None], Awaitable[None]]


def _waker(loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> Callable[[], None]:
    """A budget's ``on_freed``: schedules ``wake`` on the loop (safe from a finalizer)."""

    def freed() -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(wake)

    return freed


class Connection(ConnectionLogic):
    """The streams of one Socket.IO connection in one namespace, and the task that sends for them."""

    def __init__(
        self,
        emit: EmitFunction,
        config: CoreConfig,
        label: str,
        is_connected: Callable[[], bool],
        meter: MeterFunction = no_meter,
    ) -> None:
        super().__init__(config, label, IOStream)
        self._is_connected = is_connected
        self._emit = emit
        self.use_meter(meter)
        self._sender: asyncio.Task[None] | None = None
        self._claim_timers: set[asyncio.TimerHandle] = set()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._turn_check: asyncio.TimerHandle | None = None
        with contextlib.suppress(RuntimeError):  # built outside a loop: nothing to schedule on
            self.core.budget.on_freed = _waker(asyncio.get_running_loop(), self.core.budget.wake)

    def decode_stream(self, stream_id: Any, options: Any, credit: Any = None) -> IOStream:
        stream: IOStream = super().decode_stream(stream_id, options, credit)
        return stream

    def watch_idle(self) -> None:
        timeout = self.core.config.idle_timeout
        if (
            timeout is None
            or self._idle_timer is not None
            or self.core.closed
            or not (self.core.streams or self.core.early.held)
        ):
            return
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(timeout / self.IDLE_SWEEPS, self._sweep_idle)

    def _sweep_idle(self) -> None:
        self._idle_timer = None
        self.sweep_idle()
        self.watch_idle()

    def expect_claims(self, streams: list[StreamCore], timeout: float | None, event: str) -> None:
        if timeout is None or not streams:
            return
        check = self.unclaimed_check(streams, timeout, event)
        handle: asyncio.TimerHandle | None = None

        def run() -> None:
            if handle is not None:
                self._claim_timers.discard(handle)
            check()

        handle = asyncio.get_running_loop().call_later(timeout, run)
        self._claim_timers.add(handle)

    def _watch_turns(self) -> None:
        if self._turn_check is None and not self.core.closed:
            self._turn_check = asyncio.get_running_loop().call_later(STALL_CHECK, self._check_turns)

    def _check_turns(self) -> None:
        self._turn_check = None
        if self.core.check_turns():
            self._watch_turns()

    def _stop_turn_checks(self) -> None:
        if self._turn_check is not None:
            self._turn_check.cancel()
            self._turn_check = None

    # -- the sender ------------------------------------------------------------------------------
    def _start_sender(self) -> None:
        if self._sender is None and not self.core.closed and not self.core.connecting:
            self._sender = asyncio.get_running_loop().create_task(
                self._run_sender(), name=f"sio_stream sender {self.label}"
            )

    def _transport_drained(self) -> None:
        self.waiting_for_transport = False
        self._start_sender()

    async def _run_sender(self) -> None:
        try:
            while not self.transport_full() and (item := self.core.next_outgoing()) is not None:
                try:
                    await self._emit(item.event, item.args, item.on_ack)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not self.emit_failed(item, exc, self._is_connected()):
                        return
        finally:
            if self._sender is asyncio.current_task():
                self._sender = None

    # -- negotiated resume -------------------------------------------------------------------------
    def rebind(
        self,
        emit: EmitFunction,
        is_connected: Callable[[], bool],
        label: str,
        meter: MeterFunction = no_meter,
    ) -> None:
        """Send to a resumed session's new connection from now on."""
        self._emit = emit
        self._is_connected = is_connected
        self.label = label
        self.use_meter(meter)

    def _stop_sending(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._stop_turn_checks()

    def _start_expiry(self, delay: float, expire: Callable[[], None]) -> None:
        self._stop_expiry()
        self._expiry = asyncio.get_running_loop().call_later(delay, expire)

    def _stop_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    # -- the end -----------------------------------------------------------------------------------
    def lost(self, error: StreamError | None = None) -> None:
        """The connection dropped: fail every stream with "Connection aborted" and stop sending."""
        super().lost(error)
        for timer in self._claim_timers:
            timer.cancel()
        self._claim_timers.clear()
        self._stop_turn_checks()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        sender = self._sender
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
