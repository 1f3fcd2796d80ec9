"""What a StreamSocket does, whichever I/O drives it: one logic for the asyncio and the sync glue.

:class:`SocketLogic` routes the five wire events into each connection's protocol core, encodes
and decodes placeholders (with their limits), turns an application event into a handler call
and the handler's result or failure into an ack, decodes acks, and resolves ``call()``.
What one connection does besides sending is :class:`~sio_stream.glue._connection.ConnectionLogic`'s;
what one ``call()`` waits for is :class:`~sio_stream.glue._call.PendingCall`'s.

Nothing here performs I/O or waits. A driver supplies the stream class, the connection class
(with its sender and timers), the futures ``call()`` waits on, and the waiting itself:
:mod:`sio_stream.aio._socket` for asyncio, :mod:`sio_stream.sync` for threads and green threads.
Every method runs to completion without yielding, which is what lets the asyncio driver call
them before its first ``await`` and the sync driver call them under its lock.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .._errors import (
    ConnectionAbortedStreamError,
    HandlerError,
    InvalidOptionError,
    LocalProtocolError,
    ResumeRefusedError,
    StreamError,
)
from ..core import _placeholder as placeholders
from ..core import _wire as wire
from ..core._budget import Budget, StreamSocketStatistics, process_budget
from ..core._config import DEFAULT_MAX_SUSPENDED
from ..core._core import (
    DEFAULT_CONNECTION_WINDOW,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFERED,
    DEFAULT_MAX_CHUNK,
    DEFAULT_MAX_PLACEHOLDERS,
    DEFAULT_MAX_READ_CHUNK,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_WINDOW,
    DEFAULT_OBJECT_WINDOW,
    DEFAULT_WINDOW,
    FEATURE_ERROR_REPLY,
    FEATURE_RESUME,
    CoreConfig,
    Outgoing,
)
from . import _connect_scope as connect_scope
from ._call import FutureLike, PendingCall, destroy_streams_in, streams_in
from ._connection import ConnectionLogic, StreamLike
from ._fanout import FanoutLogic, check_max_lag

logger = logging.getLogger("sio_stream")


def check_config(config: CoreConfig) -> None:
    """Raise :class:`InvalidOptionError` for settings no connection could use."""
    if not isinstance(config.window, int) or config.window < 1:
        raise InvalidOptionError(f"window must be a positive integer, not {config.window!r}")
    if not isinstance(config.object_window, int) or config.object_window < 1:
        raise InvalidOptionError(f"object_window must be a positive integer, not {config.object_window!r}")
    if not isinstance(config.max_chunk, int) or not 1 <= config.max_chunk <= 4 * 1024 * 1024:
        raise InvalidOptionError(f"max_chunk must be between 1 byte and 4 MiB, not {config.max_chunk!r}")
    for name in (
        "max_streams",
        "max_read_chunk",
        "max_placeholders",
        "max_buffered",
        "connection_window",
        "max_window",
    ):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidOptionError(f"{name} must be a positive integer, not {value!r}")
    if config.process_budget is not None and not isinstance(config.process_budget, Budget):
        raise InvalidOptionError(f"process_budget must be a sio_stream.Budget, not {config.process_budget!r}")
    idle = config.idle_timeout
    if idle is not None and (isinstance(idle, bool) or not isinstance(idle, (int, float)) or idle <= 0):
        raise InvalidOptionError(f"idle_timeout must be a positive number or None, not {idle!r}")
    resume = config.resume_timeout
    if isinstance(resume, bool) or not isinstance(resume, (int, float)) or resume < 0:
        raise InvalidOptionError(f"resume_timeout must be a number of seconds (0: off), not {resume!r}")
    initial = config.initial_credit
    if isinstance(initial, bool) or not isinstance(initial, int) or initial < 0:
        raise InvalidOptionError(f"initial_credit must be a number of bytes (0: off), not {initial!r}")


def socket_config(
    *,
    window: int | None = None,
    object_window: int | None = None,
    max_chunk: int | None = None,
    force_base64: bool | None = None,
    max_streams: int = DEFAULT_MAX_STREAMS,
    max_read_chunk: int = DEFAULT_MAX_READ_CHUNK,
    max_placeholders: int = DEFAULT_MAX_PLACEHOLDERS,
    max_buffered: int = DEFAULT_MAX_BUFFERED,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    connection_window: int = DEFAULT_CONNECTION_WINDOW,
    max_window: int = DEFAULT_MAX_WINDOW,
    process_budget: Budget | None = None,
    resume_timeout: float = 0.0,
    initial_credit: int = 0,
) -> CoreConfig:
    """The core settings of ``ss()``'s options (see :func:`sio_stream.ss`). ``initial_credit``:
    what each hello offers (negotiated initial-credit). The writes the offer lets go follow the
    event at once, and a sync server handles them on its receive loop before the event's handler
    thread decodes it: the core holds such writes within the offer (core/_early.py), so every
    driver may offer it."""
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
        max_window=max_window,
        process_budget=process_budget,
        resume_timeout=resume_timeout,
        initial_credit=initial_credit,
    )
    if (
        not isinstance(resume_timeout, bool)
        and isinstance(resume_timeout, (int, float))
        and resume_timeout > 0
    ):
        config.features = config.features | {FEATURE_RESUME}
    return config


def _session_key(token: str) -> str:
    """The server keeps a hash of each session token, never the token itself."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


