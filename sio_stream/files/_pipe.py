"""``pipe()``: one reader and one writer shape for every kind of source and destination
(IOStreams, anyio byte streams, aiofiles files, sync binary files through the disk pipelines,
async iterables), and the copy loop between them.

Failure and cancellation have one rule, here and in the file helpers: every
:class:`~sio_stream.IOStream` taking part is destroyed (so the peer's reads and writes fail at
once with the reason), then the exception propagates unchanged. A cancelled transfer may have
moved some, all or none of the data.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import anyio.abc

from ..aio._stream import IOStream
from ._common import DEFAULT_CHUNK_SIZE, Progress, SupportsUpdate, Tally
from ._disk import _ReadAhead, _WriteBehind

_CANCELLED_MESSAGE = "transfer cancelled"


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
    raise TypeError(
        "pipe() reads from an IOStream, an anyio byte stream, an aiofiles or binary file, "
        f"or an async iterable of bytes; not {type(source).__name__}"
    )


def _writer(destination: Any) -> _Writer:
    if isinstance(destination, anyio.abc.ByteSendStream):  # IOStream included
        return destination.send
    if _is_async_method(destination, "write"):
        return destination.write  # type: ignore[no-any-return]
    raise TypeError(
        "pipe() writes to an IOStream, an anyio byte stream, or an aiofiles or binary file; "
        f"not {type(destination).__name__}"
    )


def _is_sync_file(obj: Any, name: str) -> bool:
    """A sync binary file (or file-like): what the read-ahead and write-behind pipelines serve."""
    return (
        callable(getattr(obj, name, None))
        and not _is_async_method(obj, name)
        and not isinstance(obj, (anyio.abc.ByteReceiveStream, anyio.abc.ByteSendStream))
        and not hasattr(obj, "__aiter__")
    )


@asynccontextmanager
async def _reading(
    source: Any, chunk_size: int, hasher: SupportsUpdate | None = None
) -> AsyncIterator[_Reader]:
    """The reader of ``source``; a sync file is read ahead in worker threads (and hashed there)."""
    if not _is_sync_file(source, "read"):
        yield _reader(source, chunk_size)
        return
    ahead = _ReadAhead(source.read, chunk_size, hasher)
    try:
        yield ahead.next
    finally:
        await ahead.aclose()


@asynccontextmanager
async def _writing(
    destination: Any, hasher: SupportsUpdate | None = None, *, keep: bool = False
) -> AsyncIterator[_Writer]:
    """The writer of ``destination``; a sync file is written behind in worker threads (and hashed
    there). Leaving the block normally waits until everything is written. With ``keep`` (a
    partial file a later transfer resumes), leaving it on a failure or cancellation still writes
    the chunks already queued: they are the next bytes of the file, and a resume then need not
    fetch them again."""
    if not _is_sync_file(destination, "write"):
        yield _writer(destination)
        return
    behind = _WriteBehind(destination.write, hasher)
    try:
        yield behind.put
        await behind.drain()
    except BaseException:
        if keep:
            with anyio.CancelScope(shield=True), suppress(Exception):
                await behind.drain()
        raise
    finally:
        await behind.aclose()


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


def _destroy_streams(exc: BaseException, *ends: Any) -> None:
    reason: BaseException | str = (
        _CANCELLED_MESSAGE if isinstance(exc, anyio.get_cancelled_exc_class()) else exc
    )
    for end in ends:
        if isinstance(end, IOStream):
            end.destroy(reason)


async def _copy(
    read: _Reader,
    write: _Writer,
    *,
    progress: Progress | None,
    total: int | None = None,
    max_bytes: int | None = None,
) -> int:
    """Move every chunk from ``read`` to ``write`` (not ending it); return the count."""
    tally = Tally(progress, total, max_bytes)
    while (chunk := await read()) is not None:
        size = tally.check(chunk)
        await write(chunk)
        tally.add(size)
    return tally.done


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
    binary file (read ahead in worker threads, up to ``PIPELINE_DEPTH`` chunks) or an async
    iterable of bytes. ``destination``: an :class:`IOStream`, an anyio byte send stream, an
    aiofiles file or a sync binary file (written behind in worker threads, up to
    ``WRITE_BEHIND_LIMIT`` bytes queued).
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
        async with _reading(source, chunk_size) as read, _writing(destination) as write:
            done = await _copy(read, write, progress=progress)
        if end:
            await _finish(destination)
    except BaseException as exc:
        _destroy_streams(exc, source, destination)
        raise
    return done
