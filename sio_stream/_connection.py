"""One connection's streams and its ordered sender.

Every packet sio_stream sends on a connection goes through :class:`Connection`'s single sender
task, in the order the protocol core queued it: python-socketio's ``emit`` is not safe to call
concurrently for binary packets, and a stream must be announced before its reads and writes.
The sender task exists only while there is something to send, so an idle connection holds no task.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from ._core import CoreConfig, Outgoing, ProtocolCore, StreamCore
from ._errors import ConnectionAbortedStreamError, StreamBrokenError
from ._stream import IOStream
from ._wire import CONNECTION_ABORTED

logger = logging.getLogger("sio_stream")

#: Sends one event: ``(event, args, ack callback or None)``.
EmitFunction = Callable[[str, tuple[Any, ...], Callable[..., Any] | None], Awaitable[None]]


class Connection:
    """The streams of one Socket.IO connection in one namespace, and the task that sends for them."""

    def __init__(
        self, emit: EmitFunction, config: CoreConfig, label: str, is_connected: Callable[[], bool]
    ) -> None:
        self.core = ProtocolCore(config)
        self._is_connected = is_connected
        self.core.on_outgoing = self._start_sender
        self._emit = emit
        self._sender: asyncio.Task[None] | None = None
        self.label = label
        self.hello_sent = False
        self._claim_timers: set[asyncio.TimerHandle] = set()
        #: Futures of StreamSocket.call() waiting for an ack on this connection.
        self.pending_calls: set[asyncio.Future[Any]] = set()
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- streams -------------------------------------------------------------------------------
    def decode_stream(self, stream_id: Any, options: Any) -> IOStream:
        """An IOStream for a placeholder the peer sent (failed at once if it was bad)."""
        stream = IOStream(self.core.decode_placeholder(stream_id, options))
        stream.received = True
        self.watch_idle()
        return stream

    # The idle sweep runs every quarter of idle_timeout while the connection has streams, so an
    # abandoned stream fails between 1 and 1.25 idle_timeout after its last activity.
    _IDLE_SWEEPS = 4

    def watch_idle(self) -> None:
        """Make sure the idle sweep runs (call whenever a stream is registered)."""
        timeout = self.core.config.idle_timeout
        if timeout is None or self._idle_timer is not None or self.core.closed or not self.core.streams:
            return
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(timeout / self._IDLE_SWEEPS, self._sweep_idle)

    def _sweep_idle(self) -> None:
        self._idle_timer = None
        timeout = self.core.config.idle_timeout
        self.core.sweep_idle(
            self._IDLE_SWEEPS, f"stream idle: nobody read or wrote it for {timeout} s (idle_timeout)"
        )
        self.watch_idle()

    def queue(self, item: Outgoing) -> None:
        self.core.queue(item)

    def send_hello(self) -> None:
        if not self.hello_sent and not self.core.closed:
            self.hello_sent = True
            self.core.queue(self.core.hello())

    def expect_claims(self, streams: list[StreamCore], timeout: float | None, event: str) -> None:
        """Fail ``streams`` (returned through an ack) if the peer never uses them.

        A handler cannot tell whether its event carried an ack; without one the returned
        streams never reach the peer, and would hold their writers until the connection ends.
        """
        if timeout is None or not streams:
            return
        refs = [weakref.ref(s) for s in streams]
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def check() -> None:
            if handle is not None:
                self._claim_timers.discard(handle)
            for ref in refs:
                stream = ref()
                if stream is not None and not stream.peer_seen and self.core.streams.get(stream.id) is stream:
                    self.core.fail(
                        stream,
                        StreamBrokenError(
                            f"stream returned by the handler of {event!r} was never used by the peer "
                            f"within {timeout} s (did the event carry an ack?)"
                        ),
                    )

        handle = loop.call_later(timeout, check)
        self._claim_timers.add(handle)

    # -- the sender ------------------------------------------------------------------------------
    def hold(self) -> None:
        """Send nothing until :meth:`release`: the server's connect handler for this peer is
        running, and python-socketio sends the CONNECT packet only after it returns."""
        self.core.connecting = True

    def release(self) -> None:
        """The CONNECT packet is out: send what was queued meanwhile."""
        if self.core.connecting:
            self.core.connecting = False
            if self.core.outbox:
                self._start_sender()

    def _start_sender(self) -> None:
        if self._sender is None and not self.core.closed and not self.core.connecting:
            self._sender = asyncio.get_running_loop().create_task(
                self._run_sender(), name=f"sio_stream sender {self.label}"
            )

    async def _run_sender(self) -> None:
        try:
            while (item := self.core.next_outgoing()) is not None:
                try:
                    await self._emit(item.event, item.args, item.on_ack)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self._is_connected():
                        # Still connected: python-socketio could not encode this packet (a value
                        # that is not JSON). Fail only the streams it concerns, and tell the peer.
                        logger.error("sio_stream: cannot send %s on %s: %s", item.event, self.label, exc)
                        self.core.fail_outgoing(item, f"cannot send {item.event}: {exc}")
                        continue
                    # the connection is gone: python-socketio says so by raising
                    logger.info("sio_stream: emit on %s failed (%s); aborting its streams", self.label, exc)
                    self.core.connection_lost()
                    return
        finally:
            self._sender = None

    # -- the end -----------------------------------------------------------------------------------
    def lost(self) -> None:
        """The connection dropped: fail every stream with "Connection aborted" and stop sending."""
        self.core.connection_lost()
        for timer in self._claim_timers:
            timer.cancel()
        self._claim_timers.clear()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        for future in self.pending_calls:
            if not future.done():
                future.set_exception(ConnectionAbortedStreamError(CONNECTION_ABORTED))
        self.pending_calls.clear()
        sender = self._sender
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()

    @property
    def streams(self) -> dict[str, StreamCore]:
        return self.core.streams