# -- one application event ---------------------------------------------------------------------------
class PreparedEvent:
    """An application event decoded and ready for its handler; :meth:`finish` makes the ack."""

    def __init__(
        self,
        logic: SocketLogic,
        connection: ConnectionLogic,
        name: str,
        handler: Callable[..., Any],
        args: tuple[Any, ...],
        streams: list[Any],
        number: int = 0,
    ) -> None:
        self.logic = logic
        self.connection = connection
        self.name = name
        self.handler = handler
        self.args = args
        self.streams = streams
        #: The event's number in the session (negotiated resume; see core/_sent_events.py).
        self.number = number

    def run(self) -> Any:
        """Call the handler: return the ack, or :class:`AwaitedHandler` when it returned an
        awaitable (the asyncio driver awaits it, then calls :meth:`finish`)."""
        try:
            result = self.handler(*self.args)
        except Exception as exc:
            return self.finish(failure=exc)
        if inspect.isawaitable(result):
            return AwaitedHandler(self, result)
        return self.finish(result)

    def finish(self, result: Any = None, failure: BaseException | None = None) -> Any:
        """The ack for the handler's ``result``, or for its ``failure``."""
        with self.logic.guard:
            return answered(self.connection, self.number, self._finish(result, failure))

    def _finish(self, result: Any, failure: BaseException | None) -> Any:
        if isinstance(failure, StreamError):
            # A stream the peer failed, a dropped connection, or a HandlerError: expected, no
            # traceback.
            logger.warning("sio_stream: handler for %r stopped: %s", self.name, failure)
            return refuse_event(self.connection, self.streams, failure)
        if failure is not None:
            logger.error("sio_stream: handler for %r raised", self.name, exc_info=failure)
            error = HandlerError(str(failure))
            error.peer_text = f"handler for {self.name!r} failed ({type(failure).__name__})"
            error.__cause__ = failure
            return refuse_event(self.connection, self.streams, error)
        return self.logic._encode_ack(self.connection, result, self.name)


class AwaitedHandler:
    """A handler's awaitable result, with the event it belongs to."""

    def __init__(self, event: PreparedEvent, awaitable: Any) -> None:
        self.event = event
        self.awaitable = awaitable


def answered(connection: ConnectionLogic, number: int, ack: Any) -> Any:
    """``ack``, the answer to event ``number`` (python-socketio's convention: ``None`` for no
    arguments, a tuple for several), kept by the core to be sent again if a drop loses it."""
    args = () if ack is None else ack if isinstance(ack, tuple) else (ack,)
    connection.core.event_answered(number, args)
    return ack


def refuse_event(connection: ConnectionLogic, streams: list[Any], exc: StreamError) -> Any:
    """Fail the streams of an event the application could not handle; the ack reports it
    to a sio_stream peer (a JavaScript peer gets an empty ack, as from socket.io-stream)."""
    for stream in streams:
        stream.destroy(exc)
    if FEATURE_ERROR_REPLY in connection.core.peer_features:
        return {wire.ERROR_REPLY_KEY: exc.wire_message}
    return None


# -- the socket --------------------------------------------------------------------------------------

#: Longest a client's ``disconnect()`` waits for the server to close its resumable session, in
#: both drivers. The server answers in one round trip; the bound only matters for a server that
#: never answers. It is generous because a client that gives up early closes its websocket with
#: the leaving message possibly still queued (python-engineio does not flush on close), and the
#: server then keeps the session for ``resume_timeout``: seen at 1 s on 2 cores under load.
LEAVING_TIMEOUT = 10.0


