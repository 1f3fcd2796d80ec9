"""StreamSocket: socket.io-stream's ``ss(socket)`` for a python-socketio server or client.

It routes the five wire events into each connection's protocol core (synchronously, before
any ``await``, so chunks are queued in arrival order), turns application events that carry
streams into calls of the handlers registered with :meth:`StreamSocket.on`, and sends every
outgoing packet through the connection's ordered sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

from . import _connect_scope as connect_scope
from . import _placeholder as placeholders
from . import _wire as wire
from ._connection import Connection
from ._core import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFERED,
    DEFAULT_MAX_CHUNK,
    DEFAULT_MAX_PLACEHOLDERS,
    DEFAULT_MAX_READ_CHUNK,
    DEFAULT_MAX_STREAMS,
    DEFAULT_OBJECT_WINDOW,
    DEFAULT_WINDOW,
    FEATURE_ERROR_REPLY,
    CoreConfig,
    Outgoing,
    PendingReply,
)
from ._errors import (
    ConnectionAbortedStreamError,
    HandlerError,
    InvalidOptionError,
    LocalProtocolError,
    StreamError,
    StreamTimeoutError,
)
from ._fanout import Fanout
from ._host import Host
from ._stream import IOStream

logger = logging.getLogger("sio_stream")

Handler = TypeVar("Handler", bound=Callable[..., Any])

# The StreamSockets of a socketio object are kept on that object (see _host._HOOKS_ATTRIBUTE).
_SOCKETS_ATTRIBUTE = "_sio_stream_sockets"
# Application callbacks that returned coroutines run as tasks; hold them until they finish.
_background: set[asyncio.Task[Any]] = set()


def ss(
    sio: Any,
    namespace: str = "/",
    *,
    window: int | None = None,
    object_window: int | None = None,
    max_chunk: int | None = None,
    force_base64: bool | None = None,
    claim_timeout: float | None = 60.0,
    max_streams: int = DEFAULT_MAX_STREAMS,
    max_read_chunk: int = DEFAULT_MAX_READ_CHUNK,
    max_placeholders: int = DEFAULT_MAX_PLACEHOLDERS,
    max_buffered: int = DEFAULT_MAX_BUFFERED,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
) -> StreamSocket:
    """The :class:`StreamSocket` of ``sio`` (an ``AsyncServer`` or ``AsyncClient``) for ``namespace``.

    There is one per ``(sio, namespace)``: calling ``ss()`` again returns the same instance
    (options given then must match, or :class:`InvalidOptionError` is raised). ``window``
    (chunks a reader keeps in flight, default 8), ``object_window`` (objects an object-mode reader
    keeps in flight, default 128: lower it when objects are large, as a reader may hold that many),
    ``max_chunk`` (largest chunk sent, default
    256 KiB) and ``force_base64`` (send chunks as base64 text, as JavaScript's
    ``ss.forceBase64``) apply to every stream of that socket. Streams a handler returns are
    failed if the peer has not used them after ``claim_timeout`` seconds (``None``: never),
    since an event sent without an ack never delivers them.

    Limits on what a peer can make each connection hold (exceeding one fails the offending
    stream, or every stream of the offending event, with a ``$stream-error``; never the
    connection): ``max_streams`` open streams (default 1000), ``max_read_chunk`` bytes in one
    incoming chunk (default 1 MiB), ``max_placeholders`` streams in one event or ack (default 100),
    ``max_buffered`` received bytes left unread over all streams (default 128 MiB), and
    ``idle_timeout``: seconds a stream may see no read, write or peer event (default 600; ``None``
    disables it).
    They are fixed by the first ``ss()`` call for a socket.
    Raises :class:`LocalProtocolError` for an ``AsyncServer(async_handlers=False)``.
    """
    per_sio: dict[str, StreamSocket] | None = getattr(sio, _SOCKETS_ATTRIBUTE, None)
    if per_sio is None:
        per_sio = {}
    existing = per_sio.get(namespace)
    if existing is not None:
        existing._check_same(window, max_chunk, force_base64, object_window)
        return existing
    config = CoreConfig(
        window=DEFAULT_WINDOW if window is None else window,
        object_window=DEFAULT_OBJECT_WINDOW if object_window is None else object_window,
        max_chunk=DEFAULT_MAX_CHUNK if max_chunk is None else max_chunk,
        force_base64=bool(force_base64),
        max_streams=max_streams,
        max_read_chunk=max_read_chunk,
        max_placeholders=max_placeholders,
        max_buffered=max_buffered,
        idle_timeout=idle_timeout,
    )
    socket = StreamSocket(Host(sio, namespace), config, claim_timeout=claim_timeout)
    per_sio[namespace] = socket
    setattr(sio, _SOCKETS_ATTRIBUTE, per_sio)
    return socket


class StreamSocket:
    """Streams over one python-socketio server or client, in one namespace.

    Use :func:`ss` to get one. Handlers registered with :meth:`on` receive decoded
    arguments (streams as :class:`IOStream`); on a server the client's sid comes first.
    """

    def __init__(self, host: Host, config: CoreConfig, *, claim_timeout: float | None = 60.0) -> None:
        if not isinstance(config.window, int) or config.window < 1:
            raise InvalidOptionError(f"window must be a positive integer, not {config.window!r}")
        if not isinstance(config.object_window, int) or config.object_window < 1:
            raise InvalidOptionError(
                f"object_window must be a positive integer, not {config.object_window!r}"
            )
        if not isinstance(config.max_chunk, int) or not 1 <= config.max_chunk <= 4 * 1024 * 1024:
            raise InvalidOptionError(f"max_chunk must be between 1 byte and 4 MiB, not {config.max_chunk!r}")
        for name in ("max_streams", "max_read_chunk", "max_placeholders", "max_buffered"):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOptionError(f"{name} must be a positive integer, not {value!r}")
        idle = config.idle_timeout
        if idle is not None and (isinstance(idle, bool) or not isinstance(idle, (int, float)) or idle <= 0):
            raise InvalidOptionError(f"idle_timeout must be a positive number or None, not {idle!r}")
        self._host = host
        self._config = config
        self._claim_timeout = claim_timeout
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._connections: dict[Any, Connection] = {}
        host.on(wire.STREAM, self._on_stream)
        host.on(wire.READ, self._on_read)
        host.on(wire.WRITE, self._on_write)
        host.on(wire.END, self._on_end)
        host.on(wire.ERROR, self._on_error)
        host.on(wire.HELLO, self._on_hello)
        host.on_lifecycle(self._on_lifecycle)

    def _check_same(
        self,
        window: int | None,
        max_chunk: int | None,
        force_base64: bool | None,
        object_window: int | None = None,
    ) -> None:
        for name, given, current in (
            ("window", window, self._config.window),
            ("object_window", object_window, self._config.object_window),
            ("max_chunk", max_chunk, self._config.max_chunk),
            ("force_base64", force_base64, self._config.force_base64),
        ):
            if given is not None and given != current:
                raise InvalidOptionError(f"ss() was already set up for this socket with {name}={current!r}")

    @property
    def sio(self) -> Any:
        """The python-socketio server or client."""
        return self._host.sio

    @property
    def namespace(self) -> str:
        return self._host.namespace

    # -- registering handlers --------------------------------------------------------------------
    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """Register ``handler`` for application events named ``event`` that carry streams.

        Use as ``streams.on("file", handler)`` or as a decorator. Server handlers are called as
        ``handler(sid, *args)``, client handlers as ``handler(*args)``; they may be coroutines.
        The return value is sent as the ack (a tuple for several arguments); streams in it are
        sent too. Returns the handler.
        """
        if not isinstance(event, str):
            raise TypeError("event names are strings")

        def register(fn: Handler) -> Handler:
            self._handlers[event] = fn
            return fn

        if handler is None:
            return register
        return register(handler)

    # -- sending ---------------------------------------------------------------------------------
    def emit(
        self,
        event: str,
        *args: Any,
        to: str | list[str] | None = None,
        callback: Callable[..., Any] | None = None,
        skip_sid: str | list[str] | None = None,
        max_lag: int | None = None,
    ) -> Queued:
        """Send application event ``event`` with ``args``; streams in them (at any depth) are sent.

        On a server, ``to`` is the client's sid (streams go to one peer). ``callback`` receives
        the peer's ack arguments, decoded (streams in them arrive as IOStream); when the peer's
        handler failed (a sio_stream peer says so), it receives one :class:`HandlerError`
        instead. The event is queued on the connection's ordered sender before this returns,
        so ``await streams.emit(...)`` and a plain ``streams.emit(...)`` (as in JavaScript) do
        the same. From a server's ``connect`` handler the event is sent right after
        python-socketio's CONNECT packet. Raises :class:`LocalProtocolError` when the peer is
        not connected or a stream was already sent.

        On a server ``to`` may also be a room or a list of sids and rooms, less ``skip_sid``
        (python-socketio's conventions; only clients connected to this process). Each recipient
        then gets its own sub-stream of every stream in ``args``, fed from the one stream you
        write (see :mod:`sio_stream._fanout` for the backpressure policy and ``max_lag``), and
        ``callback`` is called as ``callback(sid, *ack)`` for each recipient. A room with
        nobody in it raises :class:`LocalProtocolError` (the streams stay unsent).
        """
        recipients = self._host.recipients(to, skip_sid)
        if recipients is not None:
            self._emit_many(event, args, recipients, callback, max_lag, to)
            return _QUEUED
        assert to is None or isinstance(to, str)
        connection = self._connection_for_emit(to)
        on_ack = _AppAck(self, connection, callback) if callback is not None else None
        attached: list[IOStream] = []
        try:
            encoded = self._encode_into(connection, list(args), attached)
            connection.queue(Outgoing(wire.STREAM, (event, *encoded), on_ack))
        except BaseException:
            # Nothing was sent: the streams attached so far may be sent again later.
            for stream in attached:
                connection.core.detach(stream._core)
            raise
        # Announce only now: reads queued for a stream someone already reads, or an early end,
        # must reach the peer after the event that carries its placeholder.
        for stream in attached:
            connection.core.announce(stream._core)
        connection.watch_idle()
        return _QUEUED

    def _emit_many(
        self,
        event: str,
        args: tuple[Any, ...],
        recipients: list[str],
        callback: Callable[..., Any] | None,
        max_lag: int | None,
        to: Any,
    ) -> list[str]:
        """Send ``event`` to each of ``recipients``; return those it reached."""
        if max_lag is not None and (isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 1):
            raise InvalidOptionError(f"max_lag must be a positive integer or None, not {max_lag!r}")
        fanouts: dict[int, Fanout] = {}
        for stream in _streams_in(args):
            if stream._core.owner is not None or stream._core.settled or stream.error is not None:
                raise LocalProtocolError(f"stream {stream.id} was already sent or destroyed")
            fanouts.setdefault(id(stream), Fanout(stream, max_lag, f"{self.namespace} {to!r}"))
        reached: list[str] = []
        for sid in recipients:
            sent: list[IOStream] = []

            def sub_stream(obj: Any, sid: str = sid, sent: list[IOStream] = sent) -> Any:
                if isinstance(obj, IOStream):
                    sub = fanouts[id(obj)].sub_stream(sid)
                    sent.append(sub)
                    return sub
                return None

            recipient_args = placeholders.encode(list(args), sub_stream)
            on_ack = None if callback is None else functools.partial(callback, sid)
            try:
                self.emit(event, *recipient_args, to=sid, callback=on_ack)
            except StreamError as exc:
                # That recipient left meanwhile: the others still get the event.
                logger.info("sio_stream: %r not sent to %s: %s", event, sid, exc)
                for fanout in fanouts.values():
                    fanout.subs.pop(sid, None)
                continue
            reached.append(sid)
        if not reached:
            raise LocalProtocolError(f"no client in {to!r} could be sent {event!r}")
        for fanout in fanouts.values():
            fanout.start()
        return reached

    async def call(
        self,
        event: str,
        *args: Any,
        to: str | list[str] | None = None,
        timeout: float | None = 60,
        skip_sid: str | list[str] | None = None,
        max_lag: int | None = None,
    ) -> Any:
        """Emit ``event`` and wait for the ack: its single argument, or a tuple of several
        (``None`` for an empty ack).

        ``timeout`` counts seconds with neither the ack nor any progress on the streams in
        ``args``: every chunk sent or received, read or end on them starts the count again, so
        a long transfer is never cut while it moves, and the count runs from the moment its
        streams finish or stall. ``None`` waits as long as the connection lasts.

        Raises :class:`StreamTimeoutError` after ``timeout`` idle seconds,
        :class:`HandlerError` (``remote`` true) when a sio_stream peer's handler failed,
        :class:`ConnectionAbortedStreamError` if the connection drops first, and
        :class:`LocalProtocolError` from a server's ``connect`` handler (the client cannot
        answer before the handler returns).

        To a room or a list (see :meth:`emit`), it returns a dict of every recipient's sid to
        its ack value, or to the exception above that stands for it: one recipient's failure
        does not hide the others' answers.
        """
        recipients = self._host.recipients(to, skip_sid)
        peers: list[Any] = [to] if recipients is None else recipients
        connections = {peer: self._connection_for_emit(peer) for peer in peers}
        if connect_scope.inside_connect_handler() and any(c.core.connecting for c in connections.values()):
            raise LocalProtocolError(f"call({event!r}) cannot wait for an ack: {connect_scope.ADVICE}")
        loop = asyncio.get_running_loop()
        futures: dict[Any, asyncio.Future[Any]] = {peer: loop.create_future() for peer in peers}

        def resolve(peer: Any, *ack: Any) -> None:
            future = futures[peer]
            if future.done():
                # Too late: nobody will read the streams in this ack.
                for value in ack:
                    _destroy_streams_in(value, StreamTimeoutError(f"ack for {event!r} came too late"))
                return
            if len(ack) == 1 and isinstance(ack[0], HandlerError):
                future.set_exception(ack[0])
                return
            future.set_result(ack[0] if len(ack) == 1 else (tuple(ack) if ack else None))

        if recipients is None:
            self.emit(event, *args, to=to, callback=functools.partial(resolve, to))
        else:
            reached = self._emit_many(event, args, recipients, resolve, max_lag, to)
            for peer in peers:
                if peer not in reached:
                    futures[peer].set_exception(ConnectionAbortedStreamError(wire.CONNECTION_ABORTED))
        moving = [stream._core for stream in _streams_in(args)]
        # python-socketio drops pending acks when the connection drops: fail the call then.
        for peer, connection in connections.items():
            connection.pending_calls.add(futures[peer])
        try:
            seen = -1
            while True:
                waiting = [future for future in futures.values() if not future.done()]
                if not waiting:
                    break
                done, _ = await asyncio.wait(waiting, timeout=timeout)
                if done:
                    continue
                activity = sum(stream.activity for stream in moving)
                if activity == seen or not moving:
                    timed_out = StreamTimeoutError(
                        f"no ack for {event!r} and no progress on its streams within {timeout} s"
                    )
                    for future in waiting:
                        future.set_exception(timed_out)
                    break
                seen = activity
        finally:
            for peer, connection in connections.items():
                connection.pending_calls.discard(futures[peer])
                if not futures[peer].done():
                    futures[peer].cancel()
        if recipients is None:
            return futures[to].result()
        return {peer: future.exception() or future.result() for peer, future in futures.items()}

    def _connection_for_emit(self, peer: str | None) -> Connection:
        self._host.check_peer(peer)
        return self._connection(peer)

    def _connection(self, peer: Any) -> Connection:
        connection = self._connections.get(peer)
        if connection is None:
            label = f"{self.namespace} {peer}" if peer is not None else self.namespace
            connection = Connection(
                self._host.emitter(peer), self._config, label, lambda: self._host.is_live(peer)
            )
            if self._host.is_connecting(peer):
                # Inside the server's connect handler: queue now, send after CONNECT.
                connection.hold()
            elif not self._host.is_connected(peer):
                # An event python-socketio dispatched just before the peer left: its disconnect
                # was already handled, so a registered connection would never be released.
                connection.lost()
                return connection
            self._connections[peer] = connection
            if not self._host.is_server:
                connection.send_hello()
        return connection

    def _encode(self, connection: Connection, value: Any) -> tuple[Any, list[IOStream]]:
        """``value`` with its streams attached to ``connection`` (not yet announced)."""
        attached: list[IOStream] = []
        return self._encode_into(connection, value, attached), attached

    def _encode_into(self, connection: Connection, value: Any, attached: list[IOStream]) -> Any:
        """``value`` with its streams attached to ``connection``; ``attached`` collects them
        (also those attached before an error)."""

        def to_placeholder(obj: Any) -> dict[str, Any] | None:
            if isinstance(obj, IOStream):
                placeholder = connection.core.attach(obj._core)
                attached.append(obj)
                return placeholder
            return None

        return placeholders.encode(value, to_placeholder)

    def _decode(self, connection: Connection, value: Any, found: list[IOStream]) -> Any:
        limit = self._config.max_placeholders
        seen = 0

        def from_placeholder(stream_id: Any, options: Any) -> IOStream:
            nonlocal seen
            seen += 1
            if seen > limit:
                return IOStream(connection.core.refuse_placeholder(stream_id, too_many))
            stream = connection.decode_stream(stream_id, options)
            found.append(stream)
            return stream

        too_many = f"more than {limit} streams in one event"
        decoded = placeholders.decode(value, from_placeholder)
        if seen > limit:
            # The caller destroys the streams accepted so far: the whole event is refused.
            raise InvalidOptionError(f"{too_many} ({seen})")
        return decoded

    # -- wire events (synchronous: each records its input before anything else runs) ------------
    def _on_read(self, peer: Any, *args: Any) -> None:
        if args:
            self._connection(peer).core.receive_read(*args[:3])

    def _on_write(self, peer: Any, *args: Any) -> str | None:
        stream_id = args[0] if args else None
        chunk = args[1] if len(args) > 1 else None
        encoding = args[2] if len(args) > 2 else None
        marker = args[3] if len(args) > 3 else None  # negotiated digest: first write only
        return self._connection(peer).core.receive_write(stream_id, chunk, encoding, marker)

    async def _on_end(self, peer: Any, *args: Any) -> Any:
        # The return value is an ack only a sio_stream peer asks for (python-socketio sends
        # nothing when the event carried no ack id, as from JavaScript). The end is recorded
        # before the first await; only a digest the application checks makes the ack wait.
        answer = self._connection(peer).core.receive_end(
            args[0] if args else None, args[1] if len(args) > 1 else None
        )
        if isinstance(answer, PendingReply):
            reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

            def settle(value: Any) -> None:
                if not reply.done():
                    reply.set_result(value)

            answer.on_done(settle)
            return await reply
        return answer

    def _on_error(self, peer: Any, *args: Any) -> None:
        if args:
            self._connection(peer).core.receive_error(args[0], args[1] if len(args) > 1 else "")

    def _on_hello(self, peer: Any, *args: Any) -> None:
        connection = self._connection(peer)
        connection.core.receive_hello(args[0] if args else None)
        connection.send_hello()

    def _on_lifecycle(self, event: str, namespace: str, peer: Any) -> None:
        if event in ("disconnect", "refused"):
            connection = self._connections.pop(peer, None)
            if connection is not None:
                connection.lost()
        elif event == "connected":
            connection = self._connections.get(peer)
            if connection is not None:
                connection.release()
        elif event == "connect" and not self._host.is_server:
            # A reconnected client starts afresh (its old streams failed at the disconnect).
            old = self._connections.pop(None, None)
            if old is not None:
                old.lost()
            self._connection(None)

    async def _on_stream(self, peer: Any, *args: Any) -> Any:
        connection = self._connection(peer)
        decoded_streams: list[IOStream] = []
        event = args[0] if args else None
        try:
            decoded = self._decode(connection, list(args[1:]), decoded_streams)
            if not isinstance(event, str):
                raise LocalProtocolError(f"bad event name: {event!r}")
        except StreamError as exc:
            # Refuse every stream the event carried, so the peer's writers fail instead of hanging.
            logger.warning("sio_stream: bad %s event %r: %s", wire.STREAM, event, exc)
            return self._refuse_event(connection, decoded_streams, exc)
        handler = self._handlers.get(event)
        if handler is None:
            logger.warning("sio_stream: no handler for event %r; its streams were refused", event)
            return self._refuse_event(
                connection, decoded_streams, HandlerError(f"no handler for event {event!r}")
            )
        call_args = (peer, *decoded) if self._host.is_server else tuple(decoded)
        try:
            result = handler(*call_args)
            if inspect.isawaitable(result):
                result = await result
        except StreamError as exc:
            # A stream the peer failed, a dropped connection, or a HandlerError: expected, no
            # traceback.
            logger.warning("sio_stream: handler for %r stopped: %s", event, exc)
            return self._refuse_event(connection, decoded_streams, exc)
        except Exception as exc:
            logger.exception("sio_stream: handler for %r raised", event)
            failure = HandlerError(str(exc))
            failure.peer_text = f"handler for {event!r} failed ({type(exc).__name__})"
            failure.__cause__ = exc
            return self._refuse_event(connection, decoded_streams, failure)
        return self._encode_ack(connection, result, event)

    @staticmethod
    def _refuse_event(connection: Connection, streams: list[IOStream], exc: StreamError) -> Any:
        """Fail the streams of an event the application could not handle; the ack reports it
        to a sio_stream peer (a JavaScript peer gets an empty ack, as from socket.io-stream)."""
        for stream in streams:
            stream.destroy(exc)
        if FEATURE_ERROR_REPLY in connection.core.peer_features:
            return {wire.ERROR_REPLY_KEY: exc.wire_message}
        return None

    def _encode_ack(self, connection: Connection, result: Any, event: str) -> Any:
        if result is None:
            return None
        is_tuple = isinstance(result, tuple)
        attached: list[IOStream] = []
        try:
            encoded = self._encode_into(connection, list(result) if is_tuple else result, attached)
        except StreamError as exc:
            # The connection dropped while the handler ran (or a stream was sent twice): fail
            # the streams that cannot reach the peer now, instead of raising out of
            # python-socketio's task; streams already sent elsewhere are left alone.
            for stream in attached:
                stream.destroy(exc)
            with contextlib.suppress(StreamError):
                _destroy_streams_in(result, exc, only_unsent=True)
            logger.warning("sio_stream: cannot send the ack of %r: %s", event, exc)
            return None
        # python-socketio queues the ack as soon as this handler returns, before the sender task
        # can run again: reads and writes queued now for these streams reach the peer after it.
        for stream in attached:
            connection.core.announce(stream._core)
        connection.expect_claims([s._core for s in attached], self._claim_timeout, event)
        connection.watch_idle()
        return tuple(encoded) if is_tuple else encoded

    # -- introspection -----------------------------------------------------------------------------
    def stream_count(self) -> int:
        """Streams registered on all connections of this socket (for tests and monitoring)."""
        return sum(len(c.streams) for c in self._connections.values())

    @property
    def connection_count(self) -> int:
        return len(self._connections)


class Queued(Coroutine[Any, Any, None]):
    """What :meth:`StreamSocket.emit` returns: the event is already queued, so awaiting it
    (as python-socketio's ``await sio.emit(...)`` is written) returns ``None`` at once, and so
    does a task made of it (``asyncio.create_task(streams.emit(...))``). Leaving it unawaited,
    as a JavaScript ``ss(socket).emit(...)`` is written, is fine too: it is no real coroutine."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()

    def send(self, value: Any) -> Any:
        raise StopIteration

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if val is None:
            raise typ
        raise val

    def close(self) -> None:
        return None


_QUEUED = Queued()


def _streams_in(value: Any) -> list[IOStream]:
    found: list[IOStream] = []

    def visit(obj: Any) -> None:
        if isinstance(obj, IOStream):
            found.append(obj)

    placeholders.encode(list(value), visit)
    return found


def _destroy_streams_in(value: Any, exc: StreamError, *, only_unsent: bool = False) -> None:
    """Destroy every stream in ``value`` (with ``only_unsent``: those not sent anywhere)."""

    def visit(obj: Any) -> None:
        if isinstance(obj, IOStream) and not (only_unsent and obj._core.owner is not None):
            obj.destroy(exc)

    placeholders.encode(value, visit)


class _AppAck:
    """Ack callback of an application event: decode the streams in the ack, then call the user."""

    def __init__(self, socket: StreamSocket, connection: Connection, callback: Callable[..., Any]) -> None:
        self.socket = socket
        self.connection = connection
        self.callback = callback

    def __call__(self, *args: Any) -> None:
        if (
            len(args) == 1
            and isinstance(args[0], dict)
            and len(args[0]) == 1
            and wire.ERROR_REPLY_KEY in args[0]
            and FEATURE_ERROR_REPLY in self.connection.core.config.features
        ):
            # A sio_stream peer's handler failed (error-reply: only sent to peers that
            # announced it, which we did).
            self._deliver(HandlerError(str(args[0][wire.ERROR_REPLY_KEY]), remote=True))
            return
        found: list[IOStream] = []
        try:
            decoded = self.socket._decode(self.connection, list(args), found)
        except StreamError as exc:
            for stream in found:
                stream.destroy(exc)
            logger.warning("sio_stream: bad ack: %s", exc)
            return
        for stream in found:
            self.connection.core.claim(stream._core)
        self._deliver(*decoded)

    def _deliver(self, *args: Any) -> None:
        result = self.callback(*args)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            _background.add(task)
            task.add_done_callback(_background.discard)


__all__ = ["Queued", "StreamSocket", "ss"]
