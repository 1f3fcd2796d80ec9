"""Files and pipes over streams: :func:`send_file`, :func:`receive_file` and :func:`pipe`.

File I/O goes through aiofiles (a worker thread per call) and sync file objects are read and
written in a worker thread too, so a transfer never blocks the event loop.

Failure and cancellation have one rule: every :class:`~sio_stream.IOStream` taking part is
destroyed (so the peer's reads and writes fail at once with the reason), then the exception
propagates unchanged. A cancelled transfer may have moved some, all or none of the data.
"""

from __future__ import annotations

import inspect
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import aiofiles
import aiofiles.os
import anyio
import anyio.abc

from ._errors import InvalidChunkError, StreamError
from ._stream import IOStream

#: Bytes read from a file at a time: one wire chunk at the default ``max_chunk`` (256 KiB),
#: so each read fills exactly one ``$stream-write`` and costs one worker-thread hop.
DEFAULT_CHUNK_SIZE = 256 * 1024

#: ``progress(done, total)``: bytes moved so far and the total when known (else ``None``).
#: Called once at the start and after every chunk, so it should be cheap; throttle drawing.
Progress = Callable[[int, "int | None"], object]

_CANCELLED_MESSAGE = "transfer cancelled"


class SupportsUpdate(Protocol):
    """A ``hashlib`` object (or anything with ``update(bytes)``)."""

    def update(self, data: bytes, /) -> None: ...


class TransferTooLarge(StreamError, ValueError):
    """More bytes arrived than ``max_bytes`` (or than the announced ``size``) allowed.

    The stream was destroyed with this message, so the sender's writes fail with it too.
    """


class TransferIncomplete(StreamError):
    """The stream ended cleanly before the announced ``size`` was reached."""


# -- adapters: one reader and one writer shape for every kind of source and destination ---------
_Reader = Callable[[], Awaitable[Any]]  # the next chunk, or None at the end
_Writer = Callable[[Any], Awaitable[object]]


def _is_async_method(obj: object, name: str) -> bool:
    return inspect.iscoroutinefunction(getattr(obj, name, None))


def _reader(source: Any, chunk_size: int) -> _Reader:
    if isinstance(source, anyio.abc.ByteReceiveStream):  # IOStream included

        async def receive() -> Any:
            try:
                return await source.receive(chunk_size)
            except anyio.EndOfStream:
                return None

        return receive
    if _is_async_method(source, "read"):  # aiofiles files and other async file-likes

        async def read_async() -> Any:
            return await source.read(chunk_size) or None

        return read_async
    if hasattr(source, "__aiter__"):
        iterator = aiter(source)

        async def next_item() -> Any:
            # Skip empty chunks: None, not b"", marks the end of an iterator.
            while True:
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    return None
                if item:
                    return item

        return next_item
    if callable(getattr(source, "read", None)):  # a sync binary file: read in a worker thread

        async def read_sync() -> Any:
            return await anyio.to_thread.run_sync(source.read, chunk_size) or None

        return read_sync
    raise TypeError(
        "pipe() reads from an IOStream, an anyio byte stream, an aiofiles or binary file, "
        f"or an async iterable of bytes; not {type(source).__name__}"
    )


def _writer(destination: Any) -> _Writer:
    if isinstance(destination, anyio.abc.ByteSendStream):  # IOStream included
        return destination.send
    if _is_async_method(destination, "write"):
        return destination.write  # type: ignore[no-any-return]
    if callable(getattr(destination, "write", None)):

        async def write_sync(data: Any) -> None:
            await anyio.to_thread.run_sync(destination.write, data)

        return write_sync
    raise TypeError(
        "pipe() writes to an IOStream, an anyio byte stream, or an aiofiles or binary file; "
        f"not {type(destination).__name__}"
    )


async def _finish(destination: Any) -> None:
    """End a stream destination; flush (never close) a file the caller opened."""
    if isinstance(destination, IOStream):
        await destination.end()
    elif isinstance(destination, anyio.abc.ByteStream):
        await destination.send_eof()
    elif isinstance(destination, anyio.abc.ByteSendStream):
        await destination.aclose()
    elif _is_async_method(destination, "flush"):
        await destination.flush()
    elif callable(getattr(destination, "flush", None)):
        await anyio.to_thread.run_sync(destination.flush)


