"""StreamSocket for the sync API: :class:`~sio_stream.glue._dispatch.SocketLogic` driven by threads.

Each connection has a sender (a background task of the server's or client's async mode) that
emits what the core queued, in order, outside :data:`LOCK`; it exits after a few idle seconds
and is started again by the next packet. A ticker task runs the idle sweeps and claim checks
while the connection holds streams.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .._errors import HandlerError, LocalProtocolError, StreamError, StreamTimeoutError
from ..core._core import (
    CoreConfig,
    StreamCore,
)
from ..core._wire import HELLO
from ..glue import _compression as compression
from ..glue._call import streams_in
from ..glue._connection import ConnectionLogic
from ..glue._dispatch import AwaitedHandler, PreparedEvent, SocketLogic, socket_config
from ._host import ASYNC_HANDLERS_NEEDED, SyncHost
from ._stream import LOCK, IOStream, use_events

logger = logging.getLogger("sio_stream")

_SOCKETS_ATTRIBUTE = "_sio_stream_sync_sockets"
#: Seconds a sender waits for more to send before its task ends.
_SENDER_LINGER = 5.0
#: Longest sleep of the ticker: claim deadlines added meanwhile are seen within this.
_TICK = 1.0
#: How long a handler's ack waits for our queued hello to go out first (the sender runs).
_HELLO_WAIT = 10.0


def ss(
    sio: Any,
    namespace: str = "/",
    *,
    claim_timeout: float | None = 60.0,
    websocket_compression: bool = False,
    **options: Any,
) -> StreamSocket:
    """The sync :class:`StreamSocket` of ``sio`` for ``namespace``: a ``socketio.Server``,
    ``socketio.Client`` or ``flask_socketio.SocketIO`` (after ``init_app``).

    Options, limits and errors as :func:`sio_stream.ss`. Flask-SocketIO handlers are called
    without a sid (use ``flask.request.sid``), inside Flask-SocketIO's request context.
    On a server, websockets go uncompressed unless ``websocket_compression`` (threading and
    eventlet modes; a gevent server keeps compression, see :mod:`sio_stream.glue._compression`), as
    :func:`sio_stream.ss` says.
    Raises :class:`~sio_stream.LocalProtocolError` for ``async_handlers=False``.
    """
    host_object = getattr(sio, "server", None) if type(sio).__name__ == "SocketIO" else sio
    per_sio: dict[str, StreamSocket] = getattr(host_object, _SOCKETS_ATTRIBUTE, None) or {}
    existing = per_sio.get(namespace)
    if existing is not None:
        existing._check_same(
            options.get("window"),
            options.get("max_chunk"),
            options.get("force_base64"),
            options.get("object_window"),
        )
        if existing._host.is_server:
            compression.configure(existing._host.sio.eio, websocket_compression)
        return existing
    config = socket_config(**options)
    host = SyncHost(sio, namespace)
    if host.is_server:  # before anything is installed: it raises on a conflicting choice
        compression.configure(host.sio.eio, websocket_compression)
    socket = StreamSocket(host, config, claim_timeout=claim_timeout)
    use_events(host.create_event)
    per_sio[namespace] = socket
    setattr(host.sio, _SOCKETS_ATTRIBUTE, per_sio)
    return socket


class Future:
    """The result of one ``call()``, set from any thread (under :data:`LOCK`)."""

    def __init__(self, event: Any) -> None:
        self._event = event
        self._done = False
        self._result: Any = None
        self._exception: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def _settle(self, result: Any, exception: BaseException | None) -> None:
        if not self._done:
            self._done, self._result, self._exception = True, result, exception
            self._event.set()

    def set_result(self, result: Any, /) -> None:
        self._settle(result, None)

    def set_exception(self, exception: BaseException, /) -> None:
        self._settle(None, exception)

    def cancel(self) -> bool:
        self._settle(None, StreamTimeoutError("call cancelled"))
        return True

    def exception(self) -> BaseException | None:
        return self._exception

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result

    def wait(self, timeout: float | None) -> bool:
        return bool(self._event.wait(timeout))


class Connection(ConnectionLogic):
    """One connection's streams, its ordered sender task and its ticker task."""

    def __init__(self, host: SyncHost, peer: Any, config: CoreConfig, label: str) -> None:
        super().__init__(config, label, IOStream)
        self._emit = host.emitter(peer)
        self._is_live: Callable[[], bool] = lambda: host.is_live(peer)
        self._spawn: Callable[..., Any] = host.sio.start_background_task
        self._sleep: Callable[[float], Any] = host.sio.sleep
        self._more = host.create_event()
        self._sending = False
        self._ticking = False
        self._claims: list[tuple[float, Callable[[], None]]] = []
        self._next_sweep = 0.0
        # Set once our $stream-hello is on the wire (or the connection is gone): an ack that
        # python-socketio sends from a handler thread must not overtake it, or the peer reads
        # an error reply before it knows we send them (see StreamSocket._on_stream).
        self.hello_out = host.create_event()

    # -- the sender (started under LOCK) -----------------------------------------------------------
    def _start_sender(self) -> None:
        if self.core.closed or self.core.connecting:
            return
        if self._sending:
            self._more.set()
            return
        self._sending = True
        self._spawn(self._run_sender)

    def _run_sender(self) -> None:
        while True:
            with LOCK:
                item = self.core.next_outgoing()
                if item is None:
                    if self.core.closed:
                        self._sending = False
                        return
                    self._more.clear()
            if item is None:
                if not self._more.wait(_SENDER_LINGER):
                    with LOCK:
                        if not self.core.outbox or self.core.closed:
                            self._sending = False
                            return
                continue
            on_ack = item.on_ack
            try:
                self._emit(item.event, item.args, None if on_ack is None else _Locked(on_ack))
            except Exception as exc:
                with LOCK:
                    if not self.emit_failed(item, exc, self._is_live()):
                        self._sending = False
                        return
            finally:
                if item.event == HELLO:
                    self.hello_out.set()  # on the wire, or never going to be: stop waiting

    # -- timers (started under LOCK) ---------------------------------------------------------------
    def watch_idle(self) -> None:
        if self._ticking or self.core.closed:
            return
        if not self._claims and (self.core.config.idle_timeout is None or not self.core.streams):
            return
        self._ticking = True
        self._next_sweep = self._sweep_period() + time.monotonic()
        self._spawn(self._tick)

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
                due = min([self._next_sweep, *(deadline for deadline, _ in self._claims)])
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
                if not self._claims and (self.core.config.idle_timeout is None or not self.core.streams):
                    self._ticking = False
                    return

    def lost(self, error: StreamError | None = None) -> None:
        super().lost(error)
        self._claims.clear()
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