class SocketLogic:
    """Streams over one python-socketio server or client, in one namespace: the driver-free part.

    A driver subclass sets :attr:`stream_class`, makes connections in :meth:`_new_connection`,
    delivers application ack callbacks in :meth:`_deliver_ack`, makes the fan-outs of events
    to several recipients in :meth:`_new_fanout`, and may refine :meth:`_register` (how wire
    events are received).
    """

    stream_class: type[StreamLike]
    #: Held around every use of a core from outside the driver's own calls (the sync driver's
    #: lock; nothing for asyncio, whose handlers run to completion on one thread).
    guard: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()

    def __init__(self, host: Any, config: CoreConfig, *, claim_timeout: float | None = 60.0) -> None:
        check_config(config)
        self._host = host
        self._config = config
        self._claim_timeout = claim_timeout
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._connections: dict[Any, Any] = {}
        #: Negotiated resume: sessions by the hash of their token (live and suspended), the
        #: server's suspended sessions (no longer in ``_connections``), and resumes so far.
        self._sessions: dict[str, ConnectionLogic] = {}
        self._suspended: set[ConnectionLogic] = set()
        #: Sids whose session a takeover moved to a new connection, until their disconnect:
        #: what they still deliver was sent on a transport the session left (see _take_over).
        self._stale: set[Any] = set()
        self.resumes = 0
        #: The server was shut down (python-socketio's ``shutdown()``): no session waits for
        #: its client any more, and a drop from now on fails the streams at once.
        self._shut_down = False
        self._register(host)

    def _register(self, host: Any) -> None:
        host.on(wire.STREAM, self._on_stream)
        host.on(wire.READ, self._on_read)
        host.on(wire.WRITE, self._on_write)
        host.on(wire.END, self._on_end)
        host.on(wire.ERROR, self._on_error)
        host.on(wire.HELLO, self._on_hello)
        host.on_lifecycle(self._on_lifecycle)

    def _on_stream(self, peer: Any, *args: Any) -> Any:
        raise NotImplementedError

    def _new_connection(self, peer: Any, label: str) -> Any:
        raise NotImplementedError

    def _deliver_ack(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def _new_fanout(self, source: Any, max_lag: int | None, label: str) -> FanoutLogic:
        """The driver's fan-out of ``source`` (see :mod:`sio_stream.glue._fanout`)."""
        raise NotImplementedError

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
        """The Socket.IO namespace of these streams (``"/"`` by default)."""
        return str(self._host.namespace)

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

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers[event] = fn
            return fn

        if handler is None:
            return register
        return register(handler)

    # -- sending ---------------------------------------------------------------------------------
    def _emit(
        self,
        event: str,
        args: tuple[Any, ...],
        to: Any,
        callback: Callable[..., Any] | None,
        skip_sid: Any,
        max_lag: int | None,
    ) -> None:
        """The whole of ``emit()`` (see the drivers' docstrings)."""
        recipients = self._recipients(to, skip_sid)
        if recipients is None and any(stream.received for stream in streams_in(args)):
            # A stream a peer sent us goes on as a relay, through the fan-out machinery.
            recipients = [to]
            callback = None if callback is None else _drop_first(callback)
        if recipients is not None:
            self._emit_many(event, args, recipients, callback, max_lag, to)
            return
        assert to is None or isinstance(to, str)
        connection = self._connection_for_emit(to)
        on_ack = AppAck(self, connection, callback) if callback is not None else None
        attached: list[Any] = []
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

    def _emit_many(
        self,
        event: str,
        args: tuple[Any, ...],
        recipients: list[Any],
        callback: Callable[..., Any] | None,
        max_lag: int | None,
        to: Any,
    ) -> list[Any]:
        """Send ``event`` to each of ``recipients``, each with sub-streams of the streams in
        ``args`` (see :mod:`sio_stream.glue._fanout`); return those it reached."""
        check_max_lag(max_lag)
        fanouts: dict[int, FanoutLogic] = {}
        for stream in streams_in(args):
            if stream.error is not None or (
                not stream.received and (stream._core.owner is not None or stream._core.settled)
            ):
                raise LocalProtocolError(f"stream {stream.id} was already sent or destroyed")
            if id(stream) not in fanouts:
                fanouts[id(stream)] = self._new_fanout(stream, max_lag, f"{self.namespace} {to!r}")
        reached: list[Any] = []
        try:
            for sid in recipients:
                if self._emit_one_of_many(event, args, sid, callback, fanouts):
                    reached.append(sid)
        except BaseException as exc:
            # Recipients already sent their sub-streams would wait for data that never comes.
            for fanout in fanouts.values():
                for sub in fanout.subs.values():
                    sub.destroy(exc if isinstance(exc, Exception) else "emit cancelled")
            raise
        if not reached:
            raise LocalProtocolError(f"no client in {to!r} could be sent {event!r}")
        for fanout in fanouts.values():
            fanout.start()
        return reached

    def _emit_one_of_many(
        self,
        event: str,
        args: tuple[Any, ...],
        sid: Any,
        callback: Callable[..., Any] | None,
        fanouts: dict[int, FanoutLogic],
    ) -> bool:
        """Send ``event`` to ``sid`` with its own sub-streams; False if it left meanwhile."""
        stream_class = self.stream_class

        def sub_stream(obj: Any) -> Any:
            return fanouts[id(obj)].sub_stream(sid) if isinstance(obj, stream_class) else None

        recipient_args = placeholders.encode(list(args), sub_stream)
        on_ack = None if callback is None else functools.partial(callback, sid)
        try:
            self._emit(event, tuple(recipient_args), sid, on_ack, None, None)
        except StreamError as exc:
            # That recipient left meanwhile: the others still get the event.
            logger.info("sio_stream: %r not sent to %s: %s", event, sid, exc)
            for fanout in fanouts.values():
                fanout.subs.pop(sid, None)
            return False
        return True

    def _start_call(
        self,
        event: str,
        args: tuple[Any, ...],
        to: Any,
        skip_sid: Any,
        max_lag: int | None,
        new_future: Callable[[], FutureLike],
    ) -> PendingCall:
        """Emit ``event`` with an ack callback per recipient; the driver waits on the result."""
        recipients = self._recipients(to, skip_sid)
        peers: list[Any] = [to] if recipients is None else recipients
        connections = {peer: self._connection_for_emit(peer) for peer in peers}
        if connect_scope.inside_connect_handler() and any(c.core.connecting for c in connections.values()):
            raise LocalProtocolError(f"call({event!r}) cannot wait for an ack: {connect_scope.ADVICE}")
        moving = [stream._core for stream in streams_in(args)]
        pending = PendingCall(
            event, {peer: new_future() for peer in peers}, connections, moving, recipients is None
        )
        if recipients is None:
            self._emit(event, args, to, lambda *ack: pending.resolve(to, *ack), None, None)
        else:
            reached = self._emit_many(event, args, recipients, pending.resolve, max_lag, to)
            for peer in peers:
                if peer not in reached:
                    pending.futures[peer].set_exception(ConnectionAbortedStreamError(wire.CONNECTION_ABORTED))
        # python-socketio drops pending acks when the connection drops: fail the call then.
        for peer, connection in connections.items():
            connection.pending_calls.add(pending.futures[peer])
        return pending

    def _recipients(self, to: Any, skip_sid: Any) -> list[Any] | None:
        """The peers an emit to ``to`` reaches, or ``None`` for one peer addressed directly."""
        recipients: list[Any] | None = self._host.recipients(to, skip_sid)
        return recipients

    def _connection_for_emit(self, peer: str | None) -> Any:
        self._host.check_peer(peer)
        return self._connection(peer)

    def _connection(self, peer: Any) -> Any:
        connection = self._connections.get(peer)
        if connection is None:
            label = f"{self.namespace} {peer}" if peer is not None else self.namespace
            connection = self._new_connection(peer, label)
            if self._host.is_connecting(peer):
                # Inside the server's connect handler: queue now, send after CONNECT.
                connection.hold()
            elif not self._host.is_connected(peer) or peer in self._stale:
                # An event python-socketio dispatched just before the peer left: its disconnect
                # was already handled, so a registered connection would never be released. (Or
                # a packet of a connection a takeover retired: none of the session's.)
                connection.lost()
                return connection
            self._connections[peer] = connection
            if not self._host.is_server:
                connection.send_hello()
        return connection

    def _encode_into(self, connection: ConnectionLogic, value: Any, attached: list[Any]) -> Any:
        """``value`` with its streams attached to ``connection``; ``attached`` collects them
        (also those attached before an error)."""
        stream_class = self.stream_class

        def to_placeholder(obj: Any) -> dict[str, Any] | None:
            if isinstance(obj, stream_class):
                placeholder = connection.core.attach(obj._core)
                attached.append(obj)
                return placeholder
            return None

        return placeholders.encode(value, to_placeholder)

    def _decode(self, connection: ConnectionLogic, value: Any, found: list[Any]) -> Any:
        limit = self._config.max_placeholders
        seen = 0

        def from_placeholder(stream_id: Any, options: Any, credit: Any = None) -> Any:
            nonlocal seen
            seen += 1
            if seen > limit:
                return self.stream_class(connection.core.refuse_placeholder(stream_id, too_many))
            stream = connection.decode_stream(stream_id, options, credit)
            found.append(stream)
            return stream

        too_many = f"more than {limit} streams in one event"
        decoded = placeholders.decode(value, from_placeholder, credit=True)
        if seen > limit:
            # The caller destroys the streams accepted so far: the whole event is refused.
            raise InvalidOptionError(f"{too_many} ({seen})")
        return decoded

    # -- receiving -------------------------------------------------------------------------------
    def _prepare_event(self, peer: Any, args: tuple[Any, ...]) -> Any:
        """A ``$stream`` event: a :class:`PreparedEvent`, or the ack refusing it."""
        if peer in self._stale:
            return None  # sent on the connection a takeover retired: the client sends it again
        connection = self._from_peer(peer)
        number = connection.core.event_received()
        if not number:
            return None  # sent on a transport that dropped since: the peer sends it again
        decoded_streams: list[Any] = []
        event = args[0] if args else None
        try:
            decoded = self._decode(connection, list(args[1:]), decoded_streams)
            if not isinstance(event, str):
                raise LocalProtocolError(f"bad event name: {event!r}")
        except StreamError as exc:
            # Refuse every stream the event carried, so the peer's writers fail instead of hanging.
            logger.warning("sio_stream: bad %s event %r: %s", wire.STREAM, event, exc)
            return answered(connection, number, refuse_event(connection, decoded_streams, exc))
        handler = self._handlers.get(event)
        if handler is None:
            logger.warning("sio_stream: no handler for event %r; its streams were refused", event)
            refused = refuse_event(
                connection, decoded_streams, HandlerError(f"no handler for event {event!r}")
            )
            return answered(connection, number, refused)
        call_args = (peer, *decoded) if self._host.handlers_take_sid else tuple(decoded)
        return PreparedEvent(self, connection, event, handler, call_args, decoded_streams, number)

    def _encode_ack(self, connection: ConnectionLogic, result: Any, event: str) -> Any:
        if result is None:
            return None
        is_tuple = isinstance(result, tuple)
        attached: list[Any] = []
        try:
            encoded = self._encode_into(connection, list(result) if is_tuple else result, attached)
        except StreamError as exc:
            # The connection dropped while the handler ran (or a stream was sent twice): fail
            # the streams that cannot reach the peer now, instead of raising out of
            # python-socketio's task; streams already sent elsewhere are left alone.
            for stream in attached:
                stream.destroy(exc)
            with contextlib.suppress(StreamError):
                destroy_streams_in(result, exc, only_unsent=True)
            logger.warning("sio_stream: cannot send the ack of %r: %s", event, exc)
            return None
        # python-socketio queues the ack as soon as this handler returns, before the sender
        # can run again: reads and writes queued now for these streams reach the peer after it.
        for stream in attached:
            connection.core.announce(stream._core)
        connection.expect_claims([s._core for s in attached], self._claim_timeout, event)
        connection.watch_idle()
        return tuple(encoded) if is_tuple else encoded

    # -- wire events (each records its input before anything else runs) ----------------------------
    def _from_peer(self, peer: Any, stream_id: Any = None) -> ConnectionLogic:
        """The connection of ``peer``, which sent a stream event other than a hello (about
        ``stream_id``): a server's sio_stream client sends its hello before anything else, so
        a client that did not is no sio_stream peer (see ``peer_without_hello`` in
        core/_resume.py). A client learns it from the server's first word on a stream of ours
        before any hello: a sio_stream server answers our hello before anything we sent after it."""
        connection: ConnectionLogic = self._connection(peer)
        if not connection.core.peer_known:
            if self._host.is_server:
                connection.core.peer_without_hello()
            elif isinstance(stream_id, str):
                stream = connection.core.streams.get(stream_id)
                if stream is not None and not stream.peer_seen:
                    connection.hello_not_coming()
        return connection

    def _on_read(self, peer: Any, *args: Any) -> None:
        if args:
            self._from_peer(peer, args[0]).core.receive_read(*args[:4])

    def _on_write(self, peer: Any, *args: Any) -> str | None:
        stream_id = args[0] if args else None
        chunk = args[1] if len(args) > 1 else None
        encoding = args[2] if len(args) > 2 else None
        marker = args[3] if len(args) > 3 else None  # negotiated digest: first write only
        connection = self._from_peer(peer, stream_id)
        result: str | None = connection.core.receive_write(stream_id, chunk, encoding, marker)
        if connection.core.early.held:
            connection.watch_idle()  # held before its event: the idle sweeps age it too
        return result

    def _on_end(self, peer: Any, *args: Any) -> Any:
        # The return value is an ack only a sio_stream peer asks for (python-socketio sends
        # nothing when the event carried no ack id, as from JavaScript). With a digest the
        # application checks itself it is a PendingReply, which the async driver waits for.
        connection = self._from_peer(peer, args[0] if args else None)
        answer = connection.core.receive_end(args[0] if args else None, args[1] if len(args) > 1 else None)
        if connection.core.early.held:
            connection.watch_idle()  # an end held before its event (see _on_write)
        return answer

    def _on_error(self, peer: Any, *args: Any) -> None:
        if args:
            self._from_peer(peer, args[0]).core.receive_error(args[0], args[1] if len(args) > 1 else "")

    def _on_hello(self, peer: Any, *args: Any) -> Any:
        info = args[0] if args else None
        resume = info.get("resume") if isinstance(info, dict) else None
        connection = self._connection(peer)
        if connection.core.receive_reply(resume):
            return True  # an answer to one of our events, sent again after a resume
        if self._host.is_server and isinstance(resume, dict) and resume.get("close") is True:
            # The client disconnects on purpose: a drop that follows is no reason to wait
            # (python-engineio's client may close its socket before its DISCONNECT packet leaves).
            self._forget_session(connection)
            return True
        if self._host.is_server and isinstance(resume, dict) and resume.get("confirm") is True:
            # The client has the token of our last answer: the one it resumed with is dead now.
            self._drop_previous(connection)
            return True
        if not self._host.is_server:
            if connection.core.suspended:
                self._resume_answered(connection, info, resume)
                return
            connection.core.receive_hello(info)
            if isinstance(resume, dict) and isinstance(resume.get("token"), str):
                connection.token = resume["token"]
            leaving, connection.leaving = connection.leaving, None
            if leaving is not None:
                if connection.token is not None:
                    self._close_session(connection, leaving)
                elif not leaving.done():
                    leaving.set_result(None)
            return
        connection.core.receive_hello(info)
        if not connection.core.resumable or connection.hello_sent:
            connection.send_hello()
        elif isinstance(resume, dict):
            self._resume_asked(peer, connection, info, resume)
        else:
            connection.send_hello({"token": self._new_session(connection)})

    # -- negotiated resume -------------------------------------------------------------------------
    def _new_session(self, connection: ConnectionLogic, previous: str | None = None) -> str:
        """A fresh secret token for ``connection``'s session (replacing any earlier one). With
        ``previous`` (the key a client just resumed with) that one stays valid too until the
        client confirms it received the new token: an answer lost in another drop must not
        lock the client out of its own session."""
        self._forget_session(connection)
        token = secrets.token_urlsafe(32)
        connection.session_key = _session_key(token)
        self._sessions[connection.session_key] = connection
        if previous is not None:
            connection.previous_key = previous
            self._sessions[previous] = connection
        return token

    def _drop_previous(self, connection: ConnectionLogic) -> None:
        key, connection.previous_key = connection.previous_key, None
        if key is not None and self._sessions.get(key) is connection:
            del self._sessions[key]

    def _forget_session(self, connection: ConnectionLogic) -> None:
        self._drop_previous(connection)
        if connection.session_key is not None:
            if self._sessions.get(connection.session_key) is connection:
                del self._sessions[connection.session_key]
            connection.session_key = None
        self._suspended.discard(connection)

    def _resume_asked(self, peer: Any, fresh: ConnectionLogic, info: Any, request: dict[str, Any]) -> None:
        """A client's hello asks to resume a session on its new connection ``fresh``."""
        token = request.get("token")
        key = _session_key(token) if isinstance(token, str) else None
        old = self._sessions.get(key) if key is not None else None
        if old is not None and key == old.session_key and not old.core.suspended and not old.core.closed:
            self._take_over(old)
        if old is None:
            reason = "unknown session"  # forged, expired, or replaced by an earlier resume
        elif not old.core.suspended or old.core.closed:
            reason = "session in use"
        elif fresh.core.streams or fresh.core.outbox:
            reason = "the new connection already carries streams"
        else:
            reason = None
        if reason is not None:
            logger.info("sio_stream: resume refused for %s: %s", peer, reason)
            fresh.core.forget_peer_offer()
            fresh.send_hello({"token": self._new_session(fresh), "refused": reason})
            if old is None and key is not None:
                self._session_unknown(key)
            return
        assert old is not None
        foreign = self._resume_elsewhere(peer, fresh, old, info, request)
        if foreign is None:
            return  # other nodes hold some of the session's streams: they answer first
        self._suspended.discard(old)
        fresh.lost()  # empty: only its accounts go
        self._connections[peer] = old
        self._rebind(old, peer)
        old.core.receive_hello(info)
        old.hello_sent = True
        token = self._new_session(old, previous=key)
        state = old.core.resume_state()
        for stream_id, entry in foreign.items():
            state.setdefault(stream_id, entry)
        answer = {
            "token": token,
            "streams": state,
            "events": old.core.events_received,
            "awaiting": old.core.sent_events.awaited(),
        }
        old.core.queue_control(old.core.hello(answer))
        old.core.apply_resume(request.get("streams"), request.get("events"), request.get("awaiting"))
        old.answers_lost(request)
        old.resumed()
        self.resumes += 1
        logger.info("sio_stream: session resumed on %s", old.label)

    def _session_unknown(self, key: str) -> None:
        """A client asked to resume a session we do not know (key: its token's hash) and was
        refused: it carries on with a fresh one. A cluster's socket tells the other nodes,
        where that session may wait (the client came back to another node)."""

    def _resume_elsewhere(
        self, peer: Any, fresh: ConnectionLogic, old: ConnectionLogic, info: Any, request: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The resume entries of the session's streams held by other server nodes (a cluster's
        socket overrides it), or ``None`` when they were asked and :meth:`_resume_asked` is
        called again once they answered. On one node: none."""
        return {}

    def _leaving(self) -> Any:
        """The client is about to disconnect on purpose: a future the server's answer settles
        (``None`` when there is no session to close). The driver waits for it, briefly.

        Before the server's hello (with the session's token) has arrived, a sio_stream server
        already keeps the session: when streams are at stake, wait for that hello, then close
        the session; a server that is not sio_stream sends none, and the driver's bound ends
        the wait. (Seen under load: a client that emitted, wrote and disconnected before reading
        the hello left the server holding its handler for ``resume_timeout``.)"""
        connection = self._connections.get(None)
        if self._host.is_server or connection is None or connection.core.suspended or connection.core.closed:
            return None
        done = self._new_future()
        if connection.token is None:
            if (
                connection.core.peer_known
                or connection.no_hello
                or connection.core.config.resume_timeout <= 0
                or not connection.streams
            ):
                return None
            connection.leaving = done
            return done
        self._close_session(connection, done)
        return done

    def _close_session(self, connection: ConnectionLogic, done: Any) -> None:
        """Tell the server the client leaves on purpose; ``done`` settles with its answer."""
        connection.token = None  # a drop from now on fails the streams at once
        connection.closing = done

        def answered(*_args: Any) -> None:
            if not done.done():
                done.set_result(None)

        connection.core.queue_control(Outgoing(wire.HELLO, ({"resume": {"close": True}},), answered))

    def _new_future(self) -> Any:
        raise NotImplementedError

    def _take_over(self, connection: ConnectionLogic) -> None:
        """A client resumes, with its current token, a session whose connection we still take
        for alive: that connection died on the way and we have not seen it yet (the client saw
        it first: a NAT that lost its state, a phone on another network, or bytes still
        draining toward us behind the close). Treat it as dropped now, so the session resumes
        on the new connection instead of being refused as in use: suspend it, stop taking its
        packets (bytes still draining from it, until its disconnect: a stream event is not handled,
        the client sends it again on the resumed session), and close its transport.
        The current token only: a token the session was just resumed with (kept until the
        client confirms the new one) cannot take it back from the client that resumed it."""
        peer = next((p for p, c in self._connections.items() if c is connection), None)
        if peer is None or not self._host.is_server or not self._may_suspend(connection):
            return
        logger.info("sio_stream: %s resumes its session from a new connection; the old one is closed", peer)
        del self._connections[peer]
        self._stale.add(peer)  # until its disconnect, which _drop_peer brings
        self._suspend(connection)
        self._taken_over(peer, connection)
        self._drop_peer(peer)

    def _taken_over(self, peer: Any, connection: ConnectionLogic) -> None:
        """``connection``, the old one of ``peer``, was suspended by a takeover: a cluster's
        socket tells the nodes holding its streams (as for a drop it saw). On one node: nothing."""

    def _drop_peer(self, peer: Any) -> None:
        """Close the transport of a server's ``peer`` (in the background): the driver's."""
        raise NotImplementedError

    def _rebind(self, connection: ConnectionLogic, peer: Any) -> None:
        """Send ``connection``'s events to ``peer`` (a resumed session's new sid): the driver's."""
        raise NotImplementedError

    def _resume_answered(self, connection: ConnectionLogic, info: Any, answer: Any) -> None:
        """The server's answer to our resume hello: carry on, or fail the old streams."""
        token = answer.get("token") if isinstance(answer, dict) else None
        if isinstance(answer, dict) and "streams" in answer and "refused" not in answer:
            connection.core.receive_hello(info)
            if connection.core.resumable:
                if isinstance(token, str):
                    connection.token = token
                connection.core.apply_resume(answer["streams"], answer.get("events"), answer.get("awaiting"))
                connection.answers_lost(answer)
                # Tell the server we hold the new token (it then forgets the one we used).
                connection.core.queue_control(Outgoing(wire.HELLO, ({"resume": {"confirm": True}},)))
                connection.resumed()
                self.resumes += 1
                logger.info("sio_stream: session resumed on %s", connection.label)
                return
        reason = answer.get("refused") if isinstance(answer, dict) else None
        reason = str(reason) if reason else "the server does not resume sessions"
        logger.info("sio_stream: session not resumed on %s: %s", connection.label, reason)
        self._connections.pop(None, None)
        connection.lost(ResumeRefusedError(f"{wire.CONNECTION_ABORTED}: session not resumed ({reason})"))
        fresh = self._connection(None)
        fresh.core.receive_hello(info)
        if isinstance(token, str):
            fresh.token = token

    def _may_suspend(self, connection: ConnectionLogic) -> bool:
        if connection.core.closed or not connection.core.resumable:
            return False
        if self._host.is_server:
            return (
                connection.session_key is not None
                and len(self._suspended) < DEFAULT_MAX_SUSPENDED
                and not self._shut_down
            )
        return connection.token is not None and bool(self._host.will_reconnect())

    def _suspend(self, connection: ConnectionLogic) -> None:
        logger.info("sio_stream: connection %s dropped; its session waits for the client", connection.label)
        if self._host.is_server:
            self._suspended.add(connection)
        connection.suspend(lambda: self._expire(connection))

    def _expire(self, connection: ConnectionLogic) -> None:
        """The client did not come back within resume_timeout: fail the session's streams."""
        if not connection.core.suspended or connection.core.closed:
            return
        logger.info("sio_stream: session of %s expired", connection.label)
        self._forget_session(connection)
        if self._connections.get(None) is connection:
            del self._connections[None]
        connection.lost()

    def _shutting_down(self) -> None:
        """The server is shut down: end its suspended sessions now (their streams fail with
        ``ConnectionAbortedStreamError`` and give their bytes back to the process budget), and
        suspend none from now on. Their timers would otherwise keep those bytes counted for up
        to ``resume_timeout``, in a process that goes on, or for good once the loop is gone."""
        self._shut_down = True
        ending = list(self._suspended)
        if ending:
            logger.info("sio_stream: the server shuts down; %d suspended sessions end", len(ending))
        error = ConnectionAbortedStreamError(f"{wire.CONNECTION_ABORTED}: the server shut down")
        for connection in ending:
            self._forget_session(connection)
            connection.lost(error)

    def _on_lifecycle(self, event: str, namespace: str, peer: Any) -> None:
        if event == "shutdown":
            self._shutting_down()
            return
        if event in ("disconnect", "dropped"):
            self._stale.discard(peer)
        if event == "dropped":
            # The transport failed (no deliberate disconnect): the session may resume.
            connection = self._connections.get(peer)
            if connection is not None and self._may_suspend(connection):
                if self._host.is_server:
                    del self._connections[peer]  # a new sid will take it back
                self._suspend(connection)
                return
            event = "disconnect"
        if event in ("disconnect", "refused"):
            connection = self._connections.pop(peer, None)
            if connection is not None:
                self._forget_session(connection)
                connection.lost()
        elif event == "connected":
            connection = self._connections.get(peer)
            if connection is not None:
                connection.release()
        elif event == "connect" and not self._host.is_server:
            old = self._connections.get(None)
            if old is not None and old.core.suspended and not old.core.closed:
                # Negotiated resume: ask the server for the old session on this connection.
                old.send_resume_hello()
                return
            # A reconnected client starts afresh (its old streams failed at the disconnect).
            self._connections.pop(None, None)
            if old is not None:
                old.lost()
            self._connection(None)

    # -- introspection -----------------------------------------------------------------------------
    def stream_count(self) -> int:
        """Streams registered on all connections of this socket, suspended sessions included
        (for tests and monitoring)."""
        live = sum(len(c.streams) for c in self._connections.values())
        return live + sum(len(c.streams) for c in self._suspended)

    def statistics(self) -> StreamSocketStatistics:
        """The memory accounting of this socket's connections and of the process budget."""
        connections = tuple(
            replace(c.core.statistics(peer), unsent=c.unsent()) for peer, c in self._connections.items()
        ) + tuple(c.core.statistics(None) for c in self._suspended)
        account = self._config.process_budget or process_budget()
        return StreamSocketStatistics(
            connections=connections,
            held=sum(c.held for c in connections),
            reserved=sum(c.reserved for c in connections),
            credits=sum(c.credits for c in connections),
            streams=sum(c.streams for c in connections),
            process=account.statistics(),
            resumes=self.resumes,
            resent=sum(c.resent for c in connections),
            suspended=len(self._suspended) + sum(1 for c in self._connections.values() if c.core.suspended),
        )

    @property
    def connection_count(self) -> int:
        """Connections (peers) this socket holds streams for (for tests and monitoring)."""
        return len(self._connections)


