"""Forwarded streams across a client's dropped connection (negotiated ``resume`` in a cluster).

A stream between node A and a client of node B lives in A's connection record for that client
(A holds its state, B only forwards its packets). The client's session lives on B. When the
client's transport drops, B suspends the session and A must suspend the record; when the client
resumes on B, its resume hello lists A's streams too, and B's answer must carry A's entries for
them. Three frames, each on the destination node's channel, so in order with the stream's own
frames:

* ``suspend {ns, sid}`` (B to A, to each node that holds a stream of the client or waits for
  one of its answers): the client's session waits for it. A suspends its record for
  ``sid``: nothing is sent, packets still arriving (forwarded before the drop, after
  everything B forwarded earlier) are ignored, and what the client did not get stays retained
  for the replay, counted in the budget and bounded by the client's window. A's own
  ``resume_timeout`` is a backstop; B's expiry normally comes first (a ``leave`` for ``sid``).
* ``resume {ns, sid, new}`` + ``[entries]``, acked (B to A): the client came back as ``new``
  and reported ``entries`` for A's streams. A moves the record to ``new``, applies them (its
  writers rewind to what the client received), holds what it sends, and answers its own
  entries, which B merges into its answer to the client. A packet of A's could otherwise reach
  the client before that answer, and the client ignores whatever comes before it.
* ``resumed {ns, sid}`` (B to A): the client confirmed the answer (``{"resume": {"confirm":
  true}}``, which every sio_stream client sends): A sends again.

A client's drop during a resume (before B's answer) moves the session's key to that new sid:
A gets ``suspend`` for it after the ``resume``, so the next attempt starts from there. A node
that dies meanwhile answers nothing: its streams fail ("Connection aborted") at the client. A
session that expires ends with a ``leave`` for its key, to each holding node on its channel
(behind any ``resume``) and to all on the broadcast channel; one that expires while a resume
waits sends ``end`` for the new sid (only the records fail: the client stays there, refused and
given a fresh session).

Without sticky sessions the client may come back to another node, which refuses the unknown
session; it broadcasts ``gone`` with the token's hash (never the token), and the node where the
session waits ends it at once instead of at its resume_timeout.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ._frames import encode
from ._gate import FarGates

if TYPE_CHECKING:
    from ..aio._socket import StreamSocket

#: A session's key in the cluster: (namespace, the sid its routes and records are keyed by).
Key = tuple[str, str]
#: Given-up connections remembered until their disconnect, at most (see ``retired``).
_MAX_RETIRED = 10_000


class Owner(Protocol):
    """What the sessions use of the node that owns them (:class:`~sio_stream.cluster.ClusterNode`)."""

    id: str
    peers: dict[str, float]
    remote: dict[tuple[str, str], str]
    routes: dict[tuple[str, str], dict[str, Any]]
    sockets: dict[str, StreamSocket]
    _features_sent: set[tuple[str, str, str]]
    _acks_of: dict[tuple[str, str], set[int]]
    _ack_ids: itertools.count[int]
    #: Flow control per client between nodes (see :mod:`._gate`).
    gates: FarGates

    def put(self, node: str, frame: bytes) -> None: ...

    def left(self, namespace: str, sid: str) -> None: ...

    def broadcast(self, header: dict[str, Any]) -> None: ...

    def emitter(self, namespace: str, sid: str) -> Callable[..., Any]: ...

    def is_live(self, namespace: str, sid: str) -> bool: ...


@dataclass
class _Attempt:
    """A client's resume that waits for the nodes holding some of its streams."""

    number: int
    peer: str  # the client's new sid
    nodes: set[str]
    retry: Callable[[], None]
    waiting: set[str] = field(default_factory=set)
    entries: dict[str, Any] = field(default_factory=dict)


