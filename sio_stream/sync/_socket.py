"""StreamSocket for the sync API: :class:`~sio_stream.glue._dispatch.SocketLogic` driven by threads
(each connection's sender and timers are in :mod:`sio_stream.sync._connection`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .._errors import HandlerError, LocalProtocolError, StreamError, StreamTimeoutError
from ..core._config import DEFAULT_RESUME_TIMEOUT
from ..glue import _client_masks as client_masks
from ..glue import _compression as compression
from ..glue import _fast_unmask as fast_unmask
from ..glue import _no_delay as no_delay
from ..glue import _server_reads as server_reads
from ..glue import _split_posts as split_posts
from ..glue import _unsent as unsent
from ..glue import _whole_frames as whole_frames
from ..glue._call import streams_in
from ..glue._dispatch import LEAVING_TIMEOUT, AwaitedHandler, PreparedEvent, SocketLogic, socket_config
from . import _client_reads as client_reads
from ._connection import Connection
from ._fanout import Fanout
from ._host import ASYNC_HANDLERS_NEEDED, SyncHost
from ._stream import LOCK, IOStream, use_events

logger = logging.getLogger("sio_stream")

_SOCKETS_ATTRIBUTE = "_sio_stream_sync_sockets"
#: How long a handler's ack waits for our queued hello to go out first (the sender runs).
_HELLO_WAIT = 10.0


def ss(
    sio: Any,
    namespace: str = "/",
    *,
    claim_timeout: float | None = 60.0,
    websocket_compression: bool = False,
    resume_timeout: float = DEFAULT_RESUME_TIMEOUT,
    **options: Any,
) -> StreamSocket:
    """The sync :class:`StreamSocket` of ``sio`` for ``namespace``: a ``socketio.Server``,
    ``socketio.Client`` or ``flask_socketio.SocketIO`` (after ``init_app``).

    Options, limits and errors as :func:`sio_stream.ss`. Flask-SocketIO handlers are called
    without a sid (use ``flask.request.sid``), inside Flask-SocketIO's request context.
    On a server, websockets go uncompressed unless ``websocket_compression`` (threading and
    eventlet modes; a gevent server keeps compression, see :mod:`sio_stream.glue._compression`), as
    :func:`sio_stream.ss` says.

    ``resume_timeout`` (default 30 s; 0 turns it off), as :func:`sio_stream.ss`: a
    ``socketio.Client`` reconnects by itself after its transport drops, and its streams continue
    on the new connection; a server keeps a dropped client's streams that long. Sync and asyncio
    peers resume each other's sessions (one protocol, see the protocol notes, ``resume``).
    ``initial_credit`` (default 0: off), as :func:`sio_stream.ss`: a stream's writes that a
    server's receive loop handles before its event's handler thread are held within the offer.
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
    # initial_credit offers as the asyncio driver's: writes that overtake their stream's event
    # (handled on the receive loop while the event waits for its handler thread) are held within
    # the offer and delivered behind the event (core/_early.py), and a primed stream's end
    # carries its final size, so nothing is lost unseen.
    config = socket_config(resume_timeout=resume_timeout, **options)
    host = SyncHost(sio, namespace)
    if host.is_server:  # before anything is installed: it raises on a conflicting choice
        compression.configure(host.sio.eio, websocket_compression)
        whole_frames.configure(host.sio.eio)
        fast_unmask.configure(host.sio.eio)
        server_reads.configure(host.sio.eio)
        no_delay.configure(host.sio.eio)
        unsent.configure_server(host.sio.eio)
    else:
        split_posts.configure(host.sio.eio)
        client_masks.configure(host.sio.eio)
        client_reads.configure(host.sio.eio)  # after the masks: it builds on their class
        unsent.configure_client(host.sio.eio)
    socket = StreamSocket(host, config, claim_timeout=claim_timeout)
    use_events(host.create_event)
    if not host.is_server and not per_sio:
        _announce_disconnects(host.sio)
    per_sio[namespace] = socket
    setattr(host.sio, _SOCKETS_ATTRIBUTE, per_sio)
    return socket


def _announce_disconnects(client: Any) -> None:
    """Wrap a ``socketio.Client``'s ``disconnect()`` as the asyncio driver wraps an
    ``AsyncClient``'s: each socket with a resumable session tells the server first (one round
    trip, at most LEAVING_TIMEOUT in all), so that the server fails the session's streams at
    once instead of keeping them for ``resume_timeout``."""
    original = client.disconnect

    def disconnect(*args: Any, **kwargs: Any) -> Any:
        sockets: dict[str, StreamSocket] = getattr(client, _SOCKETS_ATTRIBUTE, {})
        with LOCK:
            waits = [w for w in (s._leaving() for s in sockets.values()) if w is not None]
        deadline = time.monotonic() + LEAVING_TIMEOUT
        for wait in waits:
            wait.event.wait(max(0.0, deadline - time.monotonic()))
        return original(*args, **kwargs)

    client.disconnect = disconnect


class Future:
    """One recipient's answer to a ``call()``, set from any thread; settling it sets ``event``
    (shared by the futures of one call, which waits for any of them)."""

    def __init__(self, event: Any) -> None:
        self.event = event
        self._done = False
        self._result: Any = None
        self._exception: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def _settle(self, result: Any, exception: BaseException | None) -> None:
        if not self._done:
            self._done, self._result, self._exception = True, result, exception
            self.event.set()

    def set_result(self, result: Any, /) -> None:
        self._settle(result, None)

    def set_exception(self, exception: BaseException, /) -> None:
        self._settle(None, exception)

    def cancel(self) -> bool:
        self._settle(None, StreamTimeoutError("call cancelled"))
        return True

    def cancelled(self) -> bool:
        return False  # cancel() settles it with an error instead

    def exception(self) -> BaseException | None:
        return self._exception

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result


