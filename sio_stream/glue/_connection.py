"""One connection's streams, whichever I/O drives it: :class:`ConnectionLogic` holds what a
connection does besides sending and timing (the hello, the hold during a connect handler, claim
checks, idle sweeps, the abort). A driver subclasses it with its sender and timers
(:mod:`sio_stream.aio._connection`, :mod:`sio_stream.sync`).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from .._errors import ConnectionAbortedStreamError, StreamBrokenError, StreamError
from ..core import _wire as wire
from ..core._core import CoreConfig, Outgoing, ProtocolCore, StreamCore
from ._unsent import Meter

#: The meter of a connection's engine.io queue, ``None`` when it has none (see _unsent.py).
MeterFunction = Callable[[], Meter | None]


def no_meter() -> Meter | None:
    return None


logger = logging.getLogger("sio_stream")


class StreamLike(Protocol):
    """What the logic needs of a driver's stream class (IOStream, sync IOStream)."""

    _core: StreamCore

    received: bool

    def __init__(self, core: StreamCore) -> None: ...

    def destroy(self, exc: BaseException | str | None = None) -> None: ...


class ConnectionLogic:
    """The streams of one Socket.IO connection in one namespace, less the sending and the timers.

    A driver subclass starts its sender in :meth:`_start_sender` and, in :meth:`lost`, stops
    it and its timers after calling this class's :meth:`lost`.
    """

    #: The idle sweep runs every quarter of idle_timeout while the connection has streams, so an
    #: abandoned stream fails between 1 and 1.25 idle_timeout after its last activity.
    IDLE_SWEEPS = 4

    def __init__(self, config: CoreConfig, label: str, stream_class: type[StreamLike]) -> None:
        self.core = ProtocolCore(config)
        self.core.on_outgoing = self._start_sender
        self.core.on_turn_wait = self._watch_turns
        self.label = label
        self.hello_sent = False
        self._stream_class = stream_class
        #: Futures of StreamSocket.call() waiting for an ack on this connection.
        self.pending_calls: set[Any] = set()
        #: Negotiated resume: the client's secret token for this session (the server keeps only
        #: a hash of it, :attr:`session_key`, in its socket's session table).
        self.token: str | None = None
        self.session_key: str | None = None
        #: Server: the key the client last resumed with, valid until it confirms the new token.
        self.previous_key: str | None = None
        #: Client: a deliberate disconnect waiting for the server's hello (and its token) to
        #: close the session (see ``SocketLogic._leaving``).
        self.leaving: Any = None
        #: Client: a deliberate disconnect waiting for the server's answer to its close.
        self.closing: Any = None
        #: Client: the server answered on a stream of ours before any hello, so it sends none
        #: (npm's socket.io-stream): a deliberate disconnect does not wait for one.
        self.no_hello = False
        #: Drops so far: a packet taken from the core before a drop must not be emitted after
        #: it (on a client it would go out on the new connection, ahead of the resume).
        self.epoch = 0
        self._meter_of: MeterFunction = no_meter
        self._meter: Meter | None = None
        #: The sender waits for python-engineio to send what it holds (see _unsent.py).
        self.waiting_for_transport = False

    def _start_sender(self) -> None:
        raise NotImplementedError

    def hello_not_coming(self) -> None:
        """Client: the server will send no hello; a disconnect waiting for one goes on now."""
        self.no_hello = True
        leaving, self.leaving = self.leaving, None
        if leaving is not None and not leaving.done():
            leaving.set_result(None)

    # -- the transport's queue (see _unsent.py) ----------------------------------------------------
    def use_meter(self, meter: MeterFunction) -> None:
        """Find this connection's engine.io queue with ``meter`` from now on (a resumed session's
        new connection has a queue of its own)."""
        self._forget_meter()
        self._meter_of = meter

    def _forget_meter(self) -> None:
        if self._meter is not None:
            self._meter.cancel(self)
            self._meter = None
        self.waiting_for_transport = False

    def unsent(self) -> int:
        """Bytes of this connection waiting in python-engineio's send queue (0 if not metered)."""
        meter = self._meter or self._meter_of()
        return meter.queued if meter is not None else 0

    def transport_full(self) -> bool:
        """The sender asks before each packet: True when python-engineio holds too much of this
        connection's data unsent, and the sender must stop; :meth:`_transport_drained` is then
        called (from the thread that empties the queue) once it has drained to half."""
        meter = self._meter
        if meter is None:
            meter = self._meter = self._meter_of()
            if meter is None:
                return False
        if not meter.full:
            return False
        meter.when_drained(self, self._transport_drained)
        if not meter.full:  # drained meanwhile (a sync driver's writer thread)
            meter.cancel(self)
            return False
        self.waiting_for_transport = True
        return True

    def _transport_drained(self) -> None:
        """The queue drained: start sending again (the driver's; called by whoever emptied it)."""
        raise NotImplementedError

    def _watch_turns(self) -> None:
        """Debts wait for the connection window: call ``core.check_turns()`` every
        ``STALL_CHECK`` seconds while it returns True (see sio_stream.core._turns)."""
        raise NotImplementedError

    def decode_stream(self, stream_id: Any, options: Any, credit: Any = None) -> Any:
        """A stream for a placeholder the peer sent (failed at once if it was bad); ``credit``:
        the placeholder's initial credit (negotiated ``initial-credit``), ``None`` if none."""
        stream = self._stream_class(self.core.decode_placeholder(stream_id, options, credit))
        stream.received = True
        self.watch_idle()
        return stream

    def watch_idle(self) -> None:
        """Make sure the idle sweep runs (call whenever a stream is registered)."""

    def sweep_idle(self) -> None:
        """One idle sweep (the driver calls it every ``idle_timeout / IDLE_SWEEPS`` seconds)."""
        timeout = self.core.config.idle_timeout
        self.core.sweep_idle(
            self.IDLE_SWEEPS, f"stream idle: nobody read or wrote it for {timeout} s (idle_timeout)"
        )

    def queue(self, item: Outgoing) -> None:
        self.core.queue(item)

    def send_hello(self, resume: dict[str, Any] | None = None) -> None:
        if not self.hello_sent and not self.core.closed:
            self.hello_sent = True
            self.core.queue(self.core.hello(resume))

    # -- negotiated resume ------------------------------------------------------------------------
    def suspend(self, expire: Callable[[], None]) -> None:
        """The transport dropped and the session may resume: keep the streams, send nothing,
        and call ``expire`` after ``resume_timeout`` seconds unless :meth:`resumed` came first.
        Pending ``call()``s wait: their answers come after the resume (see :meth:`answers_lost`)."""
        again = self.core.suspended  # dropped again before the resume completed: the clock runs on
        self.epoch += 1
        self.core.suspend()
        self._stop_sending()
        if not again:
            self._start_expiry(self.core.config.resume_timeout, expire)

    def send_resume_hello(self) -> None:
        """The client is connected again: ask the server to resume, reporting what we have."""
        self.hello_sent = True
        state = self.core.resume_state()
        resume = {
            "token": self.token,
            "streams": state,
            "events": self.core.events_received,
            "awaiting": self.core.sent_events.awaited(),
        }
        self.core.queue_control(self.core.hello(resume))

    def answers_lost(self, hello: dict[str, Any]) -> None:
        """After a resume with a peer whose hello does not list the answers it waits for (it
        does not send ours again): the acks python-socketio lost with the old connection will
        never come, so pending ``call()``s fail (with ``"Connection aborted"``), as without resume."""
        if "awaiting" not in hello:
            self.core.sent_events.awaiting.clear()
            self._fail_calls(ConnectionAbortedStreamError(wire.CONNECTION_ABORTED))

    def resumed(self) -> None:
        """The session resumed (the core applied the peer's state): stop the expiry clock."""
        self._stop_expiry()
        self.watch_idle()

    def _stop_sending(self) -> None:
        """Stop the sender now (the driver's)."""

    def _start_expiry(self, delay: float, expire: Callable[[], None]) -> None:
        """Call ``expire`` in ``delay`` seconds (the driver's timer)."""
        raise NotImplementedError

    def _stop_expiry(self) -> None:
        """Cancel the timer of :meth:`_start_expiry`."""

    def _fail_calls(self, error: StreamError) -> None:
        for future in self.pending_calls:
            if not future.done():
                future.set_exception(error)
        self.pending_calls.clear()

    def unclaimed_check(self, streams: list[StreamCore], timeout: float, event: str) -> Callable[[], None]:
        """A check that fails those of ``streams`` (returned through an ack) the peer never
        used; the driver runs it ``timeout`` seconds from now.

        A handler cannot tell whether its event carried an ack; without one the returned
        streams never reach the peer, and would hold their writers until the connection ends.
        """
        refs = [weakref.ref(s) for s in streams]

        def check() -> None:
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

        return check

    def expect_claims(self, streams: list[StreamCore], timeout: float | None, event: str) -> None:
        """Fail ``streams`` (returned through an ack) if the peer never uses them (see
        :meth:`unclaimed_check`); the driver schedules the check."""

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

    def emit_failed(self, item: Outgoing, exc: Exception, live: bool) -> bool:
        """python-socketio raised while sending ``item``: say whether the sender goes on.

        Still connected (``live``), it could not encode this packet (a value that is not
        JSON): only the streams it concerns fail, and the peer is told. Otherwise the
        connection is gone (python-socketio says so by raising) and every stream fails."""
        if live:
            logger.error("sio_stream: cannot send %s on %s: %s", item.event, self.label, exc)
            self.core.fail_outgoing(item, f"cannot send {item.event}: {exc}")
            return True
        if self.core.resumable and not self.core.closed:
            # The disconnect event follows and suspends the session: an application event
            # goes again after the resume (the core kept it when it gave it to us: putting it
            # back in the outbox too sent it twice); writes are replayed from what the peer
            # reports.
            logger.info("sio_stream: emit on %s failed (%s); waiting for the disconnect", self.label, exc)
            return False
        logger.info("sio_stream: emit on %s failed (%s); aborting its streams", self.label, exc)
        self.core.connection_lost()
        return False

    def lost(self, error: StreamError | None = None) -> None:
        """The connection dropped: fail every stream and every pending call with "Connection
        aborted" (or ``error``)."""
        self._stop_expiry()
        self._forget_meter()
        self.core.connection_lost(error)
        self._fail_calls(error or ConnectionAbortedStreamError(wire.CONNECTION_ABORTED))
        self.hello_not_coming()  # a disconnect waiting for the hello goes on: none comes now
        closing, self.closing = self.closing, None
        if closing is not None and not closing.done():
            closing.set_result(None)  # nor the answer to its close

    @property
    def streams(self) -> dict[str, StreamCore]:
        return self.core.streams
