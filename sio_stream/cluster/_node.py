"""One server process in a cluster of python-socketio nodes joined by Redis.

Streams to a client connected to another node work by forwarding its Socket.IO packets: the
node that emits (A) keeps the stream's whole protocol state in an ordinary connection record
whose "emit" publishes frames to the client's node (B); B emits them to its client and sends
the client's ``$stream-*`` packets for those streams back to A. So every stream feature (both
directions, acks, object mode, errors, JavaScript clients) works across nodes unchanged, and
the credit windows bound the data in flight end to end. A client that stops reading its socket
holds back A's record for it, as a local one holds back its own sender (see :mod:`._gate`).

A room (python-socketio keeps each node's rooms on that node) is reached by sending each other
node one stream on the *link* between the two nodes: a connection record keyed by
:class:`~sio_stream.aio._rooms.NodePeer` on each side, whose packets are ``node`` frames. The
receiving node resolves the room against its own members and relays the stream to them; each
chunk crosses Redis once per node (see :mod:`sio_stream.aio._rooms`).

Redis carries:

* ``<prefix>:node:<id>``: one pub/sub channel per node for frames addressed to it (see
  :mod:`._frames`), published in order by one :class:`~._sender.NodeSender` per destination node;
* ``<prefix>:nodes``: heartbeats, and clients joining and leaving;
* ``<prefix>:sids``: a hash from ``namespace + NUL + sid`` to the node the client is connected
  to, read once when a node starts (later changes come as broadcasts);
* ``<prefix>:alive:<id>``: a key that expires unless its node refreshes it.

A node whose heartbeat stops for ``node_timeout`` seconds is dead: every stream that went
through it fails with "Connection aborted". Losing Redis fails every forwarded stream too
(pub/sub cannot replay a lost frame); streams of local clients are never affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..aio._rooms import NodePeer
from ..core import _placeholder as placeholders
from ..core import _wire as wire
from ..core._core import PendingReply
from ._frames import FrameError, decode, encode, encode_pieces, unbatch
from ._gate import FarGates
from ._resume import ForwardedSessions
from ._sender import NodeSender

if TYPE_CHECKING:
    from ..aio._socket import StreamSocket

logger = logging.getLogger("sio_stream")

#: Bytes of frames a node may have published to one other node and not yet heard processed:
#: well under Redis's default pub/sub output-buffer soft limit (8 MiB for 60 s; 32 MiB hard).
DEFAULT_MAX_IN_FLIGHT = 4 * 1024 * 1024
#: A receiving node confirms what it processed with its next message to the sending node, or in
#: a message of its own once this many bytes are owed (see _sender.py).
_CREDIT_STEP = 1024 * 1024
DEFAULT_HEARTBEAT = 1.0
DEFAULT_NODE_TIMEOUT = 5.0
#: Bytes of a node's frames queued (not yet published) beyond which a client's forwarded writes
#: are refused: the other node's credit bounds an honest client's far below it (a connection
#: window is 4 MiB), so only a client writing beyond its credit meets it.
_MAX_QUEUED = 32 * 1024 * 1024
#: Forwarded stream ids a client's node remembers per client, at most (oldest forgotten first).
_MAX_ROUTES = 10_000


@dataclass
class _Route:
    """A stream of a local client whose other end lives on ``node``."""

    node: str
    ended: int = 0  # bit 1: the client ended it; bit 2: the other end did


class ClusterNode:
    """This process's place in the cluster: maps, channels, heartbeats and forwarding."""

    def __init__(
        self,
        sio: Any,
        url: str,
        prefix: str,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        heartbeat: float = DEFAULT_HEARTBEAT,
        node_timeout: float = DEFAULT_NODE_TIMEOUT,
    ) -> None:
        import redis.asyncio  # only clusters need it (the `cluster` extra)

        self.sio = sio
        self.id = uuid.uuid4().hex[:16]
        self.prefix = f"{prefix}#sio_stream"
        # RESP2: redis-py's RESP3 parser formats every pub/sub message into a debug string
        # (str() of a 256 KiB frame, ~1 ms each) even when debug logging is off.
        self.redis = redis.asyncio.Redis.from_url(url, protocol=2)
        self.max_in_flight = max_in_flight
        self.credit_step = min(_CREDIT_STEP, max(1, max_in_flight // 4))
        self.heartbeat = heartbeat
        self.node_timeout = node_timeout
        self.sockets: dict[str, StreamSocket] = {}
        #: Other live nodes, with the loop time they were last heard from.
        self.peers: dict[str, float] = {}
        #: Clients connected to other nodes: (namespace, sid) -> node.
        self.remote: dict[tuple[str, str], str] = {}
        #: Streams of local clients forwarded to other nodes: (namespace, sid) -> id -> route.
        self.routes: dict[tuple[str, str], dict[str, _Route]] = {}
        #: (node, namespace, sid) to which this node sent the client's features.
        self._features_sent: set[tuple[str, str, str]] = set()
        self._senders: dict[str, NodeSender] = {}
        self._acks: dict[int, tuple[str, Callable[..., Any]]] = {}  # emits' ack callbacks
        self._acks_of: dict[tuple[str, str], set[int]] = {}  # the acks owed by each remote client
        self._forwards: dict[int, tuple[str, asyncio.Future[Any]]] = {}  # forwarded packets' acks
        self._ack_ids = itertools.count(1)
        self._ops: deque[Callable[[], Any]] = deque()  # Redis writes, in order
        self._ops_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()
        self._lost = False  # Redis is unreachable right now (logged once per outage)
        self.closed = False
        #: Forwarded streams across a client's dropped connection (see :mod:`._resume`).
        self.sessions = ForwardedSessions(self)
        #: Flow control per client between nodes (see :mod:`._gate`).
        self.gates = FarGates(self)

    # -- names -------------------------------------------------------------------------------
    def node_channel(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    @property
    def nodes_channel(self) -> str:
        return f"{self.prefix}:nodes"

    @property
    def sids_key(self) -> str:
        return f"{self.prefix}:sids"

    def _alive_key(self, node: str) -> str:
        return f"{self.prefix}:alive:{node}"

    # -- start and stop ------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start the background tasks (once; from inside the event loop)."""
        if self._tasks or self.closed:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name=f"sio_stream cluster {self.id} listen"),
            loop.create_task(self._beat(), name=f"sio_stream cluster {self.id} heartbeat"),
            loop.create_task(self._write_ops(), name=f"sio_stream cluster {self.id} redis writes"),
        ]

    async def ready(self, timeout: float = 10.0) -> None:
        """Wait until the node has subscribed and loaded the map (tests, start-up scripts)."""
        self.ensure_started()
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def close(self) -> None:
        """Leave the cluster: other nodes fail the streams that went through this one."""
        if self.closed:
            return
        self.closed = True
        self._ops_wake.set()  # a writer loop that missed its cancellation sees `closed`
        with contextlib.suppress(Exception):
            await self.redis.publish(self.nodes_channel, encode({"t": "bye", "node": self.id}))
            await self.redis.delete(self._alive_key(self.id))
        for task in self._tasks:
            task.cancel()
        for sender in self._senders.values():
            sender.stop()
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    # -- the map of clients --------------------------------------------------------------------
    def remote_node(self, namespace: str, sid: Any) -> str | None:
        """The live node a client of another node is connected to, or ``None``."""
        if not isinstance(sid, str):
            return None
        node = self.remote.get((namespace, sid))
        return node if node is not None and node in self.peers else None

    def joined(self, namespace: str, sid: str) -> None:
        """A client connected here."""
        field = f"{namespace}\0{sid}"
        self._op(lambda: self.redis.hset(self.sids_key, field, self.id))
        self._broadcast({"t": "join", "node": self.id, "ns": namespace, "sid": sid})

    def left(self, namespace: str, sid: str) -> None:
        """A client of this node disconnected: other nodes drop what they forwarded to it."""
        field = f"{namespace}\0{sid}"
        self._op(lambda: self.redis.hdel(self.sids_key, field))
        self._broadcast({"t": "leave", "node": self.id, "ns": namespace, "sid": sid})
        self.routes.pop((namespace, sid), None)
        self.sessions.holding.pop((namespace, sid), None)
        self.sessions.asking.pop((namespace, sid), None)
        self.gates.forget(namespace, sid)
        self._features_sent = {key for key in self._features_sent if key[1:] != (namespace, sid)}

    def broadcast(self, header: dict[str, Any]) -> None:
        """Publish a frame of ``header`` to every node (in order with joins and leaves)."""
        self._broadcast(header)

    def _broadcast(self, header: dict[str, Any]) -> None:
        frame = encode(header)
        self._op(lambda: self.redis.publish(self.nodes_channel, frame))

    def _op(self, op: Callable[[], Any]) -> None:
        self._ops.append(op)
        self._ops_wake.set()
        self.ensure_started()

    async def _write_ops(self) -> None:
        await self._ready.wait()
        # Loops end on `closed` as well as on cancellation: Python 3.11's asyncio.wait_for (inside
        # redis-py) can swallow a cancellation that races its inner task, and a loop that
        # outlived close() kept the event loop from shutting down (seen in the room tests).
        while not self.closed:
            while self._ops:
                op = self._ops.popleft()
                try:
                    await op()
                except Exception as exc:
                    self.redis_lost(exc)
            self._ops_wake.clear()
            await self._ops_wake.wait()

    # -- sending to other nodes ----------------------------------------------------------------
    def _sender(self, node: str) -> NodeSender:
        sender = self._senders.get(node)
        if sender is None:
            sender = self._senders[node] = NodeSender(self, node)
        return sender

    def put(self, node: str, frame: bytes) -> None:
        """Queue ``frame`` for ``node``, behind every frame queued for it so far."""
        self._sender(node).put(frame)

    def emitter(self, namespace: str, sid: str) -> Callable[..., Any]:
        """The emit function of a connection record for a client of another node."""

        async def emit(event: str, args: tuple[Any, ...], callback: Callable[..., Any] | None) -> None:
            # The client's node says when its transport holds too much for the client: this
            # record's sender waits here, as a local connection's does for its own queue.
            await self.gates.wait(namespace, sid)
            node = self.remote_node(namespace, sid)
            if node is None:
                raise ConnectionError(f"client {sid} is no longer connected to any node")
            ack = None
            if callback is not None:
                ack = next(self._ack_ids)
                self._acks[ack] = (node, callback)
                self._acks_of.setdefault((namespace, sid), set()).add(ack)
            header = {"t": "emit", "from": self.id, "ns": namespace, "sid": sid, "event": event, "ack": ack}
            sender = self._sender(node)
            sender.put(encode_pieces(header, list(args)))
            await sender.room()

        return emit

    def is_live(self, namespace: str, sid: str) -> bool:
        return self.remote_node(namespace, sid) is not None

    def far_full(self, namespace: str, sid: str, full: bool) -> None:
        """Our record for a client of another node waits (or no longer waits) for that node's
        transport: shown as a local connection shows it (``waiting_for_transport``)."""
        socket = self.sockets.get(namespace)
        record = socket._connections.get(sid) if socket is not None else None
        if record is not None:
            record.waiting_for_transport = full

    # -- links between nodes (rooms that span nodes, see sio_stream.aio._rooms) -----------------
    def room_nodes(self) -> list[str]:
        """The other live nodes: each resolves a room against its own members."""
        self.ensure_started()
        return list(self.peers)

    def node_is_live(self, node: str) -> bool:
        return node in self.peers

    def member_answer(self, node: str, namespace: str, call: int, entry: list[Any]) -> None:
        """Send ``node`` the answer of one of our members to its room event ``call``."""
        header = {"t": "member", "from": self.id, "ns": namespace, "call": call}
        self._sender(node).put(encode(header, [entry]))

    def node_emitter(self, namespace: str, node: str) -> Callable[..., Any]:
        """The emit function of the link to ``node``: its packets go as ``node`` frames."""

        async def emit(event: str, args: tuple[Any, ...], callback: Callable[..., Any] | None) -> None:
            if node not in self.peers:
                raise ConnectionError(f"node {node} left the cluster")
            ack = None
            if callback is not None:
                ack = next(self._ack_ids)
                self._acks[ack] = (node, callback)
            header = {"t": "node", "from": self.id, "ns": namespace, "event": event, "ack": ack}
            sender = self._sender(node)
            sender.put(encode_pieces(header, list(args)))
            await sender.room()

        return emit

    # -- the client's packets for forwarded streams (on the client's node) ---------------------
    def route(self, namespace: str, sid: Any, stream_id: Any) -> str | None:
        """The node that holds the other end of a local client's stream, or ``None``."""
        if not isinstance(stream_id, str):
            return None
        routes = self.routes.get((namespace, sid))
        if routes is None:
            return None
        route = routes.get(stream_id)
        return route.node if route is not None else None

    def forward(self, namespace: str, sid: str, event: str, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Send a local client's packet to the node that holds the stream. For an end, the
        future gets the ack that node answers with (or the wire's "Connection aborted" if it
        dies first); for anything else it is done at once, with ``None`` once sent."""
        stream_id = args[0] if args else None
        node = self.route(namespace, sid, stream_id)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if node is None or node not in self.peers:
            future.set_result(wire.CONNECTION_ABORTED)
            return future
        sender = self._sender(node)
        if event == wire.WRITE and sender.queued > _MAX_QUEUED:
            # The other node holds the stream's credit, so an honest client never gets here:
            # this one writes beyond it. Its stream fails; nothing more is queued for it.
            future.set_result(f"write beyond granted credit on stream {stream_id}")
            self._refuse_forwarded(namespace, sid, node, stream_id)
            return future
        self._send_features(node, namespace, sid)
        ack = None
        if event == wire.END:
            # Only an end's answer reaches the client (a digest's verdict). Reads, writes and
            # errors go unanswered: the socket accepted them for the other node already, and an
            # ack frame for each cost the two nodes and Redis a message per chunk of credit.
            ack = next(self._ack_ids)
            self._forwards[ack] = (node, future)
        else:
            future.set_result(None)
        header = {"t": "fwd", "from": self.id, "ns": namespace, "sid": sid, "event": event, "ack": ack}
        sender.put(encode_pieces(header, list(args)))
        self._track(namespace, sid, event, args, by_client=True)
        return future

    def _refuse_forwarded(self, namespace: str, sid: str, node: str, stream_id: Any) -> None:
        message = f"write beyond granted credit on stream {stream_id}"
        routes = self.routes.get((namespace, sid))
        if routes is not None:
            routes.pop(stream_id, None)
        socket = self.sockets.get(namespace)
        if socket is not None:
            socket._forwarded_stream_lost(sid, stream_id, message)
        header = {"t": "fwd", "from": self.id, "ns": namespace, "sid": sid, "event": wire.ERROR, "ack": None}
        self._sender(node).put(encode(header, [stream_id, message]))

    def features_changed(self, namespace: str, sid: str) -> None:
        """The local client's hello arrived: nodes holding its streams learn its features."""
        for node, ns, client in list(self._features_sent):
            if (ns, client) == (namespace, sid):
                self._features_sent.discard((node, ns, client))
                self._send_features(node, ns, client)

    def _send_features(self, node: str, namespace: str, sid: str) -> None:
        if (node, namespace, sid) in self._features_sent:
            return
        socket = self.sockets.get(namespace)
        connection = socket._connections.get(sid) if socket is not None else None
        if connection is None:
            return
        self._features_sent.add((node, namespace, sid))
        features = sorted(connection.core.peer_features)
        header = {"t": "features", "from": self.id, "ns": namespace, "sid": sid, "features": features}
        self._sender(node).put(encode(header))

    def _track(self, namespace: str, sid: str, event: str, args: Any, *, by_client: bool) -> None:
        """Keep the route table of a local client's forwarded streams up to date."""
        routes = self.routes.get((namespace, sid))
        if routes is None or not args:
            return
        stream_id = args[0]
        route = routes.get(stream_id) if isinstance(stream_id, str) else None
        if route is None:
            return
        if event == wire.ERROR:
            del routes[stream_id]
        elif event == wire.END:
            route.ended |= 1 if by_client else 2
            if route.ended == 3:
                del routes[stream_id]

    def _learn_routes(self, namespace: str, sid: str, node: str, event: str, args: list[Any]) -> None:
        """Streams named in a packet from ``node`` to a local client now route to ``node``."""
        ids: list[Any] = []
        if event == wire.STREAM:
            placeholders.decode(args[1:], lambda stream_id, _options: ids.append(stream_id))
        elif event in (wire.READ, wire.WRITE, wire.END, wire.ERROR) and args:
            ids.append(args[0])
        if not ids:
            return
        routes = self.routes.setdefault((namespace, sid), {})
        for stream_id in ids:
            if isinstance(stream_id, str) and stream_id not in routes:
                routes[stream_id] = _Route(node)
                while len(routes) > _MAX_ROUTES:
                    del routes[next(iter(routes))]

    # -- receiving -----------------------------------------------------------------------------
    async def _listen(self) -> None:
        """Receive frames for as long as the node lives; after losing Redis, subscribe again
        (backing off up to 5 s) and reload the map: streams through Redis failed meanwhile."""
        delay = 0.2
        while not self.closed:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.redis_lost(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _listen_once(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        own = self.node_channel(self.id).encode()
        try:
            await pubsub.subscribe(self.node_channel(self.id), self.nodes_channel)
            await self._load_map()
            if self._lost:
                logger.warning("sio_stream cluster: Redis is back; node %s rejoined", self.id)
                self._lost = False
            self._ready.set()
            await self.redis.publish(self.nodes_channel, encode({"t": "hb", "node": self.id}))
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                data = message["data"]
                directed = message["channel"] == own
                try:
                    frames = unbatch(data)
                except FrameError as exc:
                    logger.warning(
                        "sio_stream cluster: ignoring a message on %s: %s", message["channel"], exc
                    )
                    continue
                sender: Any = None
                for frame in frames:
                    try:
                        header, args = decode(frame)
                    except FrameError as exc:
                        logger.warning(
                            "sio_stream cluster: ignoring a frame on %s: %s", message["channel"], exc
                        )
                        continue
                    try:
                        await self._handle(header, args)
                    except Exception:
                        logger.exception("sio_stream cluster: frame %r failed", header.get("t"))
                    if header.get("t") != "credit":
                        sender = header.get("node") or header.get("from")
                if directed and isinstance(sender, str):
                    self._confirm(sender, len(data))  # as the sender counted it: whole messages
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _load_map(self) -> None:
        raw: dict[Any, Any] = await self.redis.hgetall(self.sids_key)
        entries = {_text(field): _text(node) for field, node in raw.items()}
        nodes = set(entries.values()) - {self.id}
        alive = {node for node in nodes if await self.redis.exists(self._alive_key(node))}
        now = asyncio.get_running_loop().time()
        for node in alive:
            self.peers.setdefault(node, now)
        for field, node in entries.items():
            namespace, _, sid = field.partition("\0")
            if node in alive:
                self.remote[(namespace, sid)] = node

    async def _handle(self, header: dict[str, Any], args: Any) -> None:
        kind = header.get("t")
        node = header.get("node") or header.get("from")
        if not isinstance(node, str) or node == self.id:
            return
        if node not in self.peers and kind not in ("bye",):
            self.peers[node] = asyncio.get_running_loop().time()
        namespace, sid = header.get("ns"), header.get("sid")
        if kind == "hb":
            self.peers[node] = asyncio.get_running_loop().time()
        elif kind == "join" and isinstance(namespace, str) and isinstance(sid, str):
            self.remote[(namespace, sid)] = node
        elif kind == "leave" and isinstance(namespace, str) and isinstance(sid, str):
            if self.remote.get((namespace, sid)) == node:
                del self.remote[(namespace, sid)]
            self.gates.open(namespace, sid, node)
            for ack in self._acks_of.pop((namespace, sid), ()):
                self._acks.pop(ack, None)  # that client will never answer
            socket = self.sockets.get(namespace)
            if socket is not None:
                socket._remote_left(sid)
        elif kind == "gone":
            self.sessions.gone(namespace, header.get("key"))
        elif kind == "bye":
            self._node_lost(node, "left the cluster")
        elif kind == "credit":
            count = header.get("bytes")
            if isinstance(count, int):
                self._sender(node).confirmed(count)
        elif kind in (
            "emit",
            "fwd",
            "ack",
            "features",
            "node",
            "member",
            "suspend",
            "resume",
            "resumed",
            "end",
            "full",
            "drained",
        ):
            await self._directed(kind, node, header, args if isinstance(args, list) else [])

    def _confirm(self, node: str, size: int) -> None:
        if node in self.peers:
            self._sender(node).owe(size)

    async def _directed(self, kind: str, node: str, header: dict[str, Any], args: list[Any]) -> None:
        namespace, sid = header.get("ns"), header.get("sid")
        if kind == "ack":
            ack = header.get("ack")
            if self.sessions.answer(ack, args):
                return
            entry = self._acks.pop(ack, None) if isinstance(ack, int) else None
            if entry is not None:
                for owed in self._acks_of.values():
                    owed.discard(ack)
                entry[1](*args)
            forward = self._forwards.pop(ack, None) if isinstance(ack, int) else None
            if forward is not None and not forward[1].done():
                forward[1].set_result(args[0] if args else None)
            return
        if kind == "node":
            self._from_node(node, header, args)
            return
        if kind == "member":
            socket = self.sockets.get(namespace) if isinstance(namespace, str) else None
            if socket is not None and args:
                socket._member_answer(node, header.get("call"), args[0])
            return
        if not isinstance(namespace, str) or not isinstance(sid, str):
            return
        if kind == "full":
            self.gates.full(node, namespace, sid)
            return
        if kind == "drained":
            self.gates.open(namespace, sid, node)
            return
        if kind in ("suspend", "resume", "end"):
            self.gates.open(namespace, sid, node)  # the record stops or fails: it waits no more
        if kind == "suspend":
            self.sessions.suspend(namespace, sid)
            return
        if kind == "resume":
            entries = self.sessions.resume(node, namespace, sid, header.get("new"), args[0] if args else None)
            self._reply(node, header.get("ack"), (entries,))
            return
        if kind == "resumed":
            self.sessions.resumed(namespace, sid)
            return
        if kind == "end":
            self.sessions.end(namespace, sid)
            return
        socket = self.sockets.get(namespace)
        if kind == "features":
            features = header.get("features")
            if socket is not None and isinstance(features, list):
                socket._remote_features(sid, features)
            return
        event = header.get("event")
        if not isinstance(event, str):
            return
        ack = header.get("ack")
        if kind == "emit":
            await self._deliver(node, namespace, sid, event, args, ack)
            return

        # "fwd": a client of ``node`` answers a stream of ours. Recorded now, in frame order;
        # an answer the application gives later (a digest it checks) is sent from a callback:
        # the listener never waits, or heartbeats would go unheard meanwhile.
        def reply(result: Any = None) -> None:
            if ack is not None:
                self._reply(node, ack, () if result is None else (result,))

        if socket is None:
            reply(wire.CONNECTION_ABORTED)
            return
        self.remote.setdefault((namespace, sid), node)
        try:
            result = socket._forwarded(sid, event, args)
        except Exception:
            logger.exception("sio_stream cluster: forwarded %s failed", event)
            reply(wire.CONNECTION_ABORTED)
            return
        if isinstance(result, PendingReply):
            result.on_done(reply)
        else:
            reply(result)

    def _from_node(self, node: str, header: dict[str, Any], args: list[Any]) -> None:
        """A packet on the link from ``node`` (a room event, or a stream packet of one):
        recorded now, in frame order; an answer given later is sent from a callback."""
        namespace, event, ack = header.get("ns"), header.get("event"), header.get("ack")

        def reply(result: Any = None) -> None:
            if ack is not None:
                self._reply(node, ack, () if result is None else (result,))

        socket = self.sockets.get(namespace) if isinstance(namespace, str) else None
        if socket is None or not isinstance(event, str):
            if event == wire.STREAM and isinstance(namespace, str):
                # No socket for that namespace here: refuse the streams, so the sending node
                # drops this one from the group at once instead of waiting for credit.
                ids: list[Any] = []
                placeholders.decode(args[1:], lambda stream_id, _options: ids.append(stream_id))
                refusal = {"t": "node", "from": self.id, "ns": namespace, "event": wire.ERROR, "ack": None}
                for stream_id in ids:
                    self._sender(node).put(encode(refusal, [stream_id, "no such namespace on that node"]))
                reply([])
            else:
                reply(wire.CONNECTION_ABORTED)
            return
        try:
            result = socket._from_node(node, event, args)
        except Exception:
            logger.exception("sio_stream cluster: %s from node %s failed", event, node)
            reply(wire.CONNECTION_ABORTED)
            return
        if isinstance(result, PendingReply):
            result.on_done(reply)
        elif isinstance(result, asyncio.Future):
            result.add_done_callback(lambda done: reply(None if done.cancelled() else done.result()))
        else:
            reply(result)

    async def _deliver(
        self, node: str, namespace: str, sid: str, event: str, args: list[Any], ack: Any
    ) -> None:
        """An emit from ``node`` to a client connected here."""
        if not self.sio.manager.is_connected(sid, namespace):
            if self.sessions.is_quiet(namespace, sid):
                # Its session waits for the client; the record there is suspended, and this,
                # sent before it knew, is lost: an event's caller hears it now (its streams
                # fail at the resume, which does not list them).
                if event == wire.STREAM and ack is not None:
                    self._reply(
                        node, ack, ({wire.ERROR_REPLY_KEY: "the event was lost with a dropped connection"},)
                    )
                return
            self._sender(node).put(encode({"t": "leave", "node": self.id, "ns": namespace, "sid": sid}))
            return
        self._learn_routes(namespace, sid, node, event, args)
        self._track(namespace, sid, event, args, by_client=False)
        # Before anything of the client's can reach ``node``: its record there must know the
        # client's features (resume above all) even if the client drops before answering.
        self._send_features(node, namespace, sid)
        callback: Callable[..., Any] | None = None
        socket = self.sockets.get(namespace)
        if ack is not None:
            self.sessions.asked(namespace, sid, node)
            record = socket._connections.get(sid) if socket is not None else None

            def answer(*reply: Any) -> None:
                # Streams the client puts in its ack belong to the node that asked, from the
                # sid it answers on: after a resume (the answer comes again) its new one, where
                # its writes come from at once with initial credit.
                now = sid if socket is None or record is None else socket._sid_of(record, sid)
                self._learn_routes(namespace, now, node, wire.STREAM, [None, *reply])
                self._send_features(node, namespace, now)
                self._reply(node, ack, reply)

            callback = answer

        if event == wire.STREAM and socket is not None:
            # The client counts every application event it receives, ours among its node's:
            # numbered there as it goes (in wire order), so that a resume's counts agree.
            # Its answer is awaited in the session too: one lost in a drop comes again.
            callback = socket._event_forwarded(sid, callback)
        await self.sio.emit(
            event, tuple(args), to=sid, namespace=namespace, callback=callback, ignore_queue=True
        )
        if socket is not None:
            # python-engineio holds what it could not send yet: too much, and ``node`` waits.
            self.gates.delivered(node, namespace, sid, socket._host.meter(sid))

    def _reply(self, node: str, ack: Any, reply: tuple[Any, ...]) -> None:
        self._sender(node).put(encode({"t": "ack", "from": self.id, "ack": ack}, list(reply)))

    # -- failures ------------------------------------------------------------------------------
    async def _beat(self) -> None:
        await self._ready.wait()
        loop = asyncio.get_running_loop()
        beat = encode({"t": "hb", "node": self.id})
        while not self.closed:
            try:
                await self.redis.set(self._alive_key(self.id), b"1", px=int(self.node_timeout * 1000))
                await self.redis.publish(self.nodes_channel, beat)
            except Exception as exc:
                self.redis_lost(exc)
            now = loop.time()
            for node, seen in list(self.peers.items()):
                if now - seen > self.node_timeout:
                    self._node_lost(node, f"no heartbeat for {self.node_timeout} s")
            await asyncio.sleep(self.heartbeat)

    def _node_lost(self, node: str, why: str) -> None:
        if self.peers.pop(node, None) is None and node not in self._senders:
            return
        logger.warning("sio_stream cluster: node %s %s; failing the streams through it", node, why)
        sender = self._senders.pop(node, None)
        if sender is not None:
            sender.stop()
        self.sessions.node_lost(node)
        self.gates.node_lost(node)
        for link_end in list(self.sockets.values()):
            link_end._remote_left(NodePeer(node))  # the link to it: its streams fail
        for key, owner in list(self.remote.items()):
            if owner == node:
                del self.remote[key]
                socket = self.sockets.get(key[0])
                if socket is not None:
                    socket._remote_left(key[1])
        for (namespace, sid), routes in self.routes.items():
            lost = [stream_id for stream_id, route in routes.items() if route.node == node]
            socket = self.sockets.get(namespace)
            for stream_id in lost:
                del routes[stream_id]
                if socket is not None:
                    socket._forwarded_stream_lost(sid, stream_id)
        # Acks the dead node owed: our connection records for its clients failed above (their
        # streams and calls with them); a client of ours waiting to end a stream hears it.
        for ack, (owner, _callback) in list(self._acks.items()):
            if owner == node:
                del self._acks[ack]
        for key in [key for key, _node in self.remote.items() if _node == node]:
            self._acks_of.pop(key, None)
        for ack, (owner, future) in list(self._forwards.items()):
            if owner == node:
                del self._forwards[ack]
                if not future.done():
                    future.set_result(wire.CONNECTION_ABORTED)
        self._features_sent = {key for key in self._features_sent if key[0] != node}

    def redis_lost(self, exc: BaseException) -> None:
        """Redis is unreachable: every forwarded stream fails; local ones go on. Logged once
        per outage (the listener keeps trying to subscribe again)."""
        if self.closed:
            return
        if not self._lost:
            self._lost = True
            logger.error("sio_stream cluster: Redis connection lost (%s); failing forwarded streams", exc)
        for node in list(self.peers) + list(self._senders):
            self._node_lost(node, "unreachable (Redis connection lost)")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