class ForwardedSessions:
    """Both roles: the client's node (B) and the node holding its streams (A)."""

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        #: B: suspended sessions (connection records) -> their key in the cluster.
        self.keys: dict[Any, Key] = {}
        #: B: sids of suspended sessions: frames for them are dropped without a word.
        self.quiet: set[Key] = set()
        #: B: resumes waiting for other nodes' entries, by session.
        self.attempts: dict[Any, _Attempt] = {}
        #: B: nodes that hold their packets for a resumed client until it confirms.
        self.holding: dict[Key, set[str]] = {}
        #: B: nodes that sent a client events asking for an answer (their records wait for it,
        #: streams or not: they follow the session too).
        self.asking: dict[Key, set[str]] = {}
        #: B: callbacks of the ``resume`` frames sent, by ack id: (node, callback).
        self.answers: dict[int, tuple[str, Callable[[Any], None]]] = {}
        #: B: connections whose resume was given up while we still saw them connected (the
        #: client came back on yet another): their disconnect must not ``leave`` (a broadcast
        #: could overtake the ``resume`` that moved the session on, and fail its streams).
        self.retired: dict[Key, None] = {}
        self._numbers = itertools.count(1)

    # -- B: the client's node ---------------------------------------------------------------------
    def _nodes(self, key: Key) -> set[str]:
        routes = self.owner.routes.get(key) or {}
        nodes = {route.node for route in routes.values()} | self.asking.get(key, set())
        return {node for node in nodes if node in self.owner.peers}

    def asked(self, namespace: str, sid: str, node: str) -> None:
        """``node`` sent client ``sid`` an event that asks for an answer."""
        self.asking.setdefault((namespace, sid), set()).add(node)

    def _frame(self, node: str, kind: str, key: Key, args: list[Any] | None = None, **more: Any) -> None:
        header = {"t": kind, "from": self.owner.id, "ns": key[0], "sid": key[1], **more}
        self.owner.put(node, encode(header, args if args is not None else ()))

    def dropped(self, namespace: str, sid: str, session: Any) -> None:
        """The client's transport dropped and its session waits: the nodes holding its
        streams suspend their records."""
        key = (namespace, sid)
        self.keys[session] = key
        self.quiet.add(key)
        self.holding.pop(key, None)  # they get `suspend`: they hold everything anyway
        for node in self._nodes(key):
            self._frame(node, "suspend", key)
        # Then `drained` to every node told `full` (after `suspend`, so that a record that has
        # streams is suspended before its gate opens; one with none only has its gate opened).
        self.owner.gates.forget(namespace, sid)

    def is_quiet(self, namespace: str, sid: str) -> bool:
        """Frames for ``sid`` come from a dead transport's time: drop them, say nothing."""
        return (namespace, sid) in self.quiet

    def ask(
        self, namespace: str, peer: str, session: Any, request: dict[str, Any], retry: Callable[[], None]
    ) -> dict[str, Any] | None:
        """The client resumes ``session`` on its new sid ``peer``: the entries of its streams
        held by other nodes, or ``None`` while they are asked (``retry`` runs once all answered)."""
        attempt = self.attempts.get(session)
        if attempt is not None:
            if attempt.peer == peer:
                if attempt.waiting:
                    return None
                del self.attempts[session]
                self._complete(namespace, peer, session, attempt.nodes)
                return attempt.entries
            self._abandon(session, attempt)  # its connection is gone: the client is on a new one
        key = self.keys.get(session)
        if key is None:
            return {}
        nodes = self._nodes(key)
        if not nodes:
            self._complete(namespace, peer, session, set())
            return {}
        streams = request.get("streams")
        streams = streams if isinstance(streams, dict) else {}
        routes = self.owner.routes.get(key) or {}
        attempt = _Attempt(next(self._numbers), peer, nodes, retry, waiting=set(nodes))
        self.attempts[session] = attempt
        for node in nodes:
            theirs = {
                stream_id: entry
                for stream_id, entry in streams.items()
                if (route := routes.get(stream_id)) is not None and route.node == node
            }
            ack = next(self.owner._ack_ids)
            self.answers[ack] = (node, self._answer(session, attempt.number, node))
            self._frame(node, "resume", key, new=peer, ack=ack, args=[theirs])
        return None

    def _answer(self, session: Any, number: int, node: str) -> Callable[[Any], None]:
        def answered(entries: Any) -> None:
            attempt = self.attempts.get(session)
            if attempt is None or attempt.number != number or node not in attempt.waiting:
                return  # an attempt given up since (its connection dropped)
            if isinstance(entries, dict):
                attempt.entries.update((k, v) for k, v in entries.items() if isinstance(k, str))
            attempt.waiting.discard(node)
            if not attempt.waiting:
                attempt.retry()

        return answered

    def answer(self, ack: Any, args: list[Any]) -> bool:
        """An ``ack`` frame: the answer to one of our ``resume`` frames? (Handled at once, in
        frame order: B's answer to its client is queued before the next frame is read.)"""
        entry = self.answers.pop(ack, None) if isinstance(ack, int) else None
        if entry is None:
            return False
        entry[1](args[0] if args else None)
        return True

    def _complete(self, namespace: str, peer: str, session: Any, nodes: set[str]) -> None:
        """The answer goes to the client now: its routes follow it to ``peer``."""
        key = self.keys.pop(session, None)
        if key is None:
            return
        self.quiet.discard(key)
        routes = self.owner.routes.pop(key, None)
        if routes:
            self.owner.routes.setdefault((namespace, peer), {}).update(routes)
        asking = self.asking.pop(key, None)
        if asking:
            self.asking.setdefault((namespace, peer), set()).update(asking)
        for node in nodes:
            self.owner._features_sent.add((node, namespace, peer))  # the record has them
        if nodes:
            self.holding[(namespace, peer)] = set(nodes)
        # Every node forgets the old sid (the holding nodes moved their records already: their
        # answers came); sent now, the broadcast cannot overtake a `resume` frame.
        self.owner.left(*key)

    def _abandon(self, session: Any, attempt: _Attempt) -> None:
        """The connection of ``attempt`` is gone before the answer: the nodes moved (or will
        move) their records to its sid, so the session's key moves there, suspended."""
        self.attempts.pop(session, None)
        key = self.keys.get(session)
        if key is None:
            return
        new = (key[0], attempt.peer)
        self.quiet.discard(key)
        routes = self.owner.routes.pop(key, None)
        if routes:
            self.owner.routes[new] = routes
        asking = self.asking.pop(key, None)
        if asking:
            self.asking[new] = asking
        self.keys[session] = new
        self.quiet.add(new)
        for node in attempt.nodes:
            self._frame(node, "suspend", new)
        self._retire(new)

    def taken_over(self, namespace: str, sid: str, session: Any) -> None:
        """The client resumed its session from a new connection while its old one, ``sid``,
        still looked live here (see ``_take_over`` in glue/_dispatch.py): the nodes holding its
        streams suspend their records as after a seen drop (the resume then moves them to the
        new sid), and that connection's disconnect, which follows, must not ``leave``: the
        broadcast could overtake the ``resume`` frames and fail the streams they move (the
        resume's completion tells every node to forget ``sid`` in order)."""
        self.dropped(namespace, sid, session)
        self._retire((namespace, sid))

    def _retire(self, key: Key) -> None:
        self.retired[key] = None
        while len(self.retired) > _MAX_RETIRED:
            del self.retired[next(iter(self.retired))]

    def attempt_dropped(self, namespace: str, sid: str) -> bool:
        """Connection ``sid`` is gone: was a resume waiting on it? (Then the session stays
        suspended under ``sid``, and no ``leave`` may tell the nodes to fail it.)"""
        for session, attempt in list(self.attempts.items()):
            if attempt.peer == sid and self.keys.get(session, ("",))[0] == namespace:
                self._abandon(session, attempt)
                del self.retired[(namespace, sid)]  # this is its disconnect
                return True
        return self.retired.pop((namespace, sid), False) is None

    def confirmed(self, namespace: str, sid: str) -> None:
        """The resumed client confirmed our answer: the holding nodes send again."""
        key = (namespace, sid)
        for node in self.holding.pop(key, ()):
            self._frame(node, "resumed", key)

    def ended(self, session: Any) -> None:
        """A suspended session ended (expired, or the server shut down): every node fails
        what it holds for it. The holding nodes are told on their channel, behind any
        ``resume`` frame sent to them (the broadcast ``leave`` could overtake it)."""
        attempt = self.attempts.pop(session, None)
        key = self.keys.pop(session, None)
        if key is None:
            return
        self.quiet.discard(key)
        for node in self._nodes(key):
            self.owner.put(node, encode({"t": "leave", "node": self.owner.id, "ns": key[0], "sid": key[1]}))
        if attempt is not None:
            # It ended while its client's new connection waited for the holding nodes: they
            # moved (or will move) their records to that connection, which stays (with a
            # fresh session, answered now): only the records end there.
            for node in attempt.nodes:
                self._frame(node, "end", (key[0], attempt.peer))
            attempt.retry()
        self.owner.left(*key)

    def unknown(self, namespace: str, key: str) -> None:
        """A client here asked for a session this node does not have (``key``: the hash of its
        token, never the token) and was refused: its session may wait on another node (no
        sticky sessions), which ends it now (:meth:`gone`)."""
        self.owner.broadcast({"t": "gone", "node": self.owner.id, "ns": namespace, "key": key})

    def gone(self, namespace: Any, key: Any) -> None:
        """Another node refused a client that held the session ``key``: end it if it waits here."""
        socket = self.owner.sockets.get(namespace) if isinstance(namespace, str) else None
        if socket is not None and isinstance(key, str):
            socket._session_gone(key)

    def node_lost(self, node: str) -> None:
        """``node`` died: it answers nothing (its streams fail at the client: no entries)."""
        for ack, (owner, callback) in list(self.answers.items()):
            if owner == node:
                del self.answers[ack]
                callback({})
        for nodes in self.holding.values():
            nodes.discard(node)

    # -- A: the node holding the streams ------------------------------------------------------------
    def _record(self, namespace: Any, sid: Any) -> tuple[StreamSocket | None, Any]:
        socket = self.owner.sockets.get(namespace) if isinstance(namespace, str) else None
        record = socket._connections.get(sid) if socket is not None and isinstance(sid, str) else None
        return socket, record

    def suspend(self, namespace: Any, sid: Any) -> None:
        """``suspend``: the client of our record for ``sid`` dropped; its session waits."""
        socket, record = self._record(namespace, sid)
        if socket is None or record is None or record.core.closed:
            return
        if not record.core.resumable:
            socket._remote_left(sid)
            return
        record.suspend(lambda: self._expired(socket, record))

    @staticmethod
    def _expired(socket: StreamSocket, record: Any) -> None:
        """Our own resume_timeout passed without a resume (its node's expiry normally comes
        first): the record's streams fail."""
        for key, each in list(socket._connections.items()):
            if each is record:
                socket._remote_left(key)

    def resume(self, node: str, namespace: Any, sid: Any, new: Any, entries: Any) -> dict[str, Any]:
        """``resume``: the client is back on ``node`` as ``new``; returns our entries."""
        socket, record = self._record(namespace, sid)
        if socket is None or record is None or record.core.closed or not isinstance(new, str):
            return {}
        assert isinstance(namespace, str)
        if not record.core.suspended:
            socket._remote_left(sid)  # no `suspend` came first: nothing to resume from
            return {}
        owner = self.owner
        del socket._connections[sid]
        owner.remote.pop((namespace, sid), None)
        owner.remote[(namespace, new)] = node
        owed = owner._acks_of.pop((namespace, sid), None)
        if owed:
            # Answers the client still owes come through its node's resume (sent again).
            owner._acks_of.setdefault((namespace, new), set()).update(owed)
        stale = socket._connections.pop(new, None)
        if stale is not None:
            stale.lost()  # emitted to the new sid before the resume: the client ignored it
        socket._connections[new] = record
        record.rebind(
            owner.emitter(namespace, new),
            lambda: owner.is_live(namespace, new),
            f"{namespace} {new} (on node {node})",
        )
        record.hold()  # until the client confirmed its node's answer (`resumed`)
        state: dict[str, Any] = record.core.resume_state()
        record.core.apply_resume(entries if isinstance(entries, dict) else {})
        record.resumed()
        return state

    def end(self, namespace: Any, sid: Any) -> None:
        """``end``: the session our record for ``sid`` followed ended on the client's node,
        though the client stays connected as ``sid`` (with a fresh session): its streams fail."""
        socket, record = self._record(namespace, sid)
        if socket is not None and record is not None:
            socket._remote_left(sid)

    def resumed(self, namespace: Any, sid: Any) -> None:
        """``resumed``: the client has its node's answer; send again."""
        _socket, record = self._record(namespace, sid)
        if record is not None and not record.core.closed:
            record.release()
