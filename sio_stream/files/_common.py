"""What the asyncio and the sync file helpers share: the chunk size, the progress callback's
shape, the errors of a transfer, its byte count and limits, the digest the caller hashes, and a
resumed transfer's offset checks and partial file. No I/O library here: :mod:`sio_stream.sync`
uses it without the asyncio pipelines.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from .._errors import IntegrityError, InvalidChunkError, StreamError

#: Bytes read from a file at a time: one wire chunk at the default ``max_chunk`` (512 KiB), so
#: each read fills exactly one ``$stream-write`` without a copy.
DEFAULT_CHUNK_SIZE = 512 * 1024


#: ``progress(done, total)``: bytes moved so far and the total when known (else ``None``).
#: Called once at the start and after every chunk, so it should be cheap; throttle drawing.
Progress = Callable[[int, "int | None"], object]


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


def _size_of(chunk: Any) -> int:
    # Object-mode streams carry JSON values: count them one each.
    return len(chunk) if isinstance(chunk, (bytes, bytearray, memoryview)) else 1


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


class _SentDigest:
    """The writing side's digest, hashed by the caller: the algorithm is settled by the core at
    the first update (``"auto"``: blake3 toward a peer that announced it), which comes before
    the chunk it hashes reaches the stream, whose first write then announces that name."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._hasher: Any = None

    def update(self, data: bytes, /) -> None:
        if self._hasher is None:
            self._hasher = self._stream._owner.choose_digest(self._stream._core)
        self._hasher.update(data)

    def hexdigest(self) -> str:
        if self._hasher is None:  # nothing was sent
            self._hasher = self._stream._owner.choose_digest(self._stream._core)
        return str(self._hasher.hexdigest())


def take_digest(stream: Any, digest: str | None) -> _SentDigest | None:
    """Make ``stream`` send the ``digest`` of its bytes with its end, hashed by the caller (the
    returned object, whose hex digest goes to ``set_digest`` before the end); ``None`` when
    there is none to send: none asked, or the stream already wrote or chose one. ``digest``
    is a name of ``DIGESTS`` or ``"auto"``; raises ``LocalProtocolError`` for another."""
    core = stream._core
    if digest is None or core.chunks_sent or core.pending_size or core.digest_name is not None:
        return None
    stream._owner.use_digest(core, digest, external=True)
    return _SentDigest(stream)


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


def _temporary_name(destination: Path) -> Path:
    # Hidden, unique, and in the destination's directory so the final rename is atomic.
    return destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.part")
