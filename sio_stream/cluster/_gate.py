"""Flow control per client between nodes: a client's node (B) tells the node holding its
streams (A) when python-engineio's send queue for that client is full, and when it drained.

A connection's own sender stops while its engine.io queue holds ``MAX_UNSENT`` bytes unsent (a
peer that does not read its socket, :mod:`sio_stream.glue._unsent`). Packets that another node
sends a client of B do not go through a sender of B: B's Redis listener hands them to
python-engineio as they come, and it cannot wait there (every client of B would wait with it).
Credit does not bound them either: a client's reports of what it consumed are its own word. So
the gate sits on A, in the sender of A's record for that client, which is where the packets
come from:

* B, after handing a packet from A to its client, looks at the client's queue. Full (at or above
  its limit): B sends A ``full {ns, sid}`` (once until it drains) and asks the queue to call
  back once it holds at most half its limit; then it sends ``drained {ns, sid}`` to every node
  it told. Both frames go on A's channel, in order with everything else B sends A.
* A's record for that client sends nothing more while the gate is closed: its sender waits in
  :meth:`FarGates.wait` before each packet, and its writers wait on their high-water marks as
  they do for a local client that stops reading (backpressure, no error). A client that leaves
  or drops opens its gate (B sends ``drained`` to every node it told: the queue went with the
  transport; ``leave`` and ``suspend`` open it too), and so does the death of its node.

What B holds for such a client is then at most the queue's limit, plus what was on its way from
A when B said so (A's window toward B, ``max_in_flight``), plus a packet; the streams of every
other client go on. Pure bookkeeping over the node's frames; the queue is python-engineio's,
reached through :class:`Queue`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ._frames import encode

#: A client in the cluster: (namespace, sid).
Key = tuple[str, str]


class Queue(Protocol):
    """What the gates use of a client's metered engine.io queue
    (:class:`sio_stream.glue._unsent.Meter`)."""

    @property
    def full(self) -> bool: ...

    def when_drained(self, key: object, callback: Any) -> None: ...

    def cancel(self, key: object) -> None: ...


class Owner(Protocol):
    """What the gates use of the node that owns them (:class:`~sio_stream.cluster.ClusterNode`)."""

    id: str

    def put(self, node: str, frame: bytes) -> None: ...

    def remote_node(self, namespace: str, sid: Any) -> str | None: ...

    def far_full(self, namespace: str, sid: str, full: bool) -> None:
        """A's record for client ``sid`` waits for (or no longer waits for) its node's queue."""
        ...


class _Told:
    """B: the nodes told that a client's queue is full, and the queue that will drain."""

    __slots__ = ("queue", "nodes")

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.nodes: set[str] = set()


class FarGates:
    """Both roles: the client's node (B) and the node holding its streams (A)."""

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        #: B: clients whose queue is full, and the nodes told so.
        self._told: dict[Key, _Told] = {}
        #: A: clients of other nodes whose queue is full: (their node, set once it drained).
        self._closed: dict[Key, tuple[str, asyncio.Event]] = {}

    # -- B: the client's node -----------------------------------------------------------------------
    def delivered(self, node: str, namespace: str, sid: str, queue: Queue | None) -> None:
        """A packet from ``node`` went into client ``sid``'s engine.io ``queue`` (``None``: not
        metered, nothing to do): tell ``node`` if the queue is full now."""
        if queue is None or not queue.full:
            return
        key = (namespace, sid)
        told = self._told.get(key)
        if told is None or told.queue is not queue:
            if told is not None:  # a queue of another connection (a resumed session)
                self.forget(namespace, sid)  # its nodes wait for it no more; this one is told anew
            told = self._told[key] = _Told(queue)
            queue.when_drained(told, lambda: self._drained(key, told))
        if node not in told.nodes:
            told.nodes.add(node)
            self._frame(node, "full", key)

    def _drained(self, key: Key, told: _Told) -> None:
        """The client's queue drained to half (called by python-engineio's writer task)."""
        if self._told.get(key) is told:
            del self._told[key]
        for node in told.nodes:
            self._frame(node, "drained", key)

    def forget(self, namespace: str, sid: str) -> None:
        """B: client ``sid`` left or dropped, and its queue with its transport: every node told
        ``full`` gets ``drained``. A ``leave`` or ``suspend`` opens a gate too, but a dropped
        session is suspended only on the nodes holding its streams or awaiting its answers: one
        that sent it stream-less events alone would wait for the session's end."""
        key = (namespace, sid)
        told = self._told.pop(key, None)
        if told is not None:
            told.queue.cancel(told)
            for node in told.nodes:
                self._frame(node, "drained", key)

    def _frame(self, node: str, kind: str, key: Key) -> None:
        self.owner.put(node, encode({"t": kind, "from": self.owner.id, "ns": key[0], "sid": key[1]}))

    # -- A: the node holding the streams -------------------------------------------------------------
    def full(self, node: str, namespace: str, sid: str) -> None:
        """``full`` from ``node``: close the gate of its client ``sid``."""
        key = (namespace, sid)
        if key in self._closed or self.owner.remote_node(namespace, sid) != node:
            return  # closed already, or a client that has moved on since
        self._closed[key] = (node, asyncio.Event())
        self.owner.far_full(namespace, sid, True)

    def open(self, namespace: str, sid: str, node: str | None = None) -> None:
        """``drained`` from ``node`` (or the client left, dropped, or its node died): open the
        gate (``node`` given: only one that node closed)."""
        entry = self._closed.get((namespace, sid))
        if entry is None or node not in (None, entry[0]):
            return
        del self._closed[(namespace, sid)]
        entry[1].set()
        self.owner.far_full(namespace, sid, False)

    def node_lost(self, node: str) -> None:
        """``node`` died: open the gates of its clients (their records fail), forget what we
        told it."""
        for key in [key for key, (owner, _event) in self._closed.items() if owner == node]:
            self.open(*key)
        for told in self._told.values():
            told.nodes.discard(node)

    async def wait(self, namespace: str, sid: str) -> None:
        """Return once client ``sid``'s gate is open (A's record sends its next packet then)."""
        while (entry := self._closed.get((namespace, sid))) is not None:
            await entry[1].wait()

    def is_closed(self, namespace: str, sid: str) -> bool:
        return (namespace, sid) in self._closed
