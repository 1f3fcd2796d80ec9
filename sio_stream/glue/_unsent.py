"""Bytes handed to python-engineio and not sent yet, per connection: the writer-side bound.

python-engineio queues every packet for a peer in an unbounded queue that its writer task
empties as fast as the peer's socket takes them. Nothing is acknowledged at that level, so a
peer that grants a writer credit and then stops reading its socket (a hostile reader, or a
stuck one) made a writer put everything its credit allowed in that queue: 45 of 48 MiB granted,
measured (tests/test_hostile_reader.py), and without bound for a reader that keeps granting.
Credit cannot bound it: a reader's reports of what it consumed are its own word.

So each engine.io queue is a :class:`Metered` one, which counts the bytes of the packets it
holds and calls back when they drain; a connection's sender stops handing packets over while
its queue holds :data:`MAX_UNSENT` bytes or more, and starts again once it holds at most half
of that. The application's writer then waits on its stream's high-water mark, as it does for
credit (backpressure, no error: a reader that reads again gets everything). python-engineio's
writer takes the whole queue at once before it sends it, so what one connection holds unsent is
at most twice the bound plus one chunk, beside the kernel's socket buffer.

:func:`configure_server` makes an engine.io server create metered queues for the connections
that come after it; :func:`configure_client` gives a client that has not connected yet a
metered queue. A queue that is not metered (a connection that came before ``ss()``) is not
bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ._drivers import wrap_driver

logger = logging.getLogger("sio_stream")

#: Bytes a connection may have queued in python-engineio, unsent, before its sender waits. Large
#: enough that the transport never runs dry between two turns of the sender (eight 512 KiB
#: chunks; one chunk already saturates a loopback socket's buffer), small beside a connection's
#: read budget (64 MiB): a server with a thousand stuck readers holds 8 GiB less per 64 MiB.
MAX_UNSENT = 4 * 1024 * 1024
#: Packets carry bytes or text; anything else (``None``, the end of the queue) counts as this.
_OTHER = 16
_DONE_ATTRIBUTE = "_sio_stream_metered_queues"


class Meter:
    """The bytes one queue holds, and the callbacks that wait for them to drain."""

    __slots__ = ("queued", "limit", "_waiters")

    def __init__(self, limit: int = MAX_UNSENT) -> None:
        self.queued = 0
        self.limit = limit
        self._waiters: dict[object, Callable[[], None]] = {}

    @property
    def full(self) -> bool:
        """At or above the limit: a sender should wait (see :meth:`when_drained`)."""
        return self.queued >= self.limit

    def when_drained(self, key: object, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the queue holds at most half the limit (once per registration;
        registering a key again keeps one callback)."""
        self._waiters[key] = callback

    def cancel(self, key: object) -> None:
        self._waiters.pop(key, None)

    def added(self, item: Any) -> None:
        self.queued += packet_size(item)

    def removed(self, item: Any) -> None:
        self.queued -= packet_size(item)
        if self._waiters and self.queued * 2 <= self.limit:
            # A copy: a sync sender may register meanwhile, from its own thread (it looks at
            # ``full`` again after registering, so a callback it added too late is not needed).
            waiters = list(self._waiters.values())
            self._waiters = {}
            for callback in waiters:
                try:
                    callback()
                except Exception:  # engine.io's writer calls us: it must go on sending
                    logger.exception("sio_stream: waking a sender after the transport drained failed")


def packet_size(item: Any) -> int:
    """Bytes of one engine.io packet (its data), as queued."""
    data = getattr(item, "data", None)
    if isinstance(data, bytes | bytearray | memoryview | str):
        return len(data)
    return _OTHER


_metered_classes: dict[Any, Any] = {}


def metered(base: Any) -> Any:
    """A subclass of queue class ``base`` (``asyncio.Queue``, ``queue.Queue`` or eventlet's and
    gevent's) whose instances carry a :class:`Meter` (``.meter``), kept through the ``_put`` and
    ``_get`` hooks that every one of them routes its items through."""
    cls = _metered_classes.get(base)
    if cls is None:

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            self.meter = Meter()
            base.__init__(self, *args, **kwargs)

        def _put(self: Any, item: Any) -> None:
            base._put(self, item)
            self.meter.added(item)

        def _get(self: Any) -> Any:
            item = base._get(self)
            self.meter.removed(item)
            return item

        namespace = {"__init__": __init__, "_put": _put, "_get": _get}
        cls = type(f"Metered{base.__name__}", (base,), namespace)
        _metered_classes[base] = cls
    return cls


def meter_of(queue: Any) -> Meter | None:
    """The meter of a metered queue, ``None`` for any other."""
    meter = getattr(queue, "meter", None)
    return meter if isinstance(meter, Meter) else None


def configure_server(eio: Any) -> bool:
    """Make engine.io server ``eio`` give each connection after this a metered queue; return
    whether it does (an asyncio server, or a sync one whose driver table has a queue class)."""
    if getattr(eio, _DONE_ATTRIBUTE, False):
        return True
    if _is_asyncio(eio):
        queue_class = metered(asyncio.Queue)

        def create_queue(*args: Any, **kwargs: Any) -> Any:
            return queue_class(*args, **kwargs)

        eio.create_queue = create_queue
        setattr(eio, _DONE_ATTRIBUTE, True)
        return True
    mode = getattr(eio, "async_mode", None)
    return isinstance(mode, str) and wrap_driver(eio, mode, "queue", metered, _DONE_ATTRIBUTE)


def configure_client(eio: Any) -> bool:
    """Give engine.io client ``eio`` a metered queue if it has not connected yet (its queue
    serves every connection it makes, reconnections included); return whether it has one."""
    queue = getattr(eio, "queue", None)
    if meter_of(queue) is not None:
        return True
    if getattr(eio, "state", None) != "disconnected" or queue is None or queue.qsize():
        return False
    eio.queue = metered(type(queue))()
    return True


def _is_asyncio(eio: Any) -> bool:
    return bool(getattr(eio, "is_asyncio_based", lambda: False)())
