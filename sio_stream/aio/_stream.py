"""IOStream: one sub-stream of a Socket.IO connection, as an ``anyio.abc.ByteStream``.

The protocol state lives in a :class:`~sio_stream.core._core.StreamCore`; this class adds waiting
(backpressure, data arrival, acknowledgements) and the file-like conveniences.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import anyio
import anyio.abc

from .._errors import (
    LocalProtocolError,
    StreamBusyError,
)
from ..core._core import StreamCore
from ..core._options import StreamOptions
from ..glue import _connect_scope as connect_scope
from ..glue._stream_base import NOT_YET, StreamBase

#: ``receive()``'s default size, as in anyio.
DEFAULT_RECEIVE_SIZE = 65536


class IOStream(StreamBase, anyio.abc.ByteStream):
    """A duplex stream carried over a Socket.IO connection (socket.io-stream's ``IOStream``).

    Create one with :func:`create_stream` and send it inside ``StreamSocket.emit`` arguments
    or an ack; streams the peer sends arrive as ``IOStream`` objects in handler arguments.
    In object mode it carries JSON values instead of bytes (``send``/``receive`` take and
    return one value each).
    """

    def __init__(self, core: StreamCore) -> None:
        self._core = core
        core.listener = self._wake
        # Futures of the tasks waiting for a change (the reader, the writer, end()); woken all at once.
        self._waiters: list[asyncio.Future[None]] = []
        self._reader_busy = False
        self._writer_busy = False

    def use_digest(self, name: str = "sha256") -> None:
        """Send a digest (``sha256``, ``blake2b``, ``blake3``, or ``"auto"``: blake3 toward a
        peer that announced ``digest-blake3``, else sha256) of everything written with the end,
        to a sio_stream peer that announced ``digest`` (others get the plain protocol). The reader
        checks it before it reports the end; a mismatch raises :class:`IntegrityError` there
        and from this side's ``end()``. Call it before the first byte is sent (else
        :class:`LocalProtocolError`); the hashing runs on the event loop as chunks go out
        (:func:`send_file` hashes in its worker thread instead)."""
        self._owner.use_digest(self._core, name)

    # -- waiting -----------------------------------------------------------------------------
    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _wait(self) -> None:
        # One bare future per wait (the core's listener runs once per chunk on both sides): an
        # anyio.Event costs an asyncio.Event, its deque and a future each time. One future per
        # waiter, not a shared one: cancelling a task cancels the future it awaits.
        if self._owner.connecting and connect_scope.inside_connect_handler():
            raise LocalProtocolError(
                f"stream {self._core.id} cannot wait for the peer inside the connect handler "
                f"(what was written is still sent): {connect_scope.ADVICE}"
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _register_waiter(self) -> asyncio.Future[None]:
        """A future resolved at the stream's next change (for a task waiting on several)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def _forget_waiter(self, waiter: asyncio.Future[None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        waiter.cancel()

    # -- reading -----------------------------------------------------------------------------
    async def receive(self, max_bytes: int = DEFAULT_RECEIVE_SIZE) -> Any:
        """Return the next data: up to ``max_bytes`` bytes (object mode: the next object).

        Waits until data arrives. Raises :class:`StreamEnded` (``anyio.EndOfStream``) once the
        peer ended and everything was read; :class:`StreamBrokenError` if the peer or the
        connection failed the stream; :class:`StreamClosedError` after a local destroy;
        :class:`StreamBusyError` if another task is already receiving. Cancellation leaves the
        stream usable and loses no data.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._reader_busy:
            raise StreamBusyError("another task is already reading this stream")
        self._reader_busy = True
        try:
            while (data := self._receive_nowait(max_bytes)) is NOT_YET:
                await self._wait()
            return data
        finally:
            self._reader_busy = False

    def __aiter__(self) -> IOStream:
        return self

    async def __anext__(self) -> Any:
        """Whole chunks as they arrived (objects in object mode)."""
        try:
            return await self.receive(sys.maxsize)
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def read(self, size: int = -1) -> Any:
        """Read up to ``size`` bytes, or to the end when ``size`` is negative.

        Returns ``b""`` at end of stream (object mode: the next object, ``None`` at the end).
        Raises as :meth:`receive` does.
        """
        if self.object_mode:
            try:
                return await self.receive()
            except anyio.EndOfStream:
                return None
        if size is None or size < 0:
            parts = [chunk async for chunk in self]
            return b"".join(parts)
        if size == 0:
            return b""
        try:
            return await self.receive(size)
        except anyio.EndOfStream:
            return b""

    # -- writing -----------------------------------------------------------------------------
    async def send(self, item: Any) -> None:
        """Queue ``item`` (bytes-like, ``str`` as UTF-8, or one JSON value in object mode).

        Returns once the stream's buffer is at or below its high-water mark: the data may
        still be on its way. Raises :class:`StreamClosedError` after ``end()``/``destroy()``,
        :class:`StreamBrokenError` if the stream failed, :class:`InvalidChunkError` for data
        of the wrong kind (nothing is queued then). If cancelled while waiting, the item
        stays queued and will be sent.
        """
        self._write_nowait(item)
        if not self._above_high_water():
            return
        self._writer_busy = True
        try:
            while self._above_high_water():
                self._raise_error()
                await self._wait()
            self._raise_error()
        finally:
            self._writer_busy = False

    async def write(self, data: Any) -> None:
        """Alias of :meth:`send` (the name socket.io-stream users know)."""
        await self.send(data)

    async def end(self, data: Any = None) -> None:
        """End the writable side (after writing ``data`` if given).

        Returns once ``$stream-end`` is sent and the peer has acknowledged every chunk.
        Raises :class:`StreamBrokenError` if the stream fails first. Calling it again is a no-op.
        ``data`` is queued whatever the high-water mark (the caller holds it already, and the
        wait for the peer's acknowledgements follows), so if the wait is cancelled or refused
        the stream still ends after ``data``.
        """
        core = self._core
        if data is not None:
            self._write_nowait(data)
        self._raise_error()
        self._owner.end(core)
        while not core.write_finished:
            self._raise_error()
            await self._wait()

    async def send_eof(self) -> None:
        """anyio's name for :meth:`end`."""
        await self.end()

    async def aclose(self) -> None:
        """Close the stream: end the writable side gracefully, and if the peer is still
        writing to us (we were reading and it has not ended), destroy the stream so that
        its writer stops. No-op on a failed or finished stream.
        """
        if self._close_needs_end():
            await self.end()

    # -- anyio typed attributes: none beyond the defaults ---------------------------------------


def create_stream(
    *,
    high_water_mark: int | None = None,
    encoding: str | None = None,
    object_mode: bool | None = None,
    allow_half_open: bool | None = None,
    decode_strings: bool | None = None,
) -> IOStream:
    """A new stream to send in an event or an ack (``ss.createStream()`` in JavaScript).

    Options left as ``None`` are not sent and take their defaults: ``high_water_mark`` 256 KiB
    (16 objects in object mode), byte mode, ``allow_half_open`` false (ending one direction
    ends the other). ``encoding`` is one of Node's (``utf8``, ``base64``, ``hex``, ... in any
    case). Raises :class:`InvalidOptionError` for bad values.
    """
    options = StreamOptions.create(
        high_water_mark=high_water_mark,
        encoding=encoding,
        object_mode=object_mode,
        allow_half_open=allow_half_open,
        decode_strings=decode_strings,
    )
    return IOStream(StreamCore(options))
