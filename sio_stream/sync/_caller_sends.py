"""The thread that queued a packet emits it: no hand-over to the connection's sender task.

Each connection has a sender task (:mod:`sio_stream.sync._connection`) that emits what the core
queued. Waking it costs a thread switch per packet (a condition variable set, then the woken
thread waiting for the GIL, or a scheduler that is busy elsewhere), and a stream pays it twice
per chunk: the chunk's ``$stream-write`` on one side, the ``$stream-read`` that refills the
window on the other. python-engineio then hands the packet to its own writer thread anyway.

:class:`LockThenSend` is :data:`~sio_stream.sync._stream.LOCK` for a block of the hot paths
(a stream's ``write()`` and ``receive()``, the wire events handled on the receive loop): a
connection that finds its outbox idle while such a block runs is claimed for this thread
(:meth:`LockThenSend.claim`), and the thread emits its packets itself once it has released
the lock. A python-socketio emit on a connection only queues the packet for engine.io's writer,
so this never blocks for long; a connection whose emit may block (a fan-out's deliverer) never
lets a caller claim it. One drainer at a time keeps the order; everything else (timers,
lifecycle hooks, acks) still wakes the sender task.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class Drained(Protocol):
    """What a claimed connection offers: emit everything queued, outside the lock."""

    def send_here(self) -> None: ...

    def hand_over(self) -> None: ...


class LockThenSend:
    """``with LockThenSend(lock):`` holds ``lock``; connections claimed in the block are drained
    by this thread after the lock is released (even when the block raised).

    Only the outermost hold of a thread claims: nested in another hold of the lock (this one or
    a plain ``with lock:``), packets go to the sender task as before, so nothing is ever
    emitted with the lock held. State is per thread (per green thread once monkey-patched); it
    is cleared before the drain, so a drain that yields (a green thread's I/O) shares nothing.
    """

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self._owned = getattr(lock, "_is_owned", None)
        self._here = threading.local()

    def __enter__(self) -> None:
        here = self._here
        depth = getattr(here, "depth", 0)
        outermost = depth == 0 and self._owned is not None and not self._owned()
        self._lock.acquire()
        here.depth = depth + 1
        if outermost:
            here.claimed = []

    def __exit__(self, *exc: Any) -> None:
        here = self._here
        here.depth -= 1
        claimed: list[Drained] | None = None
        if here.depth == 0:
            claimed, here.claimed = getattr(here, "claimed", None), None
        self._lock.release()
        for index, connection in enumerate(claimed or ()):
            try:
                connection.send_here()
            except BaseException:
                assert claimed is not None
                for rest in claimed[index + 1 :]:  # never left claimed by nobody
                    rest.hand_over()
                raise

    def claim(self, connection: Drained) -> bool:
        """Called with the lock held by a connection whose outbox is idle: True when this thread
        will drain it after its block (the connection must then wait for that)."""
        claimed: list[Drained] | None = getattr(self._here, "claimed", None)
        if claimed is None:
            return False
        claimed.append(connection)
        return True
