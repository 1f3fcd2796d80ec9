"""One stream to many recipients: the stream the application writes feeds one sub-stream per
recipient (a room, a list of sids).

The application's stream is driven by a protocol core of its own, as if it had been sent to
a peer: the "peer" is :class:`Fanout`, which grants it credit, takes each chunk it writes and
queues that same chunk object (no copy) on every recipient's sub-stream. Each sub-stream is an
ordinary stream of its recipient's connection, with that connection's flow control.

Backpressure policy (``max_lag``):

* ``None`` (the default): the group moves at the pace of its slowest recipient, as Node's
  ``pipe()`` to several destinations does. Nobody is dropped and nobody loses data; one
  recipient that stops reading stops the writer (and then ``idle_timeout`` fails it).
* ``max_lag=N``: the group moves at the pace of its fastest recipient; slower ones may fall
  behind by up to ``N`` bytes (objects in object mode) buffered for them, and one that falls
  further is failed with ``"fell behind by ... (max_lag ...)"``, while the others go on. The
  bytes buffered for laggards are shared chunk objects, so memory is about ``N`` in all, not
  ``N`` per recipient.

A recipient that disconnects or fails leaves the group; when the last one has left, the
application's stream fails with ``"every recipient left"``.

A stream that a peer sent us can be emitted too: that is a relay. Its chunks are read as they
arrive and queued on the sub-streams as they are, so the sending peer is held back by the
slowest recipient through the ordinary credit window, and the server holds at most a window
per side. A relayed stream carries data one way, from its sender to the recipients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from .._errors import StreamBrokenError, StreamError
from ..core import _wire as wire
from ..core._budget import Budget
from ..core._core import DEFAULT_MAX_BUFFERED, CoreConfig, StreamCore
from ._connection import Connection
from ._stream import IOStream

logger = logging.getLogger("sio_stream")

# Relay tasks run until their source ends; hold them here so they are not collected meanwhile.
_relays: set[asyncio.Task[None]] = set()

#: Chunks of credit the application's stream holds: one being delivered, one ready behind it.
_SOURCE_CREDIT = 2


class Fanout:
    """Feeds one application stream to its sub-streams, one per recipient."""

    def __init__(self, source: IOStream, max_lag: int | None, label: str) -> None:
        self.source = source
        self.max_lag = max_lag
        self.subs: dict[Any, IOStream] = {}  # recipient sid (None: a client's server) -> sub-stream
        # The source's core only writes: it holds no peer's bytes, so it draws on an account of
        # its own, not on the process budget (where it would count as one more connection).
        config = CoreConfig(process_budget=Budget(DEFAULT_MAX_BUFFERED))
        self._connection = Connection(self._deliver, config, f"fan-out {label}", lambda: True)
        self._core = self._connection.core

    def sub_stream(self, sid: Any) -> IOStream:
        """A new sub-stream for recipient ``sid`` (with the application stream's options)."""
        sub = IOStream(StreamCore(self.source._core.options))
        self.subs[sid] = sub
        return sub

    def start(self) -> None:
        """Every sub-stream was sent: let the source flow into them."""
        if self.source.received:
            # A relay: the source is a stream a peer is writing to us; read it as it comes.
            task = asyncio.get_running_loop().create_task(
                self._relay(), name=f"sio_stream relay {self.source.id}"
            )
            _relays.add(task)
            task.add_done_callback(_relays.discard)
            return
        core = self._core
        core.attach(self.source._core)
        core.announce(self.source._core)
        for _ in range(_SOURCE_CREDIT):
            core.receive_read(self.source.id, core.config.max_chunk)
        self._connection.watch_idle()

    async def _relay(self) -> None:
        source = self.source
        try:
            # Whole chunks as they arrived: each is queued on every sub-stream as it is.
            async for chunk in source:
                await self._write(chunk)
                if not self.subs:
                    return
        except StreamError as exc:
            for sub in self._live():
                sub.destroy(exc.wire_message)
            return
        for sub in self._live():
            with contextlib.suppress(StreamError):  # that recipient failed meanwhile
                sub._owner.end(sub._core)

    def _every_recipient_left(self) -> None:
        error = StreamBrokenError("every recipient left")
        if self.source.received:
            self.source.destroy(error)
        else:
            self._core.fail(self.source._core, error)

    # -- the application's stream's "peer" -----------------------------------------------------
    async def _deliver(self, event: str, args: tuple[Any, ...], on_ack: Callable[..., Any] | None) -> None:
        if event == wire.WRITE:
            await self._write(args[1])
            if on_ack is not None:
                on_ack()
            self._core.receive_read(self.source.id, self._core.config.max_chunk)
        elif event == wire.END:
            for sub in self._live():
                with contextlib.suppress(StreamError):  # that recipient failed meanwhile
                    sub._owner.end(sub._core)
        elif event == wire.ERROR:
            message = str(args[1]) if len(args) > 1 else "stream destroyed"
            for sub in self._live():
                sub.destroy(message)
        # $stream-read: nobody reads the application's stream of a fan-out; nothing to do.

    def _live(self) -> list[IOStream]:
        for sid, sub in list(self.subs.items()):
            if sub.error is not None:
                del self.subs[sid]
        return list(self.subs.values())

    async def _write(self, chunk: Any) -> None:
        for sub in self._live():
            with contextlib.suppress(StreamError):  # that recipient failed: _live() drops it
                sub._write_nowait(chunk)
        while True:
            subs = self._live()
            if not subs:
                self._every_recipient_left()
                return
            if self._may_go_on(subs):
                return
            # Woken by any sub-stream's progress (or failure). The waiters are registered
            # before this task yields, so no wake-up is lost in between.
            waits = {sub: sub._register_waiter() for sub in subs}
            try:
                await asyncio.wait(waits.values(), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for sub, waiter in waits.items():
                    sub._forget_waiter(waiter)

    def _may_go_on(self, subs: list[IOStream]) -> bool:
        if self.max_lag is None:
            return all(sub._core.pending_size <= sub._core.options.effective_high_water_mark for sub in subs)
        for sub in subs:
            lag = sub._core.pending_size
            if lag > self.max_lag:
                unit = "objects" if self.source.object_mode else "bytes"
                message = f"recipient fell behind by {lag} {unit} (max_lag {self.max_lag})"
                sub.destroy(StreamBrokenError(message))
        return any(
            sub.error is None and sub._core.pending_size <= sub._core.options.effective_high_water_mark
            for sub in subs
        )