def _size_of(chunk: Any) -> int:
    # Object-mode streams carry JSON values: count them one each.
    return len(chunk) if isinstance(chunk, (bytes, bytearray, memoryview)) else 1


def _destroy_streams(exc: BaseException, *ends: Any) -> None:
    reason: BaseException | str = (
        _CANCELLED_MESSAGE if isinstance(exc, anyio.get_cancelled_exc_class()) else exc
    )
    for end in ends:
        if isinstance(end, IOStream):
            end.destroy(reason)


async def _copy(
    source: Any,
    destination: Any,
    *,
    chunk_size: int,
    progress: Progress | None,
    total: int | None = None,
    max_bytes: int | None = None,
    hasher: SupportsUpdate | None = None,
) -> int:
    """Move every chunk from ``source`` to ``destination`` (not ending it); return the count."""
    read = _reader(source, chunk_size)
    write = _writer(destination)
    done = 0
    if progress is not None:
        progress(0, total)
    while (chunk := await read()) is not None:
        size = _size_of(chunk)
        if max_bytes is not None and done + size > max_bytes:
            raise TransferTooLarge(f"transfer larger than the limit of {max_bytes} bytes")
        if total is not None and done + size > total:
            raise TransferTooLarge(f"transfer larger than the announced {total} bytes")
        if hasher is not None:
            hasher.update(chunk)
        await write(chunk)
        done += size
        if progress is not None:
            progress(done, total)
    return done


def _check_byte_stream(function: str, stream: Any, kinds: tuple[type, ...], wrong_mode: str) -> None:
    """Refuse what ``function`` cannot use, in its own name (not ``pipe()``'s, nor a bare TypeError
    from deep inside): a non-stream first argument, or an object-mode stream (destroyed, so its
    peer stops at once)."""
    if not isinstance(stream, kinds):
        raise TypeError(f"{function}() takes an IOStream as its first argument, not {type(stream).__name__}")
    if isinstance(stream, IOStream) and stream.object_mode:
        error = InvalidChunkError(f"{function}() {wrong_mode}: this stream is in object mode")
        stream.destroy(error)
        raise error


