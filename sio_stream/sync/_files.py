"""Files and pipes for the sync API: :func:`send_file`, :func:`receive_file`, :func:`pipe`.

Options, limits, errors and the failure rule are those of :mod:`sio_stream.files` (the limit
checks and progress are its :class:`~sio_stream.files._common.Tally`): on any failure every sync
IOStream taking part is destroyed, so its peer fails at once, and the exception propagates.
The disk is read and written in the calling thread (a received file is written out to disk a few
MiB behind its writes: :mod:`sio_stream.files._writeout`). ``timeout`` bounds each wait on a stream
(seconds with no progress), not the whole transfer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, BinaryIO

from .._errors import StreamError
from ..files._common import (
    DEFAULT_CHUNK_SIZE,
    Progress,
    SupportsUpdate,
    Tally,
    _check_byte_stream,
    _Tee,
    _temporary_name,
    check_complete,
    check_offset,
    check_size,
    failed_integrity,
    open_partial,
    take_digest,
)
from ..files._writeout import WritingOut
from ._stream import LOCK, IOStream


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
    digest: str | None = "auto",
    offset: int = 0,
) -> int:
    """Write the file at ``path`` (from ``offset`` on) into ``stream`` and end it; return the
    bytes sent. ``digest`` and ``offset`` mean what they mean for the async
    :func:`sio_stream.send_file`: toward a sio_stream peer the end carries the digest of what
    was sent (hashed in the calling thread), and an offset beyond the file raises
    :class:`~sio_stream.ResumeError`."""
    _check_byte_stream("send_file", stream, (IOStream,), "reads bytes from a file")
    with LOCK:
        own = take_digest(stream, digest)
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            check_offset(offset, size)
            file.seek(offset)
            tally = Tally(progress, size - offset)
            write = lambda c: stream.write(c, timeout=timeout)  # noqa: E731
            done = _copy(_chunks(file, chunk_size, None), write, tally, _Tee(hasher, own))
        if own is not None:
            with LOCK:
                stream._owner.set_digest(stream._core, own.hexdigest())
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
    partial: str | os.PathLike[str] | None = None,
    offset: int = 0,
) -> int:
    """Read ``stream`` to its end into the file at ``path`` (renamed into place only when
    complete, and checked against the digest a sio_stream writer sent: the stream itself
    hashes what arrives); return the bytes received. ``partial`` and ``offset`` resume:
    the data is appended to ``partial``, which must hold exactly ``offset`` bytes, and kept
    there on failure (cut back to ``offset`` after an :class:`~sio_stream.IntegrityError`).
    See the async :func:`sio_stream.receive_file`."""
    _check_byte_stream("receive_file", stream, (IOStream,), "writes bytes to a file")
    check_size(stream, size, max_bytes)
    destination = Path(path)
    resuming = partial is not None
    target = Path(partial) if partial is not None else _temporary_name(destination)
    created = False
    try:
        with _open_target(target, resuming, offset) as file:
            created = True
            try:
                tally = Tally(progress, size, max_bytes)
                chunks = _chunks(stream, DEFAULT_CHUNK_SIZE, timeout)
                writing = WritingOut(file, file.write, offset if resuming else 0)
                done = _copy(chunks, writing.write, tally, hasher)
                check_complete(done, size)
            except StreamError as exc:
                if resuming and failed_integrity(exc, stream):
                    file.truncate(offset)  # keep only the prefix checked before
                raise
        os.replace(target, destination)
    except BaseException as exc:
        _destroy(exc, stream)
        if created and not resuming:
            with suppress(FileNotFoundError):
                os.remove(target)
        raise
    return done


def _open_target(target: Path, resuming: bool, offset: int) -> BinaryIO:
    """The file :func:`receive_file` writes: a new temporary file, or the partial file it
    appends to (see :func:`sio_stream.files._common.open_partial`)."""
    if resuming:
        return open_partial(target, offset)
    return open(target, "xb")


__all__ = ["pipe", "receive_file", "send_file"]
