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
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Protocol, TypeVar

from .._errors import LocalProtocolError, StreamError
from ..core import _placeholder as placeholders
from ..core import _wire as wire
from ..core._budget import Budget
from ..core._config import (
    CREDIT_LIMIT_KEY,
    DEFAULT_RESUME_TIMEOUT,
    FEATURE_RESUME,
    credit_limit,
)
from ..core._core import (
    DEFAULT_CONNECTION_WINDOW,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFERED,
    DEFAULT_MAX_PLACEHOLDERS,
    DEFAULT_MAX_READ_CHUNK,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_WINDOW,
    Outgoing,
    PendingReply,
)
from ..glue import _compression as compression
from ..glue import _split_posts as split_posts
from ..glue import _unsent as unsent
from ..glue import _whole_posts as whole_posts
from ..glue._dispatch import (
    LEAVING_TIMEOUT,
    AppAck,
    AwaitedHandler,
    PreparedEvent,
    SocketLogic,
    socket_config,
)
from ..glue._host import Host
from . import _fast_mask as fast_mask
from ._connection import Connection
from ._fanout import Fanout
from ._rooms import (
    MemberCallback,
    NodePeer,
    RoomTarget,
    encode_answer,
    flatten_answers,
    looks_like_sid,
    parse_addressing,
)
from ._stream import IOStream
from ._writer import call_writing

logger = logging.getLogger("sio_stream")

Handler = TypeVar("Handler", bound=Callable[..., Any])

# The StreamSockets of a socketio object are kept on that object (see _host._HOOKS_ATTRIBUTE).
_SOCKETS_ATTRIBUTE = "_sio_stream_sockets"
#: Ids of room events sent to other nodes that asked for acks (see _rooms.RoomTarget.call).
_call_ids = itertools.count(1)
# Application callbacks that returned coroutines run as tasks; hold them until they finish.
_background: set[asyncio.Task[Any]] = set()


class SessionRelay(Protocol):
    """What a server's socket tells the cluster of its clients' resumable sessions (streams
    another node holds follow a client across a dropped connection: sio_stream.cluster._resume)."""

    def dropped(self, namespace: str, sid: str, session: Any) -> None: ...

    def taken_over(self, namespace: str, sid: str, session: Any) -> None: ...

    def ask(
        self, namespace: str, peer: str, session: Any, request: dict[str, Any], retry: Callable[[], None]
    ) -> dict[str, Any] | None: ...

    def attempt_dropped(self, namespace: str, sid: str) -> bool: ...

    def confirmed(self, namespace: str, sid: str) -> None: ...

    def ended(self, session: Any) -> None: ...

    def unknown(self, namespace: str, key: str) -> None: ...


class Relay(Protocol):
    """What a server's socket needs of a relay to the other server processes of a cluster
    (:class:`sio_stream.cluster.ClusterNode` is one). Defined here so that the socket names no
    cluster module: the cluster builds on the socket, and plugs in with :func:`plug_relay`."""

    #: The sockets of this server, by namespace (the relay hands them what other nodes forward).
    sockets: dict[str, StreamSocket]

    @property
    def sessions(self) -> SessionRelay: ...

    def ensure_started(self) -> None: ...

    def remote_node(self, namespace: str, sid: Any) -> str | None: ...

    def emitter(self, namespace: str, sid: str) -> Callable[..., Any]: ...

    def is_live(self, namespace: str, sid: str) -> bool: ...

    def route(self, namespace: str, sid: Any, stream_id: Any) -> str | None: ...

    def forward(self, namespace: str, sid: str, event: str, args: tuple[Any, ...]) -> asyncio.Future[Any]: ...

    def features_changed(self, namespace: str, sid: str) -> None: ...

    def joined(self, namespace: str, sid: str) -> None: ...

    def left(self, namespace: str, sid: str) -> None: ...

    def room_nodes(self) -> list[str]:
        """The other live nodes, each asked for its members of a room (see :mod:`._rooms`)."""
        ...

    def node_emitter(self, namespace: str, node: str) -> Callable[..., Any]:
        """The emit function of the link to ``node`` (frames on Redis)."""
        ...

    def node_is_live(self, node: str) -> bool: ...

    def member_answer(self, node: str, namespace: str, call: int, entry: list[Any]) -> None:
        """Send ``node`` the answer of one of our members to its room call ``call``."""
        ...


