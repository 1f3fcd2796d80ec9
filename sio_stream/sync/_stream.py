"""IOStream for the sync API: the same protocol core, with blocking calls.

Every operation on a core (here, in the wire-event handlers and in the sender) runs under one
process-wide lock, :data:`LOCK`: python-socketio's sync server and client call handlers from
several threads (or green threads), and the core is a plain state machine. The lock is never
held across I/O or a wait, so it is uncontended in practice and never blocks an event loop hub.

Waiting uses events from the server's or client's own async mode (``sio.eio.create_event()``),
so a wait parks a green thread under eventlet or gevent instead of freezing the hub.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .._errors import (
    LocalProtocolError,
    StreamBusyError,
    StreamEnded,
    StreamTimeoutError,
)
from ..core._core import StreamCore
from ..core._options import StreamOptions
from ..glue import _connect_scope as connect_scope
from ..glue._stream_base import NOT_YET, StreamBase
from ._caller_sends import LockThenSend

#: Guards every protocol core driven by the sync API (see the module docstring).
LOCK = threading.RLock()
#: :data:`LOCK` for the hot paths: what they queue, this thread emits after releasing it.
SEND_AFTER = LockThenSend(LOCK)

#: ``receive()``'s default size.
DEFAULT_RECEIVE_SIZE = 65536


class _Events:
    """Where waits get their events: the async mode of the last ``ss()`` (threading by default)."""

    create: Callable[[], Any] = threading.Event


def use_events(create: Callable[[], Any]) -> None:
    _Events.create = create


class IOStream(StreamBase):
    """A duplex stream over a Socket.IO connection, with blocking calls (the sync API's ``IOStream``).

    The methods mean what the async :class:`sio_stream.IOStream`'s do, and raise the same
    errors; each blocking one takes ``timeout`` (seconds, ``None``: no limit) and raises
    :class:`~sio_stream.StreamTimeoutError` when it runs out (the stream stays usable, nothing
    is lost). Iterating yields chunks as they arrive; ``with stream:`` ends (or, for an
    unfinished reader, destroys) it on the way out; :meth:`as_raw` is an :class:`io.RawIOBase`.
    """

    _user = "thread"

    def __init__(self, core: StreamCore) -> None:
        self._core = core
        core.listener = self._wake
        self._waiters: list[Any] = []
        #: The reader's event, made once and cleared before each wait (see :meth:`_until`).
        self._read_waiter: Any = None
        self._reader_busy = False
        self._writer_busy = False

    # -- waiting -----------------------------------------------------------------------------
    def _wake(self) -> None:  # the core's listener: called under LOCK
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()

    def _until(self, step: Callable[[], Any], timeout: float | None, what: str, reader: bool = False) -> Any:
        """Run ``step`` under the lock until it returns something other than ``NOT_YET``,
        waiting for the stream's next change in between. ``reader``: the one reading thread
        waits on its own event, cleared under the lock before it is registered (so a wake-up
        between the two cannot be lost), instead of a new event per wait: a download waits
        once per chunk or so."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with SEND_AFTER:
                result = step()
                if result is not NOT_YET:
                    return result
                if self._owner.connecting and connect_scope.inside_connect_handler():
                    raise LocalProtocolError(
                        f"stream {self._core.id} cannot wait for the peer inside the connect handler "
                        f"(what was written is still sent): {connect_scope.ADVICE}"
                    )
                if reader:
                    waiter = self._read_waiter
                    if waiter is None:
                        waiter = self._read_waiter = _Events.create()
                    else:
                        waiter.clear()
                else:
                    waiter = _Events.create()
                self._waiters.append(waiter)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and (remaining <= 0 or not waiter.wait(remaining)):
                with LOCK:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                    result = step()
                if result is not NOT_YET:
                    return result
                raise StreamTimeoutError(f"{what} on stream {self._core.id} timed out after {timeout} s")
            if remaining is None:
                waiter.wait()

    # -- reading -----------------------------------------------------------------------------
    def receive(self, max_bytes: int = DEFAULT_RECEIVE_SIZE, *, timeout: float | None = None) -> Any:
        """The next data: up to ``max_bytes`` bytes (object mode: the next object); raises
        :class:`~sio_stream.StreamEnded` at the end."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        with SEND_AFTER:
            if self._reader_busy:
                raise StreamBusyError("another thread is already reading this stream")
            if self._core.inbox:
                # Data is here (a reader that keeps up finds it so about once a chunk in three,
                # one that lags every time): taken in this one hold of the lock, the credit it
                # gives back emitted by this thread after it.
                return self._owner.take(self._core, max_bytes)
            self._reader_busy = True
        try:
            return self._until(lambda: self._receive_nowait(max_bytes), timeout, "read", reader=True)
        finally:
            self._reader_busy = False

    def __iter__(self) -> Iterator[Any]:
        """Whole chunks as they arrived (objects in object mode)."""
        while True:
            try:
                yield self.receive(sys.maxsize)
            except StreamEnded:
                return

    def read(self, size: int = -1, *, timeout: float | None = None) -> Any:
        """Up to ``size`` bytes, or everything to the end when ``size`` is negative; ``b""`` at the
        end (object mode: the next object, ``None`` at the end). ``timeout`` bounds each wait."""
        if self.object_mode:
            try:
                return self.receive(timeout=timeout)
            except StreamEnded:
                return None
        if size is None or size < 0:
            parts = []
            while True:
                try:
                    parts.append(self.receive(sys.maxsize, timeout=timeout))
                except StreamEnded:
                    return b"".join(parts)
        if size == 0:
            return b""
        try:
            return self.receive(size, timeout=timeout)
        except StreamEnded:
            return b""

    def read1(self, size: int = -1, *, timeout: float | None = None) -> bytes:
        """At most one chunk's worth (``size`` bytes at most when positive); ``b""`` at the end."""
        data: bytes = self.read(sys.maxsize if size is None or size < 0 else size, timeout=timeout)
        return data

    def readinto(self, buffer: Any, *, timeout: float | None = None) -> int:
        """Read into ``buffer``; return the byte count (0 at the end)."""
        view = memoryview(buffer).cast("B")
        data = self.read1(len(view), timeout=timeout) if len(view) else b""
        view[: len(data)] = data
        return len(data)

    # -- writing -----------------------------------------------------------------------------
    def write(self, data: Any, *, timeout: float | None = None) -> None:
        """Queue ``data``; return once the buffer is at or below the high-water mark.

        On a timeout the data stays queued and will be sent."""
        with SEND_AFTER:
            self._write_nowait(data)
            if not self._above_high_water():
                return
            self._writer_busy = True

        def step() -> Any:
            self._raise_error()
            return NOT_YET if self._above_high_water() else None

        try:
            self._until(step, timeout, "write")
        finally:
            self._writer_busy = False

    send = write

    def use_digest(self, name: str = "sha256") -> None:
        """Send a digest of everything written with the end (see the async
        :meth:`sio_stream.IOStream.use_digest`); call it before the first byte."""
        with LOCK:
            self._owner.use_digest(self._core, name)

    def end(self, data: Any = None, *, timeout: float | None = None) -> None:
        """End the writable side (after ``data``); return once the peer acknowledged every chunk."""
        core = self._core
        with LOCK:
            if data is not None:
                self._write_nowait(data)
            self._raise_error()
            self._owner.end(core)

        def step() -> Any:
            if core.write_finished:
                return None
            self._raise_error()
            return NOT_YET

        self._until(step, timeout, "end")

    def destroy(self, exc: BaseException | str | None = None) -> None:
        """Fail the stream here and at the peer (as the async ``destroy``)."""
        with LOCK:
            super().destroy(exc)

    def close(self, *, timeout: float | None = None) -> None:
        """End the writable side; destroy the stream if the peer is still writing to us."""
        with LOCK:
            ending = self._close_needs_end()
        if ending:
            self.end(timeout=timeout)

    def __enter__(self) -> IOStream:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if exc is not None:
            self.destroy(exc)
        else:
            self.close()

    def as_raw(self, *, timeout: float | None = None) -> RawStream:
        """This stream as an :class:`io.RawIOBase` (for ``shutil.copyfileobj``, ``io.BufferedReader``,
        ``tarfile``, ``zipfile``); ``timeout`` applies to each of its blocking calls."""
        return RawStream(self, timeout)


class RawStream(io.RawIOBase):
    """An :class:`io.RawIOBase` over a byte :class:`IOStream`: ``close()`` ends (or destroys) it."""

    def __init__(self, stream: IOStream, timeout: float | None = None) -> None:
        if stream.object_mode:
            raise TypeError("an object-mode stream has no file view")
        self.stream = stream
        self.timeout = timeout
        self._position = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.stream.readinto(buffer, timeout=self.timeout)
        self._position += count
        return count

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        # The stream keeps what it is given until sent: copy, as the caller may reuse its buffer.
        self.stream.write(bytes(data), timeout=self.timeout)
        self._position += size
        return size

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self.closed:
            try:
                self.stream.close(timeout=self.timeout)
            finally:
                super().close()


def create_stream(**options: Any) -> IOStream:
    """A new stream for the sync API (options as :func:`sio_stream.create_stream`)."""
    return IOStream(StreamCore(StreamOptions.create(**options)))
