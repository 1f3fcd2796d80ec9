"""Files over streams on asyncio: :func:`send_file` and :func:`receive_file`, resumed from an
offset and verified by the negotiated digest, with the disk overlapped with the network
(:mod:`~sio_stream.files._disk`) and the failure rule of :mod:`~sio_stream.files._pipe`. The
checks the sync API's file functions run too are named ``shared.*`` (:mod:`._common`).
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiofiles.os
import anyio
import anyio.abc

from .._errors import StreamError
from ..aio._stream import IOStream
from ..core._digest import new_hasher
from . import _common as shared
from ._common import DEFAULT_CHUNK_SIZE, Progress, SupportsUpdate
from ._disk import _open
from ._pipe import _copy, _destroy_streams, _reader, _reading, _writing
from ._reserve import Reserving
from ._writeout import WritingOut


class _ReceivedDigest:
    """The reading side's digest, hashed in the write-behind worker thread: its algorithm is the
    one the writer announced with its first chunk (known on the event loop before that chunk is
    handed to the worker), so the hasher is made at the first update."""

    def __init__(self, stream: IOStream) -> None:
        self._core = stream._core
        self._hasher: Any = None

    def update(self, data: bytes, /) -> None:
        if self._hasher is None:
            name = self._core.digest_name
            if name is None:
                return
            self._hasher = new_hasher(name)
        self._hasher.update(data)

    def hexdigest(self) -> str | None:
        if self._hasher is None:
            name = self._core.digest_name
            return None if name is None else str(new_hasher(name).hexdigest())
        return str(self._hasher.hexdigest())


async def send_file(
    stream: IOStream,
    path: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    hasher: SupportsUpdate | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    digest: str | None = "auto",
    offset: int = 0,
) -> int:
    """Write the file at ``path`` into ``stream`` and end it; return the bytes sent.

    ``offset`` resumes a transfer: only the bytes from there on are sent (``progress`` then
    counts from 0 to ``size - offset``; the digest covers what is sent). An offset beyond the
    file raises :class:`ResumeError` (the stream destroyed). Check first that the receiver's
    prefix is this file's (:func:`prefix_digest` on both sides).

    ``digest`` (``"auto"``, ``"sha256"``, ``"blake2b"``, ``"blake3"``, or ``None`` for none):
    toward a sio_stream peer that announced the ``digest`` feature, the end of the stream
    carries this digest of the bytes, hashed in the read-ahead worker thread (``"auto"``:
    blake3 when both sides have the ``blake3`` package, about a quarter of sha256's CPU, else
    sha256; ``"blake3"`` toward a peer without it fails); the receiver checks it before it reports the
    end, and a mismatch raises :class:`~sio_stream.IntegrityError` here too (``stream.digest``
    holds the value sent). A stream that already sent data, or a JavaScript peer, gets none.

    Returns once the peer has acknowledged every byte: its connection received them, which
    does not mean its application stored them. For an end-to-end confirmation, let the
    receiving handler answer (ack) after :func:`receive_file` returned, and wait for that
    answer before disconnecting (see ``examples/upload.py``). ``progress(done, size)`` sees the
    bytes handed to the stream; ``hasher`` (e.g. ``hashlib.sha256()``) is updated with them, in
    the worker thread that reads the file ahead of the stream (after a failure it may have seen
    up to ``PIPELINE_DEPTH`` chunks more than were sent).
    On any failure (a missing file included: ``OSError``) or cancellation, ``stream`` is
    destroyed so the receiver fails at once too, and the exception propagates;
    :class:`~sio_stream.StreamBrokenError` means the receiver failed the stream (for
    example a :class:`TransferTooLarge` refusal: its message is the receiver's).
    ``TypeError`` if ``stream`` is not an IOStream; :class:`~sio_stream.InvalidChunkError`
    (the stream destroyed) if it is in object mode.
    """
    shared._check_byte_stream("send_file", stream, (IOStream,), "reads bytes from a file")
    own = shared.take_digest(stream, digest)
    try:
        async with _open(path, "rb") as file:
            size = (await aiofiles.os.stat(file.fileno())).st_size
            shared.check_offset(offset, size)
            if offset:
                await anyio.to_thread.run_sync(file.seek, offset)
                size -= offset
            async with _reading(file, chunk_size, shared._Tee(hasher, own)) as read:
                done = await _copy(read, stream.send, progress=progress, total=size)
        if own is not None:
            stream._owner.set_digest(stream._core, own.hexdigest())
        await stream.end()
    except BaseException as exc:
        _destroy_streams(exc, stream)
        raise
    return done


async def _receive_resumed(
    stream: Any,
    destination: Path,
    partial: Path,
    offset: int,
    max_bytes: int | None,
    size: int | None,
    progress: Progress | None,
    hasher: SupportsUpdate | None,
    verify: bool,
) -> int:
    """:func:`receive_file` appending to ``partial`` from ``offset``."""
    received = _external_digest(stream) if verify else None
    try:
        file = await anyio.to_thread.run_sync(shared.open_partial, partial, offset)
    except BaseException as exc:
        _destroy_streams(exc, stream)
        raise
    reserving = Reserving(file, offset)
    try:
        try:
            writing = WritingOut(file, reserving.write, offset)
            async with _writing(writing, shared._Tee(hasher, received), keep=True) as write:
                read = _reader(stream, DEFAULT_CHUNK_SIZE)
                done = await _copy(read, write, progress=progress, total=size, max_bytes=max_bytes)
            shared.check_complete(done, size)
            if received is not None:
                stream._owner.verified(stream._core, received.hexdigest())
        except StreamError as exc:
            if shared.failed_integrity(exc, stream):
                # What this stream wrote is not what was sent: keep only the checked prefix.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(file.truncate, offset)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_trim_and_close, reserving, file)
        await aiofiles.os.replace(partial, destination)
    except BaseException as exc:
        _destroy_streams(exc, stream)
        raise
    return done


def _trim_and_close(reserving: Reserving, file: Any) -> None:
    """Close a partial file, first giving back the space reserved beyond its bytes."""
    try:
        reserving.trim()
    finally:
        file.close()


def _external_digest(stream: Any) -> _ReceivedDigest | None:
    """Take over the digest check of ``stream`` (hashing in the write-behind thread), unless the
    stream's core already hashes (data was read from it before)."""
    if not isinstance(stream, IOStream):
        return None
    core = stream._core
    if core.bytes_received or core.hasher is not None:
        return None
    core.digest_external = True
    return _ReceivedDigest(stream)


async def receive_file(
    stream: IOStream,
    path: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    size: int | None = None,
    progress: Progress | None = None,
    hasher: SupportsUpdate | None = None,
    verify: bool = True,
    partial: str | os.PathLike[str] | None = None,
    offset: int = 0,
) -> int:
    """Read ``stream`` to its end into a file at ``path``; return the bytes received.

    Resuming: with ``partial`` (a path; give it a name that says so, e.g. ``.NAME.part``) the
    data is appended to that file, which must hold exactly ``offset`` bytes already (created
    when ``offset`` is 0): the stream carries the rest (``size`` counts the rest too). Another
    length raises :class:`ResumeError` before anything is read (the stream destroyed, the file
    untouched). On failure or cancellation the partial file stays, holding what was written
    (a later call continues from its size), except after :class:`~sio_stream.IntegrityError`,
    which cuts it back to ``offset`` bytes: the prefix checked before, nothing unverified.
    On success it is renamed to ``path``.

    With ``verify`` (the default), a digest the writer sent with the end of the stream
    (negotiated ``digest``; :func:`send_file` sends one) is compared with the bytes written, hashed in
    the write-behind worker thread, before the file gets its name; a mismatch raises
    :class:`~sio_stream.IntegrityError` here and at the writer, and leaves no file.

    The data goes to a hidden temporary file in the same directory, renamed over ``path``
    only once the stream ended cleanly: on failure or cancellation no partial file is left
    (the file is not fsync'ed; the rename is atomic, not durable across a power cut).

    ``max_bytes`` caps the transfer: one byte more raises :class:`TransferTooLarge` and
    destroys the stream with its message (the sender's writes fail with it), and reading
    stops. ``size``, the size the sender announced, is the progress total; more bytes raise
    :class:`TransferTooLarge`, fewer :class:`TransferIncomplete`. ``hasher`` is updated with
    every byte, in the worker thread that writes the file behind the stream. ``progress`` counts
    the bytes taken from the stream (the file lags them by at most ``2 * WRITE_BEHIND_LIMIT``
    bytes); the function returns only once every byte is written and the file renamed. An
    announced ``size`` above ``max_bytes`` is refused before anything is read
    (:class:`TransferTooLarge`, the stream destroyed). Other failures:
    :class:`~sio_stream.StreamBrokenError` (the sender or the connection failed the stream),
    ``OSError`` (the file system), ``TypeError`` if ``stream`` is not a stream,
    :class:`~sio_stream.InvalidChunkError` (the stream destroyed) if it is in object mode.
    Cancellation destroys the stream ("transfer cancelled") and propagates.
    """
    shared._check_byte_stream(
        "receive_file", stream, (anyio.abc.ByteReceiveStream,), "writes bytes to a file"
    )
    shared.check_size(stream, size, max_bytes)
    destination = Path(path)
    if partial is not None:
        return await _receive_resumed(
            stream, destination, Path(partial), offset, max_bytes, size, progress, hasher, verify
        )
    temporary = shared._temporary_name(destination)
    created = False
    received = _external_digest(stream) if verify else None
    try:
        async with _open(temporary, "xb") as file:
            created = True
            reserving = Reserving(file)
            async with _writing(WritingOut(file, reserving.write), shared._Tee(hasher, received)) as write:
                read = _reader(stream, DEFAULT_CHUNK_SIZE)
                done = await _copy(read, write, progress=progress, total=size, max_bytes=max_bytes)
            await anyio.to_thread.run_sync(reserving.trim)
        shared.check_complete(done, size)
        if received is not None:
            assert isinstance(stream, IOStream)
            stream._owner.verified(stream._core, received.hexdigest())
        await aiofiles.os.replace(temporary, destination)
    except BaseException as exc:
        _destroy_streams(exc, stream)
        if created:
            with anyio.CancelScope(shield=True):
                with suppress(FileNotFoundError):
                    await aiofiles.os.remove(temporary)
        raise
    return done
