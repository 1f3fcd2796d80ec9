"""What every stream object shows, whichever driver waits for it (asyncio or sync)."""

from __future__ import annotations

from typing import Any, cast

from .._errors import StreamBusyError, StreamClosedError, StreamEnded, StreamError, peer_message
from ..core._chunks import as_bytes, as_object
from ..core._core import ProtocolCore, StreamCore
from ..core._state import ReadState, WriteState

# Streams not yet sent anywhere are driven by a core with no connection: it buffers writes
# and remembers a wish to read, and nothing it queues is ever sent.
DETACHED = ProtocolCore()

#: What the ``*_nowait`` steps return when the driver must wait for the stream's next change.
NOT_YET: Any = object()


class StreamBase:
    """Identity, state and errors of a stream over its :class:`StreamCore`."""

    _core: StreamCore
    #: The peer sent this stream (it arrived in an event or an ack): emitting it to another
    #: peer relays what it carries (see sio_stream.glue._fanout).
    received: bool = False
    #: Who uses streams, for the busy errors: a task (asyncio) or a thread (the sync API).
    _user = "task"
    _writer_busy = False

    @property
    def id(self) -> str:
        """The wire id: a UUID-4 string chosen by the stream's creator."""
        return self._core.id

    @property
    def options(self) -> dict[str, Any]:
        """The wire options as JavaScript sends them (camelCase keys); ``{}`` when none were set."""
        return self._core.options.to_wire() or {}

    @property
    def object_mode(self) -> bool:
        return self._core.object_mode

    @property
    def error(self) -> StreamError | None:
        """The error the stream failed with, or ``None``."""
        return self._core.error

    @property
    def digest(self) -> str | None:
        """The hex digest of the bytes (negotiated ``digest``): the one this writer sent with its
        end, or, reading, the one the peer sent and this side checked; ``None`` when no digest
        travelled (a JavaScript peer, none requested, or not yet at the end)."""
        core = self._core
        if core.error is not None:
            return None
        return core.digest_value

    @property
    def digest_name(self) -> str | None:
        """The algorithm of :attr:`digest` (``"sha256"``, ``"blake2b"`` or ``"blake3"``), or
        ``None`` when it is ``None``."""
        return None if self.digest is None else self._core.digest_name

    @property
    def closed(self) -> bool:
        """True once the stream has failed, or both directions have finished."""
        core = self._core
        return core.error is not None or (core.readable_ended and core.write_finished)

    def __repr__(self) -> str:
        core = self._core
        return (
            f"<{type(self).__name__} {core.id} read={core.read_state.value} write={core.write_state.value}"
            f"{' error=' + repr(core.error.message) if core.error else ''}>"
        )

    @property
    def _owner(self) -> ProtocolCore:
        # Only ProtocolCore binds a stream; StreamCore types its owner by a Protocol of its own.
        return cast(ProtocolCore, self._core.owner or DETACHED)

    def _raise_error(self) -> None:
        error = self._core.error
        if error is not None:
            fresh = type(error)(error.message, remote=error.remote)
            fresh.peer_text = error.peer_text  # passed on, it must not tell the peer more
            raise fresh from error.__cause__ or error

    def destroy(self, exc: BaseException | str | None = None) -> None:
        """Fail the stream here and at the peer.

        The peer receives the text ``exc`` gives (a string, a :class:`StreamError`'s message,
        an exception's text), except for an ``OSError`` about a file, whose description alone
        is sent (see :func:`~sio_stream._errors.peer_message`: its text names local paths);
        the local error keeps the full text.

        Pending and buffered data is dropped. Later I/O raises :class:`StreamClosedError`,
        chained to ``exc``. No-op on a stream that already failed.
        """
        core = self._core
        if core.error is not None:
            return
        message = str(exc) if exc is not None and str(exc) else "stream destroyed"
        error = StreamClosedError(message)
        if isinstance(exc, BaseException):
            error.__cause__ = exc
            error.peer_text = peer_message(exc) or "stream destroyed"
        self._owner.fail(core, error)

    def _receive_nowait(self, max_bytes: int) -> Any:
        """Up to ``max_bytes`` of what arrived (object mode: the next object), the same for
        every driver; raises the stream's error, or :class:`StreamEnded` once everything was
        read. With nothing here yet, asks the peer for more and returns :data:`NOT_YET`."""
        core = self._core
        if core.inbox:
            return self._owner.take(core, max_bytes)
        self._raise_error()
        if core.read_state is ReadState.ENDED:
            raise StreamEnded()
        self._owner.start_reading(core)
        return NOT_YET

    def _write_nowait(self, item: Any) -> None:
        """Queue ``item`` whatever the high-water mark, the same for every driver: raises the
        stream's error, :class:`InvalidChunkError` for data of the wrong kind and
        :class:`StreamBusyError` while a writer waits (nothing is queued then)."""
        core = self._core
        data = as_object(item) if core.object_mode else as_bytes(item)
        if self._writer_busy:
            raise StreamBusyError(f"another {self._user} is already writing this stream")
        self._raise_error()
        self._owner.write(core, data)

    def _above_high_water(self) -> bool:
        """Whether a writer must wait before it returns (the buffer is above the mark)."""
        core = self._core
        return core.pending_size > core.options.effective_high_water_mark

    def _close_needs_end(self) -> bool:
        """Closing, the same for every driver; True when what is left is to ``end()`` the
        writable side (the driver ends it, waiting its own way).

        A failed stream needs nothing. One never sent (the emit failed, or an exception left a
        ``with`` block) could never finish, and one whose peer is still writing to us would keep
        its writer going: both are destroyed here, so the peer stops.
        """
        core = self._core
        if core.error is not None:
            return False
        if core.owner is None:
            self.destroy("stream closed before it was sent")
            return False
        if core.read_state is ReadState.READING:
            self.destroy("stream closed by the reader")
            return False
        return core.write_state in (WriteState.OPEN, WriteState.ENDING, WriteState.ENDED)
