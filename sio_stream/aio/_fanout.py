"""One stream to many recipients on asyncio: the waiting of
:class:`~sio_stream.glue._fanout.FanoutLogic` (the sub-streams, the ``max_lag`` policy, relays).

The application's stream is delivered by the sender task of a :class:`Connection` of its own,
which waits here while the recipients are behind; a relayed stream is read by a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .._errors import StreamError
from ..glue._fanout import NO_CHUNK, FanoutLogic, source_config
from ._connection import Connection
from ._stream import IOStream

# Relay tasks run until their source ends; hold them here so they are not collected meanwhile.
_relays: set[asyncio.Task[None]] = set()


class Fanout(FanoutLogic):
    """Feeds one application stream to its sub-streams, one per recipient."""

    def __init__(self, source: IOStream, max_lag: int | None, label: str) -> None:
        super().__init__(source, max_lag, IOStream)
        self._connection = Connection(self._deliver, source_config(), f"fan-out {label}", lambda: True)
        self.core = self._connection.core

    def start(self) -> None:
        super().start()
        self._connection.watch_idle()

    def _start_relay(self) -> None:
        task = asyncio.get_running_loop().create_task(
            self._relay(), name=f"sio_stream relay {self.source.id}"
        )
        _relays.add(task)
        task.add_done_callback(_relays.discard)

    async def _relay(self) -> None:
        try:
            # Whole chunks as they arrived: each is queued on every sub-stream as it is.
            async for chunk in self.source:
                await self._write(chunk)
                if not self.subs:
                    return
        except StreamError as exc:
            self.fail_all(exc.wire_message)
            return
        self.end_all()

    async def _deliver(self, event: str, args: tuple[Any, ...], on_ack: Callable[..., Any] | None) -> None:
        chunk = self.delivered(event, args)
        if chunk is NO_CHUNK:
            return
        await self._write(chunk)
        if on_ack is not None:
            on_ack()
        self.granted()

    async def _write(self, chunk: Any) -> None:
        subs = self.offer(chunk)
        while subs:
            # Woken by any sub-stream's progress (or failure). The waiters are registered
            # before this task yields, so no wake-up is lost in between.
            waits = {sub: sub._register_waiter() for sub in subs}
            try:
                await asyncio.wait(waits.values(), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for sub, waiter in waits.items():
                    sub._forget_waiter(waiter)
            subs = self.blocked()
