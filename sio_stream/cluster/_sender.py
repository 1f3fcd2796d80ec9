"""The link from one cluster node to another: frames published in order on the other node's
channel, with at most ``max_in_flight`` bytes published and not yet confirmed processed (the
receiving node confirms in steps), so a slow node is never sent more than Redis buffers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

from ._frames import batch

#: Bytes of frames published as one message at most (frames queued together are batched).
MAX_BATCH = 1024 * 1024


class Owner(Protocol):
    """What a sender uses of the node that owns it (:class:`~sio_stream.cluster.ClusterNode`)."""

    max_in_flight: int
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
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.unconfirmed = 0
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def put(self, frame: bytes) -> None:
        self.queue.append(frame)
        self.queued += len(frame)
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

    async def _run(self) -> None:
        try:
            while self.queue:
                while self.unconfirmed >= self.owner.max_in_flight and self.node in self.owner.peers:
                    self.changed.clear()
                    await self.changed.wait()
                # Every frame queued (up to the window) in one round trip: a pipeline keeps
                # their order and does not wait for Redis's answer to each before the next.
                pipeline = self.owner.redis.pipeline(transaction=False)
                while self.queue and self.unconfirmed < self.owner.max_in_flight:
                    frames, size = [self.queue.popleft()], 0
                    size = len(frames[0])
                    while self.queue and size + len(self.queue[0]) <= MAX_BATCH:
                        frames.append(self.queue.popleft())
                        size += len(frames[-1])
                    self.queued -= size
                    message = batch(frames)
                    self.unconfirmed += len(message)
                    pipeline.publish(self.channel, message)
                self.changed.set()
                await pipeline.execute()
        except Exception as exc:  # Redis is gone: every stream through it fails
            self.owner.redis_lost(exc)
        finally:
            self.task = None

    def stop(self) -> None:
        self.queue.clear()
        self.queued = 0
        self.changed.set()
        if self.task is not None:
            self.task.cancel()
            self.task = None
