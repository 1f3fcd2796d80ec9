"""The disk side of a transfer on asyncio, overlapped with the stream: a file is read ahead of
the stream (:class:`_ReadAhead`) and written behind it (:class:`_WriteBehind`) in worker threads,
never more than a few chunks ahead, so a transfer never blocks the event loop and runs at the
slower of the two sides, not their sum. A ``hasher`` is updated in the same worker thread.

One worker job at a time per file, in the event loop's default executor: reads and writes stay
in order, no thread is held between jobs (a stalled peer holds no thread), and a job moves
several chunks so a thread hop is paid per few chunks, not per chunk. Files are opened, closed
and hashed (:func:`prefix_digest`) in worker threads too.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, BinaryIO, cast

import anyio

from ._common import DEFAULT_CHUNK_SIZE, ResumeError, SupportsUpdate

#: Chunks read ahead of the stream at most. A worker job reads up to half of it, so the disk
#: works on one half while the stream drains the other: 2 MiB per transfer at the default
#: chunk size (512 KiB), beside the stream's own window.
PIPELINE_DEPTH = 4


#: Bytes queued behind a stream before its reader waits for the disk (at most twice that is
#: held: queued, plus what a running job writes). Disks outrun the stream, so the queue stays
#: short; the bound is what a killed receiver loses on top of the stream's credit window (data
#: a resume fetches again): 1 MiB measured no slower than 2 MiB.
WRITE_BEHIND_LIMIT = 2 * DEFAULT_CHUNK_SIZE


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
