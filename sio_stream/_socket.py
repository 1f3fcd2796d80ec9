"""StreamSocket: socket.io-stream's ``ss(socket)`` for a python-socketio server or client.

It routes the five wire events into each connection's protocol core (synchronously, before
any ``await``, so chunks are queued in arrival order), turns application events that carry
streams into calls of the handlers registered with :meth:`StreamSocket.on`, and sends every
outgoing packet through the connection's ordered sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from . import _placeholder as placeholders
from . import _wire as wire
from ._budget import Budget, StreamSocketStatistics, process_budget
from ._connection import Connection
from ._core import (
    DEFAULT_CONNECTION_WINDOW,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFERED,
    DEFAULT_MAX_CHUNK,
    DEFAULT_MAX_PLACEHOLDERS,
    DEFAULT_MAX_READ_CHUNK,
    DEFAULT_MAX_STREAMS,
    DEFAULT_OBJECT_WINDOW,
    DEFAULT_WINDOW,
    CoreConfig,
    Outgoing,
)
from ._errors import InvalidOptionError, LocalProtocolError, StreamError, StreamTimeoutError
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
    connection_window: int = DEFAULT_CONNECTION_WINDOW,
    process_budget: Budget | None = None,
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
    ``idle_timeout``: seconds a stream may see no read, write or peer event (default 600; ``None``
    disables it).

    Memory: every connection has a budget of ``max_buffered`` bytes (default 64 MiB) for what its
    peer can make us hold: bytes received and not yet read (byte chunks, objects at their compact
    JSON size) plus credit granted and not yet used. Credit is granted only as far as it fits
    (streams beyond it wait, oldest first), and at most ``connection_window`` bytes of credit are
    outstanding over the connection's streams (default 4 MiB). Every connection also draws on a
    process budget: ``process_budget`` (a :class:`Budget` shared by the sockets you give it to),
    by default :func:`sio_stream.process_budget` (512 MiB; change it with
    :func:`sio_stream.set_process_limit`). A connection grows freely up to 3/4 of the process
    budget and beyond that only to its max-min fair share, so the connections holding the most
    are refused new credit first; no connection is ever closed for it.
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
        connection_window=connection_window,
        process_budget=process_budget,
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
        for name in (
            "max_streams",
            "max_read_chunk",
            "max_placeholders",
            "max_buffered",
            "connection_window",
        ):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOptionError(f"{name} must be a positive integer, not {value!r}")
        if config.process_budget is not None and not isinstance(config.process_budget, Budget):
            raise InvalidOptionError(
                f"process_budget must be a sio_stream.Budget, not {config.process_budget!r}"
            )
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
    async def emit(
        self,
        event: str,
        *args: Any,
        to: str | None = None,
        callback: Callable[..., Any] | None = None,
    ) -> None:
        """Send application event ``event`` with ``args``; streams in them (at any depth) are sent.

        On a server, ``to`` is the client's sid (streams go to one peer). ``callback`` receives
        the peer's ack arguments, decoded (streams in them arrive as IOStream). Returns once the
        event is queued on the connection's ordered sender. Raises :class:`LocalProtocolError`
        when the peer is not connected or a stream was already sent.
        """
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

    async def call(self, event: str, *args: Any, to: str | None = None, timeout: float | None = 60) -> Any:
        """Emit ``event`` and wait for the ack: its single argument, or a tuple of several
        (``None`` for an empty ack). Raises :class:`StreamTimeoutError` after ``timeout`` seconds.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def resolve(*ack: Any) -> None:
            if future.done():
                # Too late: nobody will read the streams in this ack.
                for value in ack:
                    _destroy_streams_in(value, StreamTimeoutError(f"ack for {event!r} came too late"))
                return
            future.set_result(ack[0] if len(ack) == 1 else (tuple(ack) if ack else None))

        connection = self._connection_for_emit(to)
        await self.emit(event, *args, to=to, callback=resolve)
        # python-socketio drops pending acks when the connection drops: fail the call then.
        connection.pending_calls.add(future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise StreamTimeoutError(f"no ack for {event!r} within {timeout} s") from None
        finally:
            connection.pending_calls.discard(future)

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
            if not self._host.is_connected(peer):
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
        return self._connection(peer).core.receive_write(stream_id, chunk, encoding)

    def _on_end(self, peer: Any, *args: Any) -> str | None:
        # The return value is an ack only a sio_stream peer asks for (python-socketio sends
        # nothing when the event carried no ack id, as from JavaScript).
        return self._connection(peer).core.receive_end(args[0] if args else None)

    def _on_error(self, peer: Any, *args: Any) -> None:
        if args:
            self._connection(peer).core.receive_error(args[0], args[1] if len(args) > 1 else "")

    def _on_hello(self, peer: Any, *args: Any) -> None:
        connection = self._connection(peer)
        connection.core.receive_hello(args[0] if args else None)
        connection.send_hello()

    def _on_lifecycle(self, event: str, namespace: str, peer: Any) -> None:
        if event == "disconnect":
            connection = self._connections.pop(peer, None)
            if connection is not None:
                connection.lost()
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
            for stream in decoded_streams:
                stream.destroy(exc)
            logger.warning("sio_stream: bad %s event %r: %s", wire.STREAM, event, exc)
            return None
        handler = self._handlers.get(event)
        if handler is None:
            for stream in decoded_streams:
                stream.destroy(f"no handler for event {event!r}")
            logger.warning("sio_stream: no handler for event %r; its streams were refused", event)
            return None
        call_args = (peer, *decoded) if self._host.is_server else tuple(decoded)
        try:
            result = handler(*call_args)
            if inspect.isawaitable(result):
                result = await result
        except StreamError as exc:
            # A stream the peer failed or a dropped connection: expected, no traceback.
            logger.warning("sio_stream: handler for %r stopped: %s", event, exc)
            for stream in decoded_streams:
                stream.destroy(exc)
            return None
        except Exception as exc:
            logger.exception("sio_stream: handler for %r raised", event)
            for stream in decoded_streams:
                stream.destroy(exc)
            return None
        return self._encode_ack(connection, result, event)

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

    def statistics(self) -> StreamSocketStatistics:
        """The memory accounting of this socket's connections and of the process budget."""
        connections = tuple(c.core.statistics(peer) for peer, c in self._connections.items())
        account = self._config.process_budget or process_budget()
        return StreamSocketStatistics(
            connections=connections,
            held=sum(c.held for c in connections),
            reserved=sum(c.reserved for c in connections),
            credits=sum(c.credits for c in connections),
            streams=sum(c.streams for c in connections),
            process=account.statistics(),
        )

    @property
    def connection_count(self) -> int:
        return len(self._connections)


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
        result = self.callback(*decoded)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            _background.add(task)
            task.add_done_callback(_background.discard)


__all__ = ["StreamSocket", "ss"]