# -- public API ------------------------------------------------------------------------------------
async def pipe(
    source: Any,
    destination: Any,
    *,
    end: bool = True,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> int:
    """Copy everything from ``source`` to ``destination``; return the bytes copied.

    ``source``: an :class:`IOStream`, an anyio byte receive stream, an aiofiles file, a sync
    binary file (read in a worker thread) or an async iterable of bytes. ``destination``: an
    :class:`IOStream`, an anyio byte send stream, an aiofiles file or a sync binary file.
    Two object-mode IOStreams pipe objects (``progress`` then counts objects).

    With ``end`` (the default, as Node's ``pipe``) the destination is ended when the source
    ends: an IOStream with ``end()`` (which waits for the peer's acknowledgement), an anyio
    stream with ``send_eof()`` or ``aclose()``; a file is flushed, never closed (its owner
    closes it).

    If either side fails, or the calling task is cancelled, both ends that are IOStreams are
    destroyed (the peers see the error message, or "transfer cancelled") and the exception
    propagates: typically :class:`~sio_stream.StreamBrokenError` from a failed stream,
    ``OSError`` from a file, or the cancellation.
    """
    try:
        done = await _copy(source, destination, chunk_size=chunk_size, progress=progress)
        if end:
            await _finish(destination)
    except BaseException as exc:
        _destroy_streams(exc, source, destination)
        raise
    return done


@asynccontextmanager
async def _open(path: str | os.PathLike[str], mode: str) -> AsyncIterator[Any]:
    file = await aiofiles.open(path, mode)
    try:
        yield file
    finally:
        # Close even when cancelled: an unshielded await would be cancelled again at once.
        with anyio.CancelScope(shield=True):
            await file.close()


async def send_file(
    stream: IOStream,
    path: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    hasher: SupportsUpdate | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> int:
    """Write the file at ``path`` into ``stream`` and end it; return the bytes sent.

    Returns once the peer has acknowledged every byte: its connection received them, which
    does not mean its application stored them. For an end-to-end confirmation, let the
    receiving handler answer (ack) after :func:`receive_file` returned, and wait for that
    answer before disconnecting (see ``examples/upload.py``). ``progress(done, size)`` sees the
    bytes handed to the stream; ``hasher`` (e.g. ``hashlib.sha256()``) is updated with them.
    On any failure (a missing file included: ``OSError``) or cancellation, ``stream`` is
    destroyed so the receiver fails at once too, and the exception propagates;
    :class:`~sio_stream.StreamBrokenError` means the receiver failed the stream (for
    example a :class:`TransferTooLarge` refusal: its message is the receiver's).
    ``TypeError`` if ``stream`` is not an IOStream; :class:`~sio_stream.InvalidChunkError`
    (the stream destroyed) if it is in object mode.
    """
    _check_byte_stream("send_file", stream, (IOStream,), "reads bytes from a file")
    try:
        async with _open(path, "rb") as file:
            size = (await aiofiles.os.stat(file.fileno())).st_size
            done = await _copy(
                file, stream, chunk_size=chunk_size, progress=progress, total=size, hasher=hasher
            )
        await stream.end()
    except BaseException as exc:
        _destroy_streams(exc, stream)
        raise
    return done


def _temporary_name(destination: Path) -> Path:
    # Hidden, unique, and in the destination's directory so the final rename is atomic.
    return destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.part")


async def receive_file(
    stream: IOStream,
    path: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    size: int | None = None,
    progress: Progress | None = None,
    hasher: SupportsUpdate | None = None,
) -> int:
    """Read ``stream`` to its end into a file at ``path``; return the bytes received.

    The data goes to a hidden temporary file in the same directory, renamed over ``path``
    only once the stream ended cleanly: on failure or cancellation no partial file is left
    (the file is not fsync'ed; the rename is atomic, not durable across a power cut).

    ``max_bytes`` caps the transfer: one byte more raises :class:`TransferTooLarge` and
    destroys the stream with its message (the sender's writes fail with it), and reading
    stops. ``size``, the size the sender announced, is the progress total; more bytes raise
    :class:`TransferTooLarge`, fewer :class:`TransferIncomplete`. ``hasher`` is updated with
    every byte. An announced ``size`` above ``max_bytes`` is refused before anything is read
    (:class:`TransferTooLarge`, the stream destroyed). Other failures:
    :class:`~sio_stream.StreamBrokenError` (the sender or the connection failed the stream),
    ``OSError`` (the file system), ``TypeError`` if ``stream`` is not a stream,
    :class:`~sio_stream.InvalidChunkError` (the stream destroyed) if it is in object mode.
    Cancellation destroys the stream ("transfer cancelled") and propagates.
    """
    _check_byte_stream("receive_file", stream, (anyio.abc.ByteReceiveStream,), "writes bytes to a file")
    if size is not None and max_bytes is not None and size > max_bytes:
        # Refused before reading: the sender stops now instead of after max_bytes of data.
        too_large = TransferTooLarge(
            f"announced size of {size} bytes is above the limit of {max_bytes} bytes"
        )
        _destroy_streams(too_large, stream)
        raise too_large
    destination = Path(path)
    temporary = _temporary_name(destination)
    created = False
    try:
        async with _open(temporary, "xb") as file:
            created = True
            done = await _copy(
                stream,
                file,
                chunk_size=DEFAULT_CHUNK_SIZE,
                progress=progress,
                total=size,
                max_bytes=max_bytes,
                hasher=hasher,
            )
        if size is not None and done != size:
            raise TransferIncomplete(f"stream ended after {done} of the announced {size} bytes")
        await aiofiles.os.replace(temporary, destination)
    except BaseException as exc:
        _destroy_streams(exc, stream)
        if created:
            with anyio.CancelScope(shield=True):
                with suppress(FileNotFoundError):
                    await aiofiles.os.remove(temporary)
        raise
    return done


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Progress",
    "SupportsUpdate",
    "TransferIncomplete",
    "TransferTooLarge",
    "pipe",
    "receive_file",
    "send_file",
]
