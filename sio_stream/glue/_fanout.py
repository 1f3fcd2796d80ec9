"""One stream to many recipients, whichever I/O drives it: the sub-streams, the backpressure
policy and what each packet of the source does. A driver adds the waiting
(:mod:`sio_stream.aio._fanout`, :mod:`sio_stream.sync._fanout`).

The stream the application writes feeds one sub-stream per recipient (a room, a list of sids).
It is driven by a protocol core of its own, as if it had been sent to a peer: the "peer" is
the fan-out, which grants it credit, takes each chunk it writes and queues that same chunk
object (no copy) on every recipient's sub-stream. Each sub-stream is an ordinary stream of its
recipient's connection, with that connection's flow control.

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

Nothing here waits, and every method runs to completion: the asyncio driver calls them between
its awaits, the sync driver under its lock.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .._errors import InvalidOptionError, StreamBrokenError, StreamError
from ..core import _wire as wire
from ..core._budget import Budget
from ..core._core import DEFAULT_MAX_BUFFERED, CoreConfig, ProtocolCore, StreamCore
from ._connection import StreamLike

#: Chunks of credit the application's stream holds: one being delivered, one ready behind it.
SOURCE_CREDIT = 2

#: What :meth:`FanoutLogic.delivered` returns for a packet that carries no chunk.
NO_CHUNK: Any = object()


def check_max_lag(max_lag: Any) -> None:
    """Raise :class:`InvalidOptionError` unless ``max_lag`` is a positive integer or ``None``."""
    if max_lag is not None and (isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 1):
        raise InvalidOptionError(f"max_lag must be a positive integer or None, not {max_lag!r}")


def source_config() -> CoreConfig:
    """The settings of the core that drives an application's stream of a fan-out.

    That core only writes: it holds no peer's bytes, so it draws on an account of its own, not
    on the process budget (where it would count as one more connection)."""
    return CoreConfig(process_budget=Budget(DEFAULT_MAX_BUFFERED))


class FanoutLogic:
    """Feeds one application stream (or a relayed one) to its sub-streams, one per recipient.

    A driver subclass sets :attr:`core` (the protocol core of a connection of its own whose
    sender hands each packet to :meth:`delivered`), starts the relay task in
    :meth:`_start_relay`, and waits for any of the streams :meth:`offer` and :meth:`blocked`
    return to change before it asks :meth:`blocked` again.
    """

    #: The source's "connection": its sender delivers what the application writes to us.
    core: ProtocolCore

    def __init__(self, source: Any, max_lag: int | None, stream_class: type[StreamLike]) -> None:
        self.source = source
        self.max_lag = max_lag
        self._stream_class = stream_class
        self.subs: dict[Any, Any] = {}  # recipient sid (None: a client's server) -> sub-stream

    def sub_stream(self, sid: Any) -> Any:
        """A new sub-stream for recipient ``sid`` (with the source's options)."""
        sub = self._stream_class(StreamCore(self.source._core.options))
        self.subs[sid] = sub
        return sub

    def start(self) -> None:
        """Every sub-stream was sent: let the source flow into them."""
        if self.source.received:
            # A relay: the source is a stream a peer is writing to us; read it as it comes.
            self._start_relay()
            return
        core, source = self.core, self.source._core
        core.attach(source)
        core.announce(source)
        for _ in range(SOURCE_CREDIT):
            core.receive_read(source.id, core.config.max_chunk)

    def _start_relay(self) -> None:
        raise NotImplementedError

    # -- what the source sends -----------------------------------------------------------------
    def delivered(self, event: str, args: tuple[Any, ...]) -> Any:
        """A packet of the application's stream: the chunk of a write, to :meth:`offer` (then
        call :meth:`granted`); an end or an error is passed on here, and gives :data:`NO_CHUNK`.
        (``$stream-read``: nobody reads the application's stream of a fan-out.)"""
        if event == wire.WRITE:
            return args[1]
        if event == wire.END:
            self.end_all()
        elif event == wire.ERROR:
            self.fail_all(str(args[1]) if len(args) > 1 else "stream destroyed")
        return NO_CHUNK

    def granted(self) -> None:
        """A chunk was delivered: the application's stream may send one more."""
        self.core.receive_read(self.source.id, self.core.config.max_chunk)

    def end_all(self) -> None:
        for sub in self.live():
            with contextlib.suppress(StreamError):  # that recipient failed meanwhile
                sub._owner.end(sub._core)

    def fail_all(self, message: str) -> None:
        for sub in self.live():
            sub.destroy(message)

    def live(self) -> list[Any]:
        """The sub-streams still going (failed ones leave the group)."""
        for sid, sub in list(self.subs.items()):
            if sub.error is not None:
                del self.subs[sid]
        return list(self.subs.values())

    # -- the policy ------------------------------------------------------------------------------
    def offer(self, chunk: Any) -> list[Any]:
        """Queue ``chunk`` on every sub-stream; return those to wait for (see :meth:`blocked`)."""
        for sub in self.live():
            with contextlib.suppress(StreamError):  # that recipient failed: live() drops it
                sub._write_nowait(chunk)
        return self.blocked()

    def blocked(self) -> list[Any]:
        """The sub-streams whose progress the writer waits for: empty when it may go on (or
        when nobody is left, and the source has failed)."""
        subs = self.live()
        if self.max_lag is not None:
            for sub in subs:
                lag = sub._core.pending_size
                if lag > self.max_lag:
                    unit = "objects" if self.source.object_mode else "bytes"
                    message = f"recipient fell behind by {lag} {unit} (max_lag {self.max_lag})"
                    sub.destroy(StreamBrokenError(message))
            # Only those left: a failed sub-stream never changes again, so waiting on it alone
            # would never end (every recipient dropped at once, by a max_lag below a chunk).
            subs = self.live()
        if not subs:
            self._every_recipient_left()
            return []
        within = [self._within_high_water(sub) for sub in subs]
        ready = all(within) if self.max_lag is None else any(within)
        return [] if ready else subs

    @staticmethod
    def _within_high_water(sub: Any) -> bool:
        return bool(sub._core.pending_size <= sub._core.options.effective_high_water_mark)

    def _every_recipient_left(self) -> None:
        error = StreamBrokenError("every recipient left")
        if self.source.received:
            self.source.destroy(error)
        else:
            self.core.fail(self.source._core, error)
