"""Files and pipes over streams: :func:`send_file`, :func:`receive_file` and :func:`pipe`.

Disk and network overlap: a file is read ahead of the stream and written behind it, in worker
threads, never more than a few chunks ahead (:class:`_ReadAhead`, :class:`_WriteBehind`), so a
transfer never blocks the event loop and runs at the slower of the two sides, not their sum.
A ``hasher`` is updated in the same worker thread, off the event loop.

Failure and cancellation have one rule: every :class:`~sio_stream.IOStream` taking part is
destroyed (so the peer's reads and writes fail at once with the reason), then the exception
propagates unchanged. A cancelled transfer may have moved some, all or none of the data.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import aiofiles.os
import anyio
import anyio.abc

from ._errors import IntegrityError, InvalidChunkError, StreamError
from ._stream import IOStream

#: Bytes read from a file at a time: one wire chunk at the default ``max_chunk`` (256 KiB), so
#: each read fills exactly one ``$stream-write`` without a copy.
DEFAULT_CHUNK_SIZE = 256 * 1024

#: Chunks read ahead of the stream at most. A worker job reads up to half of it, so the disk
#: works on one half while the stream drains the other: about 2 MiB per transfer at the
#: default chunk size, beside the stream's own window.
PIPELINE_DEPTH = 8
#: Bytes queued behind a stream before its reader waits for the disk (at most twice that is
#: held: queued, plus what a running job writes). Disks outrun the stream, so the queue stays
#: short; the bound is what a killed receiver loses on top of the stream's credit window (data
#: a resume fetches again): 1 MiB measured no slower than 2 MiB.
WRITE_BEHIND_LIMIT = 4 * DEFAULT_CHUNK_SIZE

#: ``progress(done, total)``: bytes moved so far and the total when known (else ``None``).
#: Called once at the start and after every chunk, so it should be cheap; throttle drawing.
Progress = Callable[[int, "int | None"], object]

_CANCELLED_MESSAGE = "transfer cancelled"


class SupportsUpdate(Protocol):
    """A ``hashlib`` object (or anything with ``update(bytes)``)."""

    def update(self, data: bytes, /) -> None: ...


class _Tee:
    """Several hashers fed in one pass (the stream's digest and the caller's ``hasher``)."""

    def __init__(self, *hashers: SupportsUpdate | None) -> None:
        self._hashers = [h for h in hashers if h is not None]

    def update(self, data: bytes, /) -> None:
        for hasher in self._hashers:
            hasher.update(data)


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
            self._hasher = hashlib.new(name)
        self._hasher.update(data)

    def hexdigest(self) -> str | None:
        if self._hasher is None:
            name = self._core.digest_name
            return None if name is None else hashlib.new(name).hexdigest()
        return str(self._hasher.hexdigest())


class TransferTooLarge(StreamError, ValueError):
    """More bytes arrived than ``max_bytes`` (or than the announced ``size``) allowed.

    The stream was destroyed with this message, so the sender's writes fail with it too.
    """


class TransferIncomplete(StreamError):
    """The stream ended cleanly before the announced ``size`` was reached."""


class ResumeError(StreamError, ValueError):
    """A transfer cannot continue from where it stopped: the offset is beyond what is stored
    (or beyond the file), or the stored prefix is not a prefix of the file any more. Nothing
    stored was changed; start over instead (the CLI's ``--restart``)."""


async def prefix_digest(path: str | os.PathLike[str], length: int, name: str = "sha256") -> str:
    """The hex digest of the first ``length`` bytes of the file at ``path``, hashed in a worker
    thread: what two sides compare before a transfer continues from ``length``. Raises
    :class:`ResumeError` if the file is shorter, ``OSError`` if it cannot be read."""
    return str((await anyio.to_thread.run_sync(prefix_hasher, path, length, name)).hexdigest())


def prefix_hasher(path: str | os.PathLike[str], length: int, name: str = "sha256") -> Any:
    """A ``hashlib`` hasher fed the first ``length`` bytes of the file at ``path`` (blocking: call
    it in a worker thread); update it with the rest of a resumed transfer to get the whole file's
    digest. Raises as :func:`prefix_digest`."""
    hasher = hashlib.new(name)
    with open(path, "rb") as file:
        left = length
        while left:
            data = file.read(min(left, 1024 * 1024))
            if not data:
                raise ResumeError(f"the file holds fewer than {length} bytes")
            hasher.update(data)
            left -= len(data)
    return hasher


# -- the disk side of a transfer, overlapped with the stream -------------------------------------
# One worker job at a time per file, in the event loop's default executor: reads and writes stay
# in order, no thread is held between jobs (a stalled peer holds no thread), and a job moves
# several chunks so a thread hop is paid per few chunks, not per chunk.
def _job_error(job: asyncio.Future[Any]) -> BaseException | None:
    # Nothing awaits a job's future, so nothing cancels it but a closing loop.
    return anyio.get_cancelled_exc_class()() if job.cancelled() else job.exception()


class _WorkerJobs:
    """One job at a time in the loop's executor, and the one task that waits for a change."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._error: BaseException | None = None
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class _ReadAhead(_WorkerJobs):
    """Reads ``read(chunk_size)`` in worker threads, at most ``depth`` chunks ahead of :meth:`next`."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        chunk_size: int,
        hasher: SupportsUpdate | None = None,
        depth: int = PIPELINE_DEPTH,
    ) -> None:
        super().__init__()
        self._read = read
        self._chunk_size = chunk_size
        self._hasher = hasher
        self._depth = depth
        self._batch = max(depth // 2, 1)
        self._ready: deque[bytes] = deque()
        self._job: asyncio.Future[list[bytes]] | None = None
        self._eof = False

    def _read_batch(self, count: int) -> list[bytes]:  # in a worker thread
        chunks = []
        for _ in range(count):
            data = self._read(self._chunk_size)
            if not data:
                chunks.append(b"")
                break
            if self._hasher is not None:
                self._hasher.update(data)
            chunks.append(data)
        return chunks

    def _start(self) -> None:
        room = self._depth - len(self._ready)
        if self._job is None and not (self._eof or self._closed or self._error) and room >= self._batch:
            self._job = self._loop.run_in_executor(None, self._read_batch, self._batch)
            self._job.add_done_callback(self._done)

    def _done(self, job: asyncio.Future[list[bytes]]) -> None:
        self._job = None
        error = _job_error(job)
        if error is not None:
            self._error = error
        else:
            for data in job.result():
                if data:
                    self._ready.append(data)
                else:
                    self._eof = True
        self._wake()
        self._start()

    async def next(self) -> bytes | None:
        """The next chunk, ``None`` at the end; raises what ``read`` raised, once."""
        while not self._ready:
            if self._error is not None:
                error, self._error = self._error, None
                self._closed = True
                raise error
            if self._eof:
                return None
            self._start()
            await self._wait()
        data = self._ready.popleft()
        self._start()
        return data

    async def aclose(self) -> None:
        """Start no more reads; wait (even when cancelled) for the one running, drop the rest."""
        self._closed = True
        self._ready.clear()
        with anyio.CancelScope(shield=True):
            while self._job is not None:
                await self._wait()


class _WriteBehind(_WorkerJobs):
    """Writes chunks with ``write`` in worker threads; :meth:`put` waits while ``limit`` bytes
    are queued, so at most twice that is held (queued, plus those a running job writes)."""

    def __init__(
        self,
        write: Callable[[bytes], object],
        hasher: SupportsUpdate | None = None,
        limit: int = WRITE_BEHIND_LIMIT,
    ) -> None:
        super().__init__()
        self._write = write
        self._hasher = hasher
        self._limit = limit
        self._queued: list[bytes] = []
        self._queued_size = 0
        self._job: asyncio.Future[None] | None = None

    def _write_batch(self, chunks: list[bytes]) -> None:  # in a worker thread
        for data in chunks:
            if self._hasher is not None:
                self._hasher.update(data)
            self._write(data)

    def _start(self) -> None:
        if self._job is None and self._queued and not (self._closed or self._error):
            chunks, self._queued, self._queued_size = self._queued, [], 0
            self._job = self._loop.run_in_executor(None, self._write_batch, chunks)
            self._job.add_done_callback(self._done)

    def _done(self, job: asyncio.Future[None]) -> None:
        self._job = None
        error = _job_error(job)
        if error is not None:
            self._error = error
            self._queued.clear()
        self._wake()
        self._start()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._closed = True
            raise error

    async def put(self, data: bytes) -> None:
        """Queue ``data``; raises what an earlier ``write`` raised, once."""
        self._raise_error()
        if self._closed:
            raise anyio.ClosedResourceError
        self._queued.append(data)
        self._queued_size += len(data)
        self._start()
        while self._queued_size >= self._limit:
            await self._wait()
            self._raise_error()

    async def drain(self) -> None:
        """Wait until every queued chunk is written; raises what a ``write`` raised."""
        while self._job is not None or self._queued:
            self._raise_error()
            await self._wait()
        self._raise_error()

    async def aclose(self) -> None:
        """Write nothing more; wait (even when cancelled) for the running job, drop the rest."""
        self._closed = True
        self._queued.clear()
        with anyio.CancelScope(shield=True):
            while self._job is not None:
                await self._wait()


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


class Tally:
    """A transfer's byte count, checked against its limits and reported to ``progress`` (the
    same for the async and the sync file helpers)."""

    def __init__(
        self, progress: Progress | None, total: int | None = None, max_bytes: int | None = None
    ) -> None:
        self.progress = progress
        self.total = total
        self.max_bytes = max_bytes
        self.done = 0
        if progress is not None:
            progress(0, total)

    def check(self, chunk: Any) -> int:
        """The size of ``chunk``; raises :class:`TransferTooLarge` if it would pass a limit."""
        size = _size_of(chunk)
        if self.max_bytes is not None and self.done + size > self.max_bytes:
            raise TransferTooLarge(f"transfer larger than the limit of {self.max_bytes} bytes")
        if self.total is not None and self.done + size > self.total:
            raise TransferTooLarge(f"transfer larger than the announced {self.total} bytes")
        return size

    def add(self, size: int) -> None:
        self.done += size
        if self.progress is not None:
            self.progress(self.done, self.total)


def check_complete(done: int, size: int | None) -> None:
    """Raise :class:`TransferIncomplete` if fewer bytes than the announced ``size`` came."""
    if size is not None and done != size:
        raise TransferIncomplete(f"stream ended after {done} of the announced {size} bytes")


def check_size(stream: Any, size: int | None, max_bytes: int | None) -> None:
    """Refuse an announced ``size`` above ``max_bytes`` before reading: the sender stops now
    instead of after ``max_bytes`` of data."""
    if size is not None and max_bytes is not None and size > max_bytes:
        too_large = TransferTooLarge(
            f"announced size of {size} bytes is above the limit of {max_bytes} bytes"
        )
        stream.destroy(too_large)
        raise too_large


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


def _check_byte_stream(function: str, stream: Any, kinds: tuple[type, ...], wrong_mode: str) -> None:
    """Refuse what ``function`` cannot use, in its own name (not ``pipe()``'s, nor a bare TypeError
    from deep inside): a non-stream first argument, or an object-mode stream (destroyed, so its
    peer stops at once)."""
    if not isinstance(stream, kinds):
        raise TypeError(f"{function}() takes an IOStream as its first argument, not {type(stream).__name__}")
    if getattr(stream, "object_mode", False):
        error = InvalidChunkError(f"{function}() {wrong_mode}: this stream is in object mode")
        cast(Any, stream).destroy(error)
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


@asynccontextmanager
async def _open(path: str | os.PathLike[str], mode: str) -> AsyncIterator[BinaryIO]:
    """A sync binary file, opened and closed in a worker thread (the pipelines read and write it)."""

    def open_binary() -> BinaryIO:
        return cast(BinaryIO, open(path, mode))

    file = await anyio.to_thread.run_sync(open_binary)
    try:
        yield file
    finally:
        # Close even when cancelled: an unshielded await would be cancelled again at once.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(file.close)


# -- pieces both file APIs (asyncio and sync) use -------------------------------------------------
def take_digest(stream: Any, digest: str | None) -> Any:
    """Make ``stream`` send the ``digest`` of its bytes with its end, hashed by the caller (the
    returned hashlib object, whose hex digest goes to ``set_digest`` before the end); ``None``
    when there is none to send: none asked, or the stream already wrote or chose one."""
    core = stream._core
    if digest is None or core.chunks_sent or core.pending_size or core.digest_name is not None:
        return None
    stream._owner.use_digest(core, digest, external=True)
    return hashlib.new(digest)


def check_offset(offset: int, size: int) -> None:
    """Refuse a resume ``offset`` outside a file of ``size`` bytes (:class:`ResumeError`)."""
    if offset < 0 or offset > size:
        raise ResumeError(f"resume offset {offset} is beyond the file's {size} bytes")


def open_partial(partial: Path, offset: int) -> BinaryIO:
    """The partial file a resumed transfer appends to: never truncated (created if missing),
    and refused (:class:`ResumeError`, the file untouched) unless it holds exactly ``offset``
    bytes; an empty one left by an attempt that stored nothing resumes at 0."""
    file = cast(BinaryIO, open(partial, "ab"))  # noqa: SIM115 (returned open)
    try:
        stored = os.fstat(file.fileno()).st_size
        if stored != offset:
            raise ResumeError(
                f"resume offset {offset} does not match the {stored} bytes stored in {partial.name}"
            )
    except BaseException:
        file.close()
        raise
    return file


def failed_integrity(exc: BaseException, stream: Any) -> bool:
    """Whether what ``stream`` delivered was not what its writer sent: a partial file then
    keeps only the prefix checked before."""
    return isinstance(exc, IntegrityError) or isinstance(stream.error, IntegrityError)


async def send_file(
    stream: IOStream,
    path: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    hasher: SupportsUpdate | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    digest: str | None = "sha256",
    offset: int = 0,
) -> int:
    """Write the file at ``path`` into ``stream`` and end it; return the bytes sent.

    ``offset`` resumes a transfer: only the bytes from there on are sent (``progress`` then
    counts from 0 to ``size - offset``; the digest covers what is sent). An offset beyond the
    file raises :class:`ResumeError` (the stream destroyed). Check first that the receiver's
    prefix is this file's (:func:`prefix_digest` on both sides).

    ``digest`` (``"sha256"``, ``"blake2b"``, or ``None`` for none): toward a sio_stream peer
    that announced the ``digest`` feature, the end of the stream carries this digest of the
    bytes, hashed in the read-ahead worker thread; the receiver checks it before it reports the
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
    _check_byte_stream("send_file", stream, (IOStream,), "reads bytes from a file")
    own = take_digest(stream, digest)
    try:
        async with _open(path, "rb") as file:
            size = (await aiofiles.os.stat(file.fileno())).st_size
            check_offset(offset, size)
            if offset:
                await anyio.to_thread.run_sync(file.seek, offset)
                size -= offset
            async with _reading(file, chunk_size, _Tee(hasher, own)) as read:
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
        file = await anyio.to_thread.run_sync(open_partial, partial, offset)
    except BaseException as exc:
        _destroy_streams(exc, stream)
        raise
    try:
        try:
            async with _writing(file, _Tee(hasher, received), keep=True) as write:
                read = _reader(stream, DEFAULT_CHUNK_SIZE)
                done = await _copy(read, write, progress=progress, total=size, max_bytes=max_bytes)
            check_complete(done, size)
            if received is not None:
                stream._owner.verified(stream._core, received.hexdigest())
        except StreamError as exc:
            if failed_integrity(exc, stream):
                # What this stream wrote is not what was sent: keep only the checked prefix.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(file.truncate, offset)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(file.close)
        await aiofiles.os.replace(partial, destination)
    except BaseException as exc:
        _destroy_streams(exc, stream)
        raise
    return done


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
    _check_byte_stream("receive_file", stream, (anyio.abc.ByteReceiveStream,), "writes bytes to a file")
    check_size(stream, size, max_bytes)
    destination = Path(path)
    if partial is not None:
        return await _receive_resumed(
            stream, destination, Path(partial), offset, max_bytes, size, progress, hasher, verify
        )
    temporary = _temporary_name(destination)
    created = False
    received = _external_digest(stream) if verify else None
    try:
        async with _open(temporary, "xb") as file:
            created = True
            async with _writing(file, _Tee(hasher, received)) as write:
                read = _reader(stream, DEFAULT_CHUNK_SIZE)
                done = await _copy(read, write, progress=progress, total=size, max_bytes=max_bytes)
        check_complete(done, size)
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


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Progress",
    "ResumeError",
    "SupportsUpdate",
    "TransferIncomplete",
    "TransferTooLarge",
    "pipe",
    "prefix_digest",
    "receive_file",
    "send_file",
]
