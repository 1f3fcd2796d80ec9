"""``call()``, whichever I/O drives it: :class:`PendingCall` holds the futures of one call,
resolved by acks, failed by a stall or a dropped connection; and the streams a value carries
(those a call watches for progress, and destroys when its ack comes too late).
"""

from __future__ import annotations

from typing import Any, Protocol

from .._errors import HandlerError, StreamError, StreamTimeoutError
from ..core import _placeholder as placeholders
from ..core._core import StreamCore
from ._connection import ConnectionLogic


class FutureLike(Protocol):
    """What :class:`PendingCall` needs of a future (``asyncio.Future`` or the sync driver's)."""

    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...

    def cancel(self) -> bool: ...

    def cancelled(self) -> bool: ...

    def result(self) -> Any: ...

    def exception(self) -> BaseException | None: ...


class PendingCall:
    """The futures of one ``call()``: resolved by acks, failed by a stall or a dropped connection."""

    def __init__(
        self,
        event: str,
        futures: dict[Any, FutureLike],
        connections: dict[Any, ConnectionLogic],
        moving: list[StreamCore],
        single: bool,
    ) -> None:
        self.event = event
        self.futures = futures
        self.connections = connections
        self.moving = moving
        self.single = single
        self._seen = -1

    def resolve(self, peer: Any, *ack: Any) -> None:
        """The ack of ``peer`` arrived (decoded): its single value, a tuple, or ``None``."""
        future = self.futures[peer]
        if future.done():
            # Too late: nobody will read the streams in this ack.
            for value in ack:
                destroy_streams_in(value, StreamTimeoutError(f"ack for {self.event!r} came too late"))
            return
        if len(ack) == 1 and isinstance(ack[0], HandlerError):
            future.set_exception(ack[0])
            return
        future.set_result(ack[0] if len(ack) == 1 else (tuple(ack) if ack else None))

    def waiting(self) -> list[Any]:
        return [future for future in self.futures.values() if not future.done()]

    def stalled(self, timeout: float | None) -> bool:
        """A wait of ``timeout`` seconds saw no ack: fail what is waiting if the call's streams
        did not move either, and say whether it did."""
        activity = sum(stream.activity for stream in self.moving)
        if activity != self._seen and self.moving:
            self._seen = activity
            return False
        timed_out = StreamTimeoutError(
            f"no ack for {self.event!r} and no progress on its streams within {timeout} s"
        )
        for future in self.waiting():
            future.set_exception(timed_out)
        return True

    def close(self) -> None:
        """The call is over (answered, stalled, or its caller cancelled it): what still waits is
        cancelled, and every answer that came is marked seen. A caller that gives up drops the
        answers on purpose; one that was a refusal (a recipient's :class:`HandlerError`) must
        not be reported by asyncio as "Future exception was never retrieved"."""
        for peer, connection in self.connections.items():
            future = self.futures[peer]
            connection.pending_calls.discard(future)
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()

    def result(self) -> Any:
        if self.single:
            return next(iter(self.futures.values())).result()
        return {peer: future.exception() or future.result() for peer, future in self.futures.items()}


def streams_in(value: Any) -> list[Any]:
    """The streams (of any driver) at any depth in the list ``value``."""
    found: list[Any] = []

    def visit(obj: Any) -> None:
        if isinstance(getattr(obj, "_core", None), StreamCore):
            found.append(obj)

    placeholders.encode(list(value), visit)
    return found


def destroy_streams_in(value: Any, exc: StreamError, *, only_unsent: bool = False) -> None:
    """Destroy every stream in ``value`` (with ``only_unsent``: those not sent anywhere)."""

    def visit(obj: Any) -> None:
        core = getattr(obj, "_core", None)
        if isinstance(core, StreamCore) and not (only_unsent and core.owner is not None):
            obj.destroy(exc)

    placeholders.encode(value, visit)