class StreamSocket(SocketLogic):
    """Streams over one sync python-socketio server or client, in one namespace (see :func:`ss`).

    The same logic as :class:`sio_stream.StreamSocket`, with blocking calls; handlers run in
    python-socketio's handler threads and may block (read their streams, for instance).
    """

    stream_class = IOStream
    guard = LOCK
    _host: SyncHost
    _connections: dict[Any, Connection]

    def _new_fanout(self, source: IOStream, max_lag: int | None, label: str) -> Fanout:
        return Fanout(self._host, source, max_lag, label)

    def _new_connection(self, peer: Any, label: str) -> Connection:
        host = self._host
        return Connection(
            host,
            self._config,
            label,
            host.emitter(peer),
            lambda: host.is_live(peer),
            caller_sends=True,
            meter=lambda: host.meter(peer),
        )

    def _new_future(self) -> Future:
        return Future(self._host.create_event())

    def _drop_peer(self, peer: Any) -> None:
        self._host.sio.start_background_task(self._host.sio.disconnect, peer, namespace=self.namespace)

    def _rebind(self, connection: Any, peer: Any) -> None:
        assert isinstance(connection, Connection)
        host = self._host
        connection.rebind(
            host.emitter(peer),
            lambda: host.is_live(peer),
            f"{self.namespace} {peer}",
            lambda: host.meter(peer),
        )

    def _deliver_ack(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        # Never run application code on python-socketio's receive loop.
        self._host.sio.start_background_task(callback, *args)

    def emit(
        self,
        event: str,
        *args: Any,
        to: str | list[str] | None = None,
        callback: Callable[..., Any] | None = None,
        skip_sid: str | list[str] | None = None,
        max_lag: int | None = None,
    ) -> None:
        """Send ``event`` with ``args`` (streams at any depth); on a server ``to`` is the sid.

        ``callback`` gets the decoded ack (or one :class:`~sio_stream.HandlerError`), in a
        background task. Returns once the event is queued; raises as the async ``emit``.

        On a server ``to`` may also be a room or a list of sids and rooms, less ``skip_sid``, and
        a stream a client sent may be emitted on (a relay), as with the async ``emit``: each
        recipient gets its own sub-stream, fed from the one stream you write, at the pace of the
        slowest recipient or, with ``max_lag``, of the fastest (see
        :mod:`sio_stream.glue._fanout`); ``callback`` is then called as ``callback(sid, *ack)``.
        """
        with LOCK:
            self._emit(event, args, to, callback, skip_sid, max_lag)

    def call(
        self,
        event: str,
        *args: Any,
        to: str | list[str] | None = None,
        timeout: float | None = 60,
        skip_sid: str | list[str] | None = None,
        max_lag: int | None = None,
        writer: Callable[[], Any] | None = None,
    ) -> Any:
        """Emit ``event`` and wait for the ack (its value, a tuple of several, or ``None``).

        ``timeout`` counts seconds with neither the ack nor progress on the streams in
        ``args``, as in the async ``call()``; raises the same errors. To a room or a list (see
        :meth:`emit`) it returns a dict of every recipient's sid to its ack value, or to the
        exception that stands for it.

        ``writer``, a function of no arguments (``lambda: send_file(stream, path)``), writes the
        streams of ``args`` in a background task (a thread; a greenlet under eventlet or gevent)
        while the call waits; the call returns the ack once both have finished. If the call
        fails, the streams of ``args`` are destroyed, so a ``writer`` blocked on them stops, and
        its end is awaited: nothing is left running. Raised: ``writer``'s own error when it is
        not a :class:`~sio_stream.StreamError` (an ``OSError`` for a missing file, a bug); else
        the call's (the peer's :class:`~sio_stream.HandlerError` says why it broke the stream);
        else ``writer``'s stream error (the peer answered but the stream failed).
        """
        # One event for the call's futures (one per recipient): set by whichever settles.
        settled = self._host.create_event()
        try:
            with LOCK:
                pending = self._start_call(event, args, to, skip_sid, max_lag, lambda: Future(settled))
        except BaseException as exc:
            if writer is not None:  # its streams could never finish: as a call that failed
                for stream in streams_in(args):
                    stream.destroy(exc if isinstance(exc, Exception) else "call interrupted")
            raise
        if writer is not None:
            # Only now, with the event queued: a writer that closed a stream before the call had
            # sent it would destroy it (closing a stream never sent does).
            return self._call_writing(args, writer, lambda: self._await_call(pending, settled, timeout))
        return self._await_call(pending, settled, timeout)

    def _await_call(self, pending: Any, settled: Any, timeout: float | None) -> Any:
        try:
            while True:
                settled.clear()  # before looking: a future settled after this sets it again
                if not pending.waiting():
                    break
                if settled.wait(timeout):
                    continue
                with LOCK:
                    if pending.stalled(timeout):
                        break
        finally:
            with LOCK:
                pending.close()
        return pending.result()

    def _call_writing(
        self, args: tuple[Any, ...], writer: Callable[[], Any], await_call: Callable[[], Any]
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
            result = await_call()
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
