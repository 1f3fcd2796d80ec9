"""Files and pipes for the sync API: :func:`send_file`, :func:`receive_file`, :func:`pipe`.

Options, limits, errors and the failure rule are those of :mod:`sio_stream._files` (the limit
checks and progress are its :class:`~sio_stream._files.Tally`): on any failure every sync
IOStream taking part is destroyed, so its peer fails at once, and the exception propagates.
The disk is read and written in the calling thread. ``timeout`` bounds each wait on a stream
(seconds with no progress), not the whole transfer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

from .._files import (
    DEFAULT_CHUNK_SIZE,
    Progress,
    SupportsUpdate,
    Tally,
    _check_byte_stream,
    _temporary_name,
    check_complete,
    check_size,
)
from ._stream import IOStream


def _chunks(source: Any, chunk_size: int, timeout: float | None) -> Iterator[Any]:
    if isinstance(source, IOStream) and source.object_mode:
        yield from source
    elif isinstance(source, IOStream):
        while chunk := source.read(chunk_size, timeout=timeout):
            yield chunk
    elif callable(getattr(source, "read", None)):
        while chunk := source.read(chunk_size):
            yield chunk
    else:
        yield from source  # an iterable of bytes


def _writer(destination: Any, timeout: float | None) -> Callable[[Any], Any]:
    if isinstance(destination, IOStream):
        return lambda chunk: destination.write(chunk, timeout=timeout)
    if callable(getattr(destination, "write", None)):
        return lambda chunk: destination.write(chunk)
    raise TypeError(f"pipe() cannot write to {type(destination).__name__}")


def _destroy(exc: BaseException, *ends: Any) -> None:
    for end in ends:
        if isinstance(end, IOStream):
            end.destroy(exc)


def _copy(chunks: Iterator[Any], write: Callable[[Any], Any], tally: Tally, hasher: Any = None) -> int:
    for chunk in chunks:
        size = tally.check(chunk)
        if hasher is not None:
            hasher.update(chunk)
        write(chunk)
        tally.add(size)
    return tally.done


def pipe(
    source: Any,
    destination: Any,
    *,
    end: bool = True,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float | None = None,
) -> int:
    """Copy everything from ``source`` (a sync IOStream, a binary file, an iterable of bytes)
    to ``destination`` (a sync IOStream or a binary file); return the bytes copied (objects
    between object-mode streams). With ``end`` the destination stream is ended (a file is
    flushed, never closed)."""
    try:
        write = _writer(destination, timeout)
        done = _copy(_chunks(source, chunk_size, timeout), write, Tally(progress))
        if end and isinstance(destination, IOStream):
            destination.end(timeout=timeout)
        elif end and callable(getattr(destination, "flush", None)):
            destination.flush()
    except BaseException as exc:
        _destroy(exc, source, destination)
        raise
    return done


def send_file(
    stream: IOStream,
    path: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    hasher: SupportsUpdate | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float | None = None,
) -> int:
    """Write the file at ``path`` into ``stream`` and end it; return the bytes sent (see the
    async :func:`sio_stream.send_file`)."""
    _check_byte_stream("send_file", stream, (IOStream,), "reads bytes from a file")
    try:
        with open(path, "rb") as file:
            tally = Tally(progress, os.fstat(file.fileno()).st_size)
            done = _copy(
                _chunks(file, chunk_size, None), lambda c: stream.write(c, timeout=timeout), tally, hasher
            )
        stream.end(timeout=timeout)
    except BaseException as exc:
        _destroy(exc, stream)
        raise
    return done


def receive_file(
    stream: IOStream,
    path: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    size: int | None = None,
    progress: Progress | None = None,
    hasher: SupportsUpdate | None = None,
    timeout: float | None = None,
) -> int:
    """Read ``stream`` to its end into the file at ``path`` (renamed into place only when
    complete); return the bytes received (see the async :func:`sio_stream.receive_file`)."""
    _check_byte_stream("receive_file", stream, (IOStream,), "writes bytes to a file")
    check_size(stream, size, max_bytes)
    destination = Path(path)
    temporary = _temporary_name(destination)
    try:
        with open(temporary, "xb") as file:
            tally = Tally(progress, size, max_bytes)
            done = _copy(_chunks(stream, DEFAULT_CHUNK_SIZE, timeout), file.write, tally, hasher)
        check_complete(done, size)
        os.replace(temporary, destination)
    except BaseException as exc:
        _destroy(exc, stream)
        with suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    return done


__all__ = ["pipe", "receive_file", "send_file"]
