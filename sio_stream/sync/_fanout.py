"""One stream to many recipients in the sync API: the waiting of
:class:`~sio_stream.glue._fanout.FanoutLogic` (the sub-streams, the ``max_lag`` policy, relays),
with threads (green threads under eventlet or gevent).

The application's stream is delivered by the sender of a :class:`Connection` of its own, a
background task that blocks here, outside :data:`LOCK`, while the recipients are behind; a
relayed stream is read by a background task. Every use of the shared logic runs under
:data:`LOCK`, and a wait is parked on the sub-streams in the same hold of the lock as the
check that found them behind, so no wake-up is lost in between.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import StreamError
from ..glue._fanout import NO_CHUNK, FanoutLogic, source_config
from ._connection import Connection
from ._host import SyncHost
from ._stream import LOCK, IOStream


class Fanout(FanoutLogic):
    """Feeds one application stream (or a relayed one) to its sub-streams, one per recipient."""

    def __init__(self, host: SyncHost, source: IOStream, max_lag: int | None, label: str) -> None:
        super().__init__(source, max_lag, IOStream)
        self._host = host
        self._connection = Connection(host, source_config(), f"fan-out {label}", self._deliver, lambda: True)
        self.core = self._connection.core

    def start(self) -> None:  # under LOCK
        super().start()
        self._connection.watch_idle()

    def _start_relay(self) -> None:
        self._host.sio.start_background_task(self._relay)

    def _relay(self) -> None:
        try:
            # Whole chunks as they arrived: each is queued on every sub-stream as it is.
            for chunk in self.source:
                self._write(chunk)
                if not self.subs:
                    return
        except StreamError as exc:
            with LOCK:
                self.fail_all(exc.wire_message)
            return
        with LOCK:
            self.end_all()

    def _deliver(self, event: str, args: tuple[Any, ...], on_ack: Callable[..., Any] | None) -> None:
        # Called by the sender outside LOCK; on_ack takes LOCK itself.
        with LOCK:
            chunk = self.delivered(event, args)
        if chunk is NO_CHUNK:
            return
        self._write(chunk)
        if on_ack is not None:
            on_ack()
        with LOCK:
            self.granted()

    def _write(self, chunk: Any) -> None:
        with LOCK:
            subs = self.offer(chunk)
            wake = self._park(subs)
        while subs:
            wake.wait()  # any sub-stream's progress or failure sets it
            with LOCK:
                for sub in subs:
                    if wake in sub._waiters:
                        sub._waiters.remove(wake)
                subs = self.blocked()
                wake = self._park(subs)

    def _park(self, subs: list[IOStream]) -> Any:
        """An event set at the next change of any of ``subs`` (under LOCK)."""
        wake = self._host.create_event()
        for sub in subs:
            sub._waiters.append(wake)
        return wake
