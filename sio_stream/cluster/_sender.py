"""The link from one cluster node to another: frames published in order on the other node's
channel, with at most ``max_in_flight`` bytes published and not yet confirmed processed, so a
slow node is never sent more than Redis buffers.

Confirmations travel the other way on the same kind of link: what this node owes the other
(bytes of its messages processed here) rides at the front of the next message to it, and goes
alone only once a ``credit_step`` has gathered while nothing else is going there (and never
waits for the window: two full windows would wait for each other). On a busy machine every
message between processes costs a wake-up of the receiver, so a confirmation of its own for
every step cost the link a publish, Redis's reply to it and a delivery.

For the same reason a sender publishes on a connection of its own and reads Redis's replies in
a task of its own: it never waits a round trip to Redis before the next message (a pipeline
awaited its replies first), and replies that arrive while the node is busy are read together.
TCP's own flow control holds the sender back when Redis reads slower than it publishes. A
connection that closes with replies outstanding may have lost a message: the node fails every
stream through Redis, as when Redis goes away. One that closes idle (Redis's ``timeout``
setting) is replaced at the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from typing import Any, Protocol

from ._frames import Frame, batch, encode, size_of

#: Bytes of frames published as one message at most (frames queued together are batched).
MAX_BATCH = 1024 * 1024

# Connections being closed (a sender stops from synchronous code); held until they are.
_closing: set[asyncio.Task[None]] = set()


class Owner(Protocol):
    """What a sender uses of the node that owns it (:class:`~sio_stream.cluster.ClusterNode`)."""

    id: str
    max_in_flight: int
    #: Bytes owed to another node that make a confirmation worth a message of its own.
    credit_step: int
    #: The other live nodes: a sender stops waiting for confirmations from a node that left.
    peers: dict[str, float]
    redis: Any

    def node_channel(self, node: str) -> str: ...

    def redis_lost(self, exc: BaseException) -> None: ...


class NodeSender:
    """Publishes frames to one node in order, with at most ``limit`` bytes unconfirmed."""

    def __init__(self, owner: Owner, node: str) -> None:
        self.owner = owner
        self.node = node
        self.channel = owner.node_channel(node)
        self.queue: deque[tuple[Frame, int]] = deque()  # (frame, its size)
        self.queued = 0
        self.unconfirmed = 0
        #: Bytes of the other node's messages processed here and not yet confirmed to it.
        self.owed = 0
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._connection: Any = None  # redis-py's, for this sender alone (see the module's doc)
        self._replies: asyncio.Task[None] | None = None  # reads the connection's replies
        self._awaiting = 0  # messages published on it whose reply has not come yet

    def put(self, frame: Frame) -> None:
        size = size_of(frame)
        self.queue.append((frame, size))
        self.queued += size
        self._start()

    def owe(self, count: int) -> None:
        """``count`` more bytes of the other node's messages were processed here."""
        self.owed += count
        if self.owed >= self.owner.credit_step:
            self.changed.set()  # a sender blocked on its window sends it alone
            self._start()

    def _start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name=f"sio_stream to node {self.node}"
            )

    async def room(self) -> None:
        """Wait while more than the limit is queued or unconfirmed (backpressure for emitters)."""
        while self.queued + self.unconfirmed > self.owner.max_in_flight and self.node in self.owner.peers:
            self.changed.clear()
            await self.changed.wait()

    def confirmed(self, count: int) -> None:
        self.unconfirmed = max(0, self.unconfirmed - count)
        self.changed.set()

    def _blocked(self) -> bool:
        return self.unconfirmed >= self.owner.max_in_flight and self.node in self.owner.peers

    def _credit(self) -> list[Frame]:
        """The confirmation owed (none if nothing is), to go at the front of a message."""
        if not self.owed:
            return []
        frame = encode({"t": "credit", "node": self.owner.id, "bytes": self.owed})
        self.owed = 0
        return [frame]

    async def _run(self) -> None:
        try:
            while True:
                if self.queue and not self._blocked():
                    # Every frame queued (up to the window) in one write, in order.
                    messages: list[bytes] = []
                    while self.queue and self.unconfirmed < self.owner.max_in_flight:
                        frame, size = self.queue.popleft()
                        frames = [*self._credit(), frame]
                        while self.queue and size + self.queue[0][1] <= MAX_BATCH:
                            frame, more = self.queue.popleft()
                            frames.append(frame)
                            size += more
                        self.queued -= size
                        message = batch(frames)
                        self.unconfirmed += len(message)
                        messages.append(message)
                    self.changed.set()
                    await self._publish(messages)
                elif self.owed >= self.owner.credit_step:
                    # Nothing to carry it (or the window is full): a message of its own, which
                    # the other node does not count against its window.
                    await self._publish([batch(self._credit())])
                elif self.queue:
                    self.changed.clear()
                    await self.changed.wait()
                else:
                    return
        except Exception as exc:  # Redis is gone: every stream through it fails
            self.owner.redis_lost(exc)
        finally:
            self.task = None

    async def _publish(self, messages: list[bytes]) -> None:
        connection = self._connection
        if connection is None:
            connection = self.owner.redis.connection_pool.make_connection()
            await connection.connect()
            # Named for whoever reads CLIENT LIST: which node publishes to which.
            await connection.send_command("CLIENT", "SETNAME", f"sio_stream:{self.owner.id}->{self.node}")
            await connection.read_response()
            self._connection, self._awaiting = connection, 0
            self._replies = asyncio.get_running_loop().create_task(
                self._read_replies(connection), name=f"sio_stream replies for node {self.node}"
            )
        commands = [("PUBLISH", self.channel, message) for message in messages]
        self._awaiting += len(commands)
        await connection.send_packed_command(connection.pack_commands(commands), check_health=False)

    async def _read_replies(self, connection: Any) -> None:
        try:
            while True:
                await connection.read_response(timeout=math.inf)
                self._awaiting -= 1
        except Exception as exc:
            if self._connection is not connection:
                return  # stopped meanwhile
            self._connection = None
            lost = self._awaiting > 0
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            if lost:
                self.owner.redis_lost(exc)

    def stop(self) -> None:
        self.queue.clear()
        self.queued = 0
        self.owed = 0
        self.changed.set()
        if self.task is not None:
            self.task.cancel()
            self.task = None
        connection, self._connection = self._connection, None
        if self._replies is not None:
            self._replies.cancel()
            self._replies = None
        if connection is not None:
            task = asyncio.get_running_loop().create_task(connection.disconnect(nowait=True))
            _closing.add(task)
            task.add_done_callback(_closing.discard)