def _no_relay(sio: Any) -> Relay | None:
    return None


#: Finds the relay of an ``AsyncServer`` (``None``: no cluster). :mod:`sio_stream.cluster`
#: plugs its ``cluster_for`` in when imported, and ``import sio_stream`` imports it.
_relay_for: Callable[[Any], Relay | None] = _no_relay


def plug_relay(relay_for: Callable[[Any], Relay | None]) -> None:
    """Have :func:`ss` ask ``relay_for(sio)`` for the relay of each ``AsyncServer``."""
    global _relay_for
    _relay_for = relay_for


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
    max_window: int = DEFAULT_MAX_WINDOW,
    process_budget: Budget | None = None,
    cluster: bool = True,
    websocket_compression: bool = False,
    resume_timeout: float = DEFAULT_RESUME_TIMEOUT,
    initial_credit: int = 0,
) -> StreamSocket:
    """The :class:`StreamSocket` of ``sio`` (an ``AsyncServer`` or ``AsyncClient``) for ``namespace``.

    There is one per ``(sio, namespace)``: calling ``ss()`` again returns the same instance
    (options given then must match, or :class:`InvalidOptionError` is raised). ``window``
    (chunks a reader keeps in flight, default 4), ``object_window`` (objects an object-mode reader
    keeps in flight, default 128: lower it when objects are large, as a reader may hold that many),
    ``max_chunk`` (largest chunk sent, default
    512 KiB) and ``force_base64`` (send chunks as base64 text, as JavaScript's
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
    outstanding over the connection's streams (default 4 MiB). On a long link a byte stream's
    window grows from ``window`` chunks to at most ``max_window`` bytes (default 32 MiB) while
    the window, not the link or the reader, limits it, toward sio_stream writers, and shrinks back
    when the process budget is over half full; the connection window follows (twice the largest
    stream window, within half of ``max_buffered``). Every connection also draws on a
    process budget: ``process_budget`` (a :class:`Budget` shared by the sockets you give it to),
    by default :func:`sio_stream.process_budget` (512 MiB; change it with
    :func:`sio_stream.set_process_limit`). A connection grows freely up to 3/4 of the process
    budget and beyond that only to its max-min fair share, so the connections holding the most
    are refused new credit first; no connection is ever closed for it.
    They are fixed by the first ``ss()`` call for a socket.

    On an ``AsyncServer`` whose client manager is python-socketio's ``AsyncRedisManager``,
    streams reach clients connected to the other server processes too, forwarded through that
    Redis server (see :mod:`sio_stream.cluster`); ``cluster=False`` keeps them local.

    On an ``AsyncServer``, websockets go uncompressed: browsers offer ``permessage-deflate``, and
    deflating file data held Chromium to a third of its rate; the server now answers the offer
    without it (aiohttp; under ASGI the ASGI server decides: run uvicorn with
    ``ws_per_message_deflate=False``). ``websocket_compression=True`` keeps the server's own
    choice. It applies to the whole Socket.IO server, set by its first ``ss()`` call (see
    :mod:`sio_stream.glue._compression`); a later call with the other value raises
    :class:`InvalidOptionError`.

    ``resume_timeout`` (default 30 s; 0 turns it off): between two sio_stream peers that both
    set it, a connection whose transport drops (no deliberate ``disconnect()``) keeps its streams
    for that many seconds on both ends; when python-socketio's client reconnects, its new
    connection resumes the session and every stream continues where the peer stopped receiving
    (see the protocol notes, ``resume``). Events carrying streams that were in flight are
    delivered exactly once, and a pending ``call()`` gets its answer after the resume; an
    ``emit()`` while the transport is down raises, as before. Toward other peers it changes
    nothing.

    ``initial_credit`` (default 0: off; 16 MiB covers a 100 MB/s link at 150 ms): credit each
    connection's hello offers to a sio_stream peer for the first byte stream it sends this end,
    so that stream's data follows its event at once instead of waiting for its first credit
    (negotiated ``initial-credit``; a 150 ms link's first 48 MiB go about 1.6x faster). Offered
    only while the process budget and the connection have room for it, within ``max_window``,
    half the connection's shared pool and an eighth of the process budget; an offer nobody takes
    holds no memory. Opt-in: on loopback a primed 16 MiB window measured its round trip through
    its own queue and grew, 13-35 % below the unprimed stream's rate. Cluster nodes offer it
    too: writes that overtake their stream's event (a stream a client returns in its answer to
    another node's event) are held within the offer, and a primed stream's end carries its final
    size.
    Raises :class:`LocalProtocolError` for an ``AsyncServer(async_handlers=False)``.
    """
    per_sio: dict[str, StreamSocket] | None = getattr(sio, _SOCKETS_ATTRIBUTE, None)
    if per_sio is None:
        per_sio = {}
    existing = per_sio.get(namespace)
    if existing is not None:
        existing._check_same(window, max_chunk, force_base64, object_window)
        if existing._host.is_server:
            compression.configure(sio.eio, websocket_compression)
        return existing
    config = socket_config(
        window=window,
        object_window=object_window,
        max_chunk=max_chunk,
        force_base64=force_base64,
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
    host = Host(sio, namespace)
    if host.is_server:  # before anything is installed: it raises on a conflicting choice
        compression.configure(sio.eio, websocket_compression)
        whole_posts.configure(sio.eio)
        unsent.configure_server(sio.eio)
    else:
        split_posts.configure(sio.eio)
        fast_mask.configure(sio.eio)
        unsent.configure_client(sio.eio)
    socket = StreamSocket(host, config, claim_timeout=claim_timeout)
    if not socket._host.is_server and not per_sio:
        _announce_disconnects(sio)
    if cluster and socket._host.is_server:
        socket._join_cluster(_relay_for(sio))
    per_sio[namespace] = socket
    setattr(sio, _SOCKETS_ATTRIBUTE, per_sio)
    return socket


def _announce_disconnects(client: Any) -> None:
    """Wrap an ``AsyncClient``'s ``disconnect()``: each of its sockets with a resumable session
    tells the server first (one round trip, at most LEAVING_TIMEOUT), so that the server fails
    the session's streams at once instead of keeping them for ``resume_timeout``. (python-engineio's
    client may close its websocket before its DISCONNECT packet was written: the server then
    sees a dropped transport.)"""
    original = client.disconnect

    async def disconnect(*args: Any, **kwargs: Any) -> Any:
        sockets: dict[str, StreamSocket] = getattr(client, _SOCKETS_ATTRIBUTE, {})
        waits = [w for w in (s._leaving() for s in sockets.values()) if w is not None]
        if waits:
            await asyncio.wait(waits, timeout=LEAVING_TIMEOUT)
        return await original(*args, **kwargs)

    client.disconnect = disconnect


class StreamSocket(SocketLogic):
    """Streams over one python-socketio server or client, in one namespace.

    Use :func:`ss` to get one. Handlers registered with :meth:`on` receive decoded
    arguments (streams as :class:`IOStream`); on a server the client's sid comes first.
    The logic is :class:`~sio_stream.glue._dispatch.SocketLogic`'s; this class drives it on asyncio.
    """

    stream_class = IOStream
    _connections: dict[Any, Connection]
    _cluster: Relay | None = None
    #: False while this node delivers a room event from another node: its members only.
    _rooms_span_nodes = True
    #: Other nodes answering a room event of ours member by member, by call id.
    _room_targets: dict[int, RoomTarget]

    def __init__(self, host: Any, config: Any, *, claim_timeout: float | None = 60.0) -> None:
        super().__init__(host, config, claim_timeout=claim_timeout)
        self._room_targets = {}

    def _new_connection(self, peer: Any, label: str) -> Connection:
        return Connection(
            self._host.emitter(peer),
            self._config,
            label,
            lambda: self._host.is_live(peer),
            lambda: self._host.meter(peer),
        )

    def _new_future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def _drop_peer(self, peer: Any) -> None:
        task = asyncio.ensure_future(self._host.sio.disconnect(peer, namespace=self.namespace))
        _background.add(task)
        task.add_done_callback(_background.discard)

    def _rebind(self, connection: Any, peer: Any) -> None:
        assert isinstance(connection, Connection)
        connection.rebind(
            self._host.emitter(peer),
            lambda: self._host.is_live(peer),
            f"{self.namespace} {peer}",
            lambda: self._host.meter(peer),
        )

    def _deliver_ack(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        result = callback(*args)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            _background.add(task)
            task.add_done_callback(_background.discard)

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
        (python-socketio's conventions; with the Redis manager, the members on every node, see
        :mod:`sio_stream.aio._rooms`; else the clients connected to this process). Each recipient
        then gets its own sub-stream of every stream in ``args``, fed from the one stream you
        write (see :mod:`sio_stream.glue._fanout` for the backpressure policy and ``max_lag``), and
        ``callback`` is called as ``callback(sid, *ack)`` for each recipient. A room with
        nobody in it raises :class:`LocalProtocolError` (the streams stay unsent); in a cluster,
        where other nodes may have members, the writer fails with "every recipient left" once
        every node has refused it.
        """
        if callback is not None and self._cluster is not None:
            callback = MemberCallback(callback)
        self._emit(event, args, to, callback, skip_sid, max_lag)
        return _QUEUED

    def _new_fanout(self, source: IOStream, max_lag: int | None, label: str) -> Fanout:
        return Fanout(source, max_lag, label)

    async def call(
        self,
        event: str,
        *args: Any,
        to: str | list[str] | None = None,
        timeout: float | None = 60,
        skip_sid: str | list[str] | None = None,
        max_lag: int | None = None,
        writer: Awaitable[Any] | None = None,
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

        ``writer`` writes the streams of ``args`` while the call waits, for example
        ``call("upload", stream, meta, writer=send_file(stream, path))``: the peer answers only
        once it has read, so the two must run together. The event is queued first; the call
        returns the ack once both have finished, and nothing is left running or unretrieved
        when it raises or is cancelled. Which error it raises: ``writer``'s own when it failed
        on this side (an ``OSError`` for a missing file, a bug, a :class:`StreamClosedError`;
        the call is then cancelled); else the call's, above, when it failed (the peer's
        :class:`HandlerError` says why it broke the stream; ``writer`` is then cancelled);
        else ``writer``'s :class:`StreamBrokenError` (for example an
        :class:`IntegrityError`) when the peer answered but the stream failed. After a
        ``writer`` failure of that kind the call's answer is still awaited, within ``timeout``
        (a sio_stream peer sends it right after failing the stream; a JavaScript peer's
        handler may never answer).
        """
        if writer is not None:
            started = self.call(event, *args, to=to, timeout=timeout, skip_sid=skip_sid, max_lag=max_lag)
            return await call_writing(started, writer)
        pending = self._start_call(
            event, args, to, skip_sid, max_lag, asyncio.get_running_loop().create_future
        )
        try:
            while waiting := pending.waiting():
                done, _ = await asyncio.wait(waiting, timeout=timeout)
                if not done and pending.stalled(timeout):
                    break
        finally:
            pending.close()
        result = pending.result()
        return flatten_answers(result) if isinstance(result, dict) and not pending.single else result

    def _register(self, host: Any) -> None:
        super()._register(host)
        host.on(wire.END, self._on_end_forwardable)  # may wait for another node's answer

    # -- several server nodes (sio_stream.cluster) ----------------------------------------------------
    def _join_cluster(self, cluster: Relay | None) -> None:
        self._cluster = cluster
        if cluster is not None:
            cluster.sockets[self.namespace] = self
            with contextlib.suppress(RuntimeError):  # no running loop yet: started on first use
                cluster.ensure_started()

    def _is_remote(self, peer: Any) -> bool:
        """True for the sid of a client connected to another node of the cluster."""
        cluster = self._cluster
        if cluster is None or peer is None or self._host.is_local(peer):
            return False
        cluster.ensure_started()
        return cluster.remote_node(self.namespace, peer) is not None

    def _recipients(self, to: Any, skip_sid: Any) -> list[Any] | None:
        if skip_sid is None and self._is_remote(to):
            return None
        cluster = self._cluster
        nodes = cluster.room_nodes() if cluster is not None and self._rooms_span_nodes else []
        if nodes and self._may_span_nodes(to):
            # A room (or a sid this node does not know) may have members on every node: each
            # other node gets one sub-stream and resolves it against its own rooms.
            try:
                local = super()._recipients(to, skip_sid) or []
            except LocalProtocolError:
                local = []  # nobody here: the other nodes may have members
            return local + [RoomTarget(node, to, skip_sid) for node in nodes]
        return super()._recipients(to, skip_sid)

    def _may_span_nodes(self, to: Any) -> bool:
        """True when ``to`` names a room or a client of another node (not only our clients)."""
        names = [to] if isinstance(to, str) else to if isinstance(to, (list, tuple)) else []
        if not names or not all(isinstance(name, str) for name in names):
            return False  # not an address at all: the one-node checks say what is wrong
        if isinstance(to, str) and looks_like_sid(to) and not self._is_remote(to):
            return False  # a client that left: say so at once, as on one node
        return not all(self._host.is_local(name) for name in names)

    def _emit_many(
        self,
        event: str,
        args: tuple[Any, ...],
        recipients: list[Any],
        callback: Callable[..., Any] | None,
        max_lag: int | None,
        to: Any,
    ) -> list[Any]:
        for recipient in recipients:
            if isinstance(recipient, RoomTarget):
                recipient.max_lag = max_lag
        return super()._emit_many(event, args, recipients, callback, max_lag, to)

    def _emit_one_of_many(
        self,
        event: str,
        args: tuple[Any, ...],
        sid: Any,
        callback: Callable[..., Any] | None,
        fanouts: dict[int, Any],
    ) -> bool:
        if not isinstance(sid, RoomTarget):
            return super()._emit_one_of_many(event, args, sid, callback, fanouts)
        # One sub-stream per stream for the whole node, on the link to it; its addressing
        # goes first, and its answer is the list of its members' acks.
        target = sid
        connection = self._connection(target.peer)

        def sub_stream(obj: Any) -> Any:
            return fanouts[id(obj)].sub_stream(target) if isinstance(obj, IOStream) else None

        node_args = placeholders.encode(list(args), sub_stream)
        on_ack = None
        if callback is not None:
            targets = self._room_targets
            target.call = next(_call_ids)
            targets[target.call] = target
            if isinstance(callback, MemberCallback):
                target.on_answer = callback.member

            def every_member_answered(*_ack: Any) -> Any:
                targets.pop(target.call, None)
                return callback(target)

            on_ack = AppAck(self, connection, every_member_answered)
        attached: list[Any] = []
        try:
            encoded = self._encode_into(connection, node_args, attached)
            connection.queue(Outgoing(wire.STREAM, (event, target.addressing(), *encoded), on_ack))
        except StreamError as exc:
            self._room_targets.pop(target.call, None)
            for stream in attached:
                connection.core.detach(stream._core)
            logger.info("sio_stream: %r not sent to node %s: %s", event, target.node, exc)
            for fanout in fanouts.values():
                fanout.subs.pop(target, None)
            return False
        for stream in attached:
            connection.core.announce(stream._core)
        connection.watch_idle()
        return True

    def _connection_for_emit(self, peer: str | None) -> Connection:
        if isinstance(peer, RoomTarget):
            return self._connection(peer.peer)
        if self._is_remote(peer):
            return self._connection(peer)
        connection: Connection = super()._connection_for_emit(peer)
        return connection

    def _connection(self, peer: Any) -> Connection:
        connection = self._connections.get(peer)
        if connection is None and isinstance(peer, NodePeer):
            return self._node_link(peer)
        if connection is None and self._is_remote(peer):
            # A client of another node: our end of its streams lives here, and its packets
            # travel through its node (sio_stream.cluster).
            cluster = self._cluster
            assert cluster is not None
            namespace = self.namespace
            connection = Connection(
                cluster.emitter(namespace, peer),
                self._config,
                f"{namespace} {peer} (on node {cluster.remote_node(namespace, peer)})",
                lambda: cluster.is_live(namespace, peer),
            )
            self._connections[peer] = connection
        if connection is None:
            connection = super()._connection(peer)
        return connection

    def _forward(self, peer: Any, event: str, args: tuple[Any, ...]) -> asyncio.Future[Any] | None:
        """A packet of a local client for a stream whose other end is on another node: send it
        there (the future gets that node's ack); ``None`` for our own streams."""
        cluster = self._cluster
        if cluster is None or not args or cluster.route(self.namespace, peer, args[0]) is None:
            return None
        return cluster.forward(self.namespace, peer, event, args)

    def _on_read(self, peer: Any, *args: Any) -> None:
        if self._forward(peer, wire.READ, args) is None:
            super()._on_read(peer, *args)

    def _on_write(self, peer: Any, *args: Any) -> str | None:
        if self._forward(peer, wire.WRITE, args) is not None:
            # Accepted for the other node, which fails the stream with $stream-error if it
            # refuses the chunk: what a sio_stream writer waits for is credit, not this ack.
            return None
        return super()._on_write(peer, *args)

    async def _on_end_forwardable(self, peer: Any, *args: Any) -> Any:
        # Registered for $stream-end instead of _on_end: records its input before its first
        # await, and waits only for a packet forwarded to another node, or for the
        # application's check of a digest (the ack then says whether it matched).
        forwarded = self._forward(peer, wire.END, args)
        if forwarded is not None:
            return await forwarded
        answer = self._on_end(peer, *args)
        if isinstance(answer, PendingReply):
            reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

            def settle(value: Any) -> None:
                if not reply.done():
                    reply.set_result(value)

            answer.on_done(settle)
            return await reply
        return answer

    def _on_error(self, peer: Any, *args: Any) -> None:
        if self._forward(peer, wire.ERROR, args) is None:
            super()._on_error(peer, *args)

    def _on_hello(self, peer: Any, *args: Any) -> Any:
        answer = super()._on_hello(peer, *args)
        if self._cluster is not None:
            self._cluster.features_changed(self.namespace, peer)
            resume = args[0].get("resume") if args and isinstance(args[0], dict) else None
            if isinstance(resume, dict) and resume.get("confirm") is True:
                self._cluster.sessions.confirmed(self.namespace, peer)
        return answer

    def _on_lifecycle(self, event: str, namespace: str, peer: Any) -> None:
        connection = self._connections.get(peer)
        super()._on_lifecycle(event, namespace, peer)
        cluster = self._cluster
        if cluster is not None and self._host.is_server:
            if event == "dropped" and connection is not None and connection in self._suspended:
                cluster.sessions.dropped(namespace, peer, connection)  # other nodes wait too
            elif event in ("disconnect", "dropped") and not cluster.sessions.attempt_dropped(namespace, peer):
                cluster.left(namespace, peer)
            elif event == "connected":
                cluster.joined(namespace, peer)

    def _taken_over(self, peer: Any, connection: Any) -> None:
        if self._cluster is not None and connection in self._suspended:
            self._cluster.sessions.taken_over(self.namespace, peer, connection)

    def _resume_elsewhere(
        self, peer: Any, fresh: Any, old: Any, info: Any, request: dict[str, Any]
    ) -> dict[str, Any] | None:
        cluster = self._cluster
        if cluster is None:
            return {}

        def retry() -> None:
            # Every node answered (or the session ended meanwhile: the client is refused
            # then): answer now, unless that connection went meanwhile.
            connection = self._connections.get(peer)
            if connection is not None and connection is fresh:
                self._resume_asked(peer, connection, info, request)

        return cluster.sessions.ask(self.namespace, peer, old, request, retry)

    def _session_unknown(self, key: str) -> None:
        if self._cluster is not None:
            self._cluster.sessions.unknown(self.namespace, key)

    def _session_gone(self, key: str) -> None:
        """A client refused by another node for the session whose token hashes to ``key``
        failed that session's streams and carries on there: if it waits here, it ends now
        instead of at its resume_timeout; if its connection still looks live here (its drop
        not seen yet), the session is forgotten, so that the drop fails it at once."""
        session = self._sessions.get(key)
        if session is None:
            return
        logger.info("sio_stream: the client of %s went to another node", session.label)
        if session in self._suspended:
            self._expire(session)
        else:
            self._forget_session(session)

    def _expire(self, connection: Any) -> None:
        super()._expire(connection)
        if self._cluster is not None and connection.core.closed:
            self._cluster.sessions.ended(connection)

    def _shutting_down(self) -> None:
        ending = list(self._suspended)
        super()._shutting_down()
        if self._cluster is not None:
            for connection in ending:
                self._cluster.sessions.ended(connection)
            # Our records of other nodes' clients whose sessions wait there end too.
            for peer, connection in list(self._connections.items()):
                if connection.core.suspended and self._is_remote(peer):
                    self._remote_left(peer)

    def _forwarded(self, peer: Any, event: str, args: list[Any]) -> Any:
        """A packet a client of another node sent for one of our streams, forwarded here:
        recorded at once; the answer, or a PendingReply the application settles later."""
        handler = {
            wire.READ: self._on_read,
            wire.WRITE: self._on_write,
            wire.END: self._on_end,
            wire.ERROR: self._on_error,
        }.get(event)
        return None if handler is None else handler(peer, *args)

    def _node_link(self, peer: NodePeer) -> Connection:
        """The connection record of the link to another node: both ends are sio_stream, so
        every feature is on from the start (no hello travels on a link), except session resume:
        a link has no session to resume (a node that dies is gone, and its streams fail)."""
        cluster = self._cluster
        assert cluster is not None
        node = peer.node
        connection = Connection(
            cluster.node_emitter(self.namespace, node),
            self._config,
            f"{self.namespace} {peer}",
            lambda: cluster.node_is_live(node),
        )
        connection.core.receive_hello(
            {
                "features": sorted(self._config.features - {FEATURE_RESUME}),
                CREDIT_LIMIT_KEY: credit_limit(self._config).to_wire(),  # the nodes share settings
            }
        )
        self._connections[peer] = connection
        return connection

    def _from_node(self, node: str, event: str, args: list[Any]) -> Any:
        """A packet of the link from ``node``: recorded at once; the answer, a PendingReply
        the application settles later, or a future (a room event's answers)."""
        peer = NodePeer(node)
        if event == wire.STREAM:
            return self._room_from_node(peer, args)
        handler = {
            wire.READ: self._on_read,
            wire.WRITE: self._on_write,
            wire.END: self._on_end,
            wire.ERROR: self._on_error,
        }.get(event)
        return None if handler is None else handler(peer, *args)

    def _room_from_node(self, peer: NodePeer, args: list[Any]) -> Any:
        """Another node's room event: relay its streams to this node's members (only theirs:
        they never go on to a third node). Without members, its streams are refused, and the
        other node drops this one from the group."""
        connection = self._connection(peer)
        found: list[Any] = []
        event = args[0] if args else None
        try:
            decoded = self._decode(connection, list(args[2:]), found)
            if not isinstance(event, str) or len(args) < 2:
                raise LocalProtocolError(f"bad room event: {event!r}")
            try:
                to, skip, max_lag, call = parse_addressing(args[1])
            except ValueError as exc:
                raise LocalProtocolError(str(exc)) from None
            self._rooms_span_nodes = False
            try:
                members = SocketLogic._recipients(self, to, skip) or [to]
                if not call:
                    self._emit_many(event, tuple(decoded), members, None, max_lag, to)
                    return None
                pending = self._start_call(
                    event, tuple(decoded), members, None, max_lag, asyncio.get_running_loop().create_future
                )
            finally:
                self._rooms_span_nodes = True
        except StreamError as exc:
            logger.debug("sio_stream: room event %r from %s not delivered here: %s", event, peer, exc)
            for stream in found:
                stream.destroy(exc)
            return None
        cluster = self._cluster
        assert cluster is not None
        for sid, future in pending.futures.items():

            def answered(done: Any, sid: Any = sid) -> None:
                if not done.cancelled():
                    entry = encode_answer(sid, done.exception() or done.result())
                    cluster.member_answer(peer.node, self.namespace, call, entry)

            assert isinstance(future, asyncio.Future)
            future.add_done_callback(answered)
        every: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(self._every_answer(pending, every))
        _background.add(task)
        task.add_done_callback(_background.discard)
        return every

    @staticmethod
    async def _every_answer(pending: Any, every: asyncio.Future[Any]) -> None:
        """Wait for every member's ack (as long as its connection lasts): each went to the
        emitting node as it came; then the room event itself is answered."""
        try:
            while waiting := pending.waiting():
                await asyncio.wait(waiting)
            await asyncio.sleep(0)  # the futures' done callbacks (the member frames) run first
        finally:
            pending.close()
        if not every.done():
            every.set_result(None)

    def _member_answer(self, node: str, call: Any, entry: Any) -> None:
        """A member of ``node`` answered our room event ``call``."""
        target = self._room_targets.get(call)
        if target is not None and target.node == node:
            self._deliver_ack(target.answered, (entry,))

    def _remote_left(self, peer: Any) -> None:
        """A client of another node left (or its node died): its streams here fail."""
        if isinstance(peer, NodePeer):
            targets = self._room_targets
            for call in [call for call, target in targets.items() if target.node == peer.node]:
                del targets[call]
        connection = self._connections.pop(peer, None)
        if connection is not None:
            connection.lost()

    def _remote_features(self, peer: Any, features: list[Any]) -> None:
        connection = self._connections.get(peer)
        if connection is not None and self._is_remote(peer):
            connection.core.receive_hello({"features": features})
            connection.core.forwarded_offer()

    def _event_forwarded(
        self, peer: Any, callback: Callable[..., Any] | None = None
    ) -> Callable[..., Any] | None:
        """Another node is about to emit an application event to our client ``peer``: count it
        in the session's numbering (see ``event_forwarded`` in core/_resume.py)."""
        connection = self._connections.get(peer)
        if connection is not None and not connection.core.closed:
            return connection.core.event_forwarded(callback)
        return callback

    def _sid_of(self, record: Any, sid: str) -> str:
        """The sid connection ``record`` (a client's, once ``sid``) is keyed by now: a resumed
        session moves to its client's new sid."""
        if self._connections.get(sid) is record:
            return sid
        return next((peer for peer, connection in self._connections.items() if connection is record), sid)

    def _forwarded_stream_lost(
        self, peer: Any, stream_id: str, message: str = wire.CONNECTION_ABORTED
    ) -> None:
        """The other end of a local client's stream was on a node that died (or refused it)."""
        connection = self._connections.get(peer)
        if connection is not None and not connection.core.closed:
            connection.queue(Outgoing(wire.ERROR, (stream_id, message)))

    # -- receiving ---------------------------------------------------------------------------------
    async def _on_stream(self, peer: Any, *args: Any) -> Any:
        prepared = self._prepare_event(peer, args)
        outcome = prepared.run() if isinstance(prepared, PreparedEvent) else prepared
        if not isinstance(outcome, AwaitedHandler):
            return outcome
        try:
            result = await outcome.awaitable
        except Exception as exc:
            return outcome.event.finish(failure=exc)
        return outcome.event.finish(result)


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


__all__ = ["Queued", "StreamSocket", "ss"]