class StreamSocket(SocketLogic):
    """Streams over one sync python-socketio server or client, in one namespace (see :func:`ss`).

    The same logic as :class:`sio_stream.StreamSocket`, with blocking calls; handlers run in
    python-socketio's handler threads and may block (read their streams, for instance).
    """

    stream_class = IOStream
    guard = LOCK
    _host: SyncHost
    _connections: dict[Any, Connection]

    def _emit_many(self, event: str, *rest: Any) -> list[str]:
        raise LocalProtocolError(
            f"emit({event!r}): the sync API sends streams to one peer at a time (to=sid); rooms, "
            "lists of sids and relays of a received stream need the asyncio API for now"
        )

    def _new_connection(self, peer: Any, label: str) -> Connection:
        return Connection(self._host, peer, self._config, label)

    def _deliver_ack(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        # Never run application code on python-socketio's receive loop.
        self._host.sio.start_background_task(callback, *args)

    def emit(
        self,
        event: str,
        *args: Any,
        to: str | None = None,
        callback: Callable[..., Any] | None = None,
    ) -> None:
        """Send ``event`` with ``args`` (streams at any depth); on a server ``to`` is the sid.

        ``callback`` gets the decoded ack (or one :class:`~sio_stream.HandlerError`), in a
        background task. Returns once the event is queued; raises as the async ``emit``.
        """
        with LOCK:
            self._emit(event, args, to, callback, None, None)

    def call(
        self,
        event: str,
        *args: Any,
        to: str | None = None,
        timeout: float | None = 60,
        writer: Callable[[], Any] | None = None,
    ) -> Any:
        """Emit ``event`` and wait for the ack (its value, a tuple of several, or ``None``).

        ``timeout`` counts seconds with neither the ack nor progress on the streams in
        ``args``, as in the async ``call()``; raises the same errors.

        ``writer``, a function of no arguments (``lambda: send_file(stream, path)``), writes the
        streams of ``args`` in a background task (a thread; a greenlet under eventlet or gevent)
        while the call waits; the call returns the ack once both have finished. If the call
        fails, the streams of ``args`` are destroyed, so a ``writer`` blocked on them stops, and
        its end is awaited: nothing is left running. Raised: ``writer``'s own error when it is
        not a :class:`~sio_stream.StreamError` (an ``OSError`` for a missing file, a bug); else
        the call's (the peer's :class:`~sio_stream.HandlerError` says why it broke the stream);
        else ``writer``'s stream error (the peer answered but the stream failed).
        """
        if writer is not None:
            return self._call_writing(event, args, to, timeout, writer)
        with LOCK:
            pending = self._start_call(event, args, to, None, None, lambda: Future(self._host.create_event()))
        future = pending.futures[to]
        assert isinstance(future, Future)
        try:
            while not future.done():
                if future.wait(timeout):
                    continue
                with LOCK:
                    if pending.stalled(timeout):
                        break
        finally:
            with LOCK:
                pending.close()
        return pending.result()

    def _call_writing(
        self,
        event: str,
        args: tuple[Any, ...],
        to: str | None,
        timeout: float | None,
        writer: Callable[[], Any],
    ) -> Any:
        ended = self._host.create_event()
        failures: list[BaseException] = []

        def write() -> None:
            try:
                writer()
            except BaseException as exc:  # raised by call() in the caller's thread
                failures.append(exc)
            finally:
                ended.set()

        self._host.sio.start_background_task(write)
        try:
            result = self.call(event, *args, to=to, timeout=timeout)
        except BaseException as exc:
            for stream in streams_in(args):
                stream.destroy(exc if isinstance(exc, Exception) else "call interrupted")
            ended.wait()
            if failures and not isinstance(failures[0], StreamError):
                raise failures[0] from None  # the cause: the call failed because of it
            raise
        ended.wait()
        if failures:
            raise failures[0]
        return result

    def _on_stream(self, peer: Any, *args: Any) -> Any:
        with LOCK:
            prepared = self._prepare_event(peer, args)
            connection = self._connections.get(peer)
        if self._host.is_server and not self._host.sio.async_handlers:
            # Flask-SocketIO's test client turns it off after ss(): refuse instead of hanging.
            logger.error("sio_stream: %s", ASYNC_HANDLERS_NEEDED)
            error = LocalProtocolError(ASYNC_HANDLERS_NEEDED)
            outcome = prepared.finish(failure=error) if isinstance(prepared, PreparedEvent) else prepared
        elif isinstance(prepared, PreparedEvent):
            outcome = prepared.run()
            if isinstance(outcome, AwaitedHandler):
                close = getattr(outcome.awaitable, "close", None)
                if close is not None:
                    close()
                outcome = outcome.event.finish(failure=HandlerError("sync API handlers cannot be coroutines"))
        else:
            outcome = prepared
        if connection is not None and connection.hello_sent:
            # python-socketio sends this return value as the ack from this thread; our hello
            # (queued, not yet on the wire) goes out from the connection's sender thread,
            # which may not have run yet. (No hello queued: a JavaScript peer, never any.)
            connection.hello_out.wait(_HELLO_WAIT)
        return outcome
