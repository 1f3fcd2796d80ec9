"""Two protocol cores wired back to back, with no network: a wire in each direction.

Items leave a core's outbox into its outgoing wire (in order) and are delivered from the wire
to the other core one at a time, so a test (or hypothesis) chooses every interleaving. Acks
travel back on the reverse wire, as python-socketio would send them.

Time stands still unless a test brings its own clock: a core given the machine's clock tunes
its windows on whatever the scheduler did between two calls (a preempted round trip made a
fast drain look like a long link, and a window grew past its size on a busy CI machine).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from sio_stream.core import _placeholder as placeholders
from sio_stream.core import _wire as wire
from sio_stream.core._core import CoreConfig, Outgoing, PendingReply, ProtocolCore, StreamCore


def take_all(core: ProtocolCore, stream: StreamCore) -> list[Any]:
    """Everything ``stream``'s inbox holds, taken by the application."""
    out: list[Any] = []
    while stream.inbox:
        out.append(core.take(stream, 1 << 30))
    return out


@dataclass
class Ack:
    callback: Any
    args: tuple[Any, ...]


def standing_still(config: CoreConfig | None) -> CoreConfig:
    """``config`` (or the default) with a clock that stays at 0 unless it has its own."""
    config = CoreConfig() if config is None else config
    return replace(config, clock=lambda: 0.0) if config.clock is time.monotonic else config


class CorePair:
    def __init__(self, a: CoreConfig | None = None, b: CoreConfig | None = None, *, hello: bool = True):
        self.a = ProtocolCore(standing_still(a))
        self.b = ProtocolCore(standing_still(b))
        self.wires: dict[int, deque[Outgoing | Ack]] = {id(self.a): deque(), id(self.b): deque()}
        self.decoded: dict[int, list[StreamCore]] = {id(self.a): [], id(self.b): []}
        self.events: dict[int, list[tuple[str, list[Any]]]] = {id(self.a): [], id(self.b): []}
        if hello:
            self.a.receive_hello(self.b.hello().args[0])
            self.b.receive_hello(self.a.hello().args[0])

    def other(self, core: ProtocolCore) -> ProtocolCore:
        return self.b if core is self.a else self.a

    def send(self, core: ProtocolCore) -> bool:
        """Move one item from ``core``'s outbox to its outgoing wire."""
        item = core.next_outgoing()
        if item is None:
            return False
        self.wires[id(core)].append(item)
        return True

    def deliver(self, core: ProtocolCore) -> bool:
        """Deliver the oldest item on ``core``'s outgoing wire to the other core."""
        queue = self.wires[id(core)]
        if not queue:
            return False
        item = queue.popleft()
        dst = self.other(core)
        if isinstance(item, Ack):
            item.callback(*item.args)
            return True
        result = self._apply(dst, item)
        if item.on_ack is not None:
            on_ack = item.on_ack
            if isinstance(result, PendingReply):  # answered once the application checked a digest
                result.on_done(
                    lambda value: self.wires[id(dst)].append(Ack(on_ack, () if value is None else (value,)))
                )
                return True
            ack_args = () if result is None else (result,)
            self.wires[id(dst)].append(Ack(on_ack, ack_args))
        return True

    def _apply(self, dst: ProtocolCore, item: Outgoing) -> Any:
        args = item.args
        if item.event == wire.READ:
            dst.receive_read(*args)
        elif item.event == wire.WRITE:
            return dst.receive_write(*args)
        elif item.event == wire.END:
            return dst.receive_end(*args)
        elif item.event == wire.ERROR:
            dst.receive_error(*args)
        elif item.event == wire.HELLO:
            dst.receive_reply(args[0].get("resume") if isinstance(args[0], dict) else None)
        elif item.event == wire.STREAM:
            number = dst.event_received()
            if not number:
                return None  # suspended: it came on the dead transport (never here: cuts clear wires)
            dst.event_answered(number, ())  # the handler answers at once, with no arguments
            found = self.decoded[id(dst)]

            def make(stream_id: Any, options: Any, credit: Any = None) -> StreamCore:
                stream = dst.decode_placeholder(stream_id, options, credit)
                found.append(stream)
                return stream

            decoded = placeholders.decode(list(args[1:]), make, credit=True)
            self.events[id(dst)].append((args[0], decoded))
        return None

    def flush(self, limit: int = 100_000) -> None:
        """Send and deliver everything until both sides are quiet."""
        for _ in range(limit):
            moved = False
            for core in (self.a, self.b):
                while self.send(core):
                    moved = True
                while self.deliver(core):
                    moved = True
            if not moved:
                return
        raise AssertionError("the pair never went quiet")

    def read_to_end(
        self, core: ProtocolCore, stream: StreamCore, got: bytes = b"", rounds: int = 500
    ) -> bytes:
        """Flush the pair and take what ``stream`` (read by ``core``) holds until its readable
        side ended or it failed: ``got`` followed by what was read."""
        for _ in range(rounds):
            self.flush()
            got += b"".join(take_all(core, stream))
            if stream.readable_ended or stream.error is not None:
                break
        return got

    def in_flight_writes(self, src: ProtocolCore, stream_id: str) -> int:
        return sum(
            1
            for item in self.wires[id(src)]
            if isinstance(item, Outgoing) and item.event == wire.WRITE and item.args[0] == stream_id
        )

    def open_stream(self, core: ProtocolCore, stream: StreamCore, event: str = "e") -> StreamCore:
        """Announce ``stream`` from ``core`` in an application event; return the peer's copy."""
        placeholder = core.attach(stream)
        core.queue(Outgoing(wire.STREAM, (event, placeholder)))
        core.announce(stream)
        before = len(self.decoded[id(self.other(core))])
        self.send(core)
        while self.wires[id(core)]:
            self.deliver(core)
        return self.decoded[id(self.other(core))][before]