def _drop_first(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` for a fan-out of one (a relay): it is called with the recipient first."""

    def call(_recipient: Any, *ack: Any) -> Any:
        return callback(*ack)

    return call


class AppAck:
    """Ack callback of an application event: decode the streams in the ack, then deliver it."""

    def __init__(
        self, socket: SocketLogic, connection: ConnectionLogic, callback: Callable[..., Any]
    ) -> None:
        self.socket = socket
        self.connection = connection
        self.callback = callback

    def __call__(self, *args: Any) -> None:
        if (
            len(args) == 1
            and isinstance(args[0], dict)
            and len(args[0]) == 1
            and wire.ERROR_REPLY_KEY in args[0]
            and FEATURE_ERROR_REPLY in self.connection.core.peer_features
        ):
            # A sio_stream peer's handler failed (error-reply, which it announced; a JavaScript
            # peer's ack of that shape is an ordinary value).
            self.socket._deliver_ack(
                self.callback, (HandlerError(str(args[0][wire.ERROR_REPLY_KEY]), remote=True),)
            )
            return
        found: list[Any] = []
        try:
            decoded = self.socket._decode(self.connection, list(args), found)
        except StreamError as exc:
            for stream in found:
                stream.destroy(exc)
            logger.warning("sio_stream: bad ack: %s", exc)
            return
        for stream in found:
            self.connection.core.claim(stream._core)
        self.socket._deliver_ack(self.callback, tuple(decoded))
