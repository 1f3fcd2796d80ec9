"""One stream's protocol state (:class:`StreamCore`: both directions, their buffers, credits and
digest), and the small values the core hands the glue (:class:`Outgoing`, :class:`PendingReply`)."""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .._errors import StreamError
from ._budget import Holding
from ._chunks import ByteQueue
from ._config import INITIAL_BYTE_CREDIT, INITIAL_OBJECT_CREDIT
from ._options import StreamOptions
from ._state import ReadInput, ReadState, WriteInput, WriteState, next_read_state, next_write_state
from ._tuning import Tuner
from ._window import ReadWindow, WriteCredit


class Owner(Protocol):
    """The connection core a stream is bound to (a :class:`~sio_stream.core._core.ProtocolCore`).

    A stream only holds its owner and compares it (``stream.owner is core``): typed by this
    Protocol, one stream's state does not name the core built on it (no import cycle)."""


class PendingReply:
    """An ack the core answers later: a ``$stream-end`` whose digest the application checks
    (the file helpers hash in a worker thread). The glue waits for :attr:`value`."""

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.callbacks: list[Callable[[Any], None]] = []

    def resolve(self, value: Any) -> None:
        if self.done:
            return
        self.done = True
        self.value = value
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback(value)

    def on_done(self, callback: Callable[[Any], None]) -> None:
        if self.done:
            callback(self.value)
        else:
            self.callbacks.append(callback)


@dataclass(eq=False)
class Outgoing:
    """One event to emit. ``on_ack`` (when set) receives the peer's ack arguments."""

    event: str
    args: tuple[Any, ...]
    on_ack: Callable[..., None] | None = None


class StreamCore:
    """The protocol state of one stream: both directions, their buffers and credits."""

    def __init__(self, options: StreamOptions, stream_id: str | None = None) -> None:
        self.id = stream_id if stream_id is not None else str(uuid.uuid4())
        self.options = options
        self.object_mode = options.object_mode
        self.read_state = ReadState.IDLE
        self.write_state = WriteState.OPEN
        self.error: StreamError | None = None
        self.owner: Owner | None = None
        self.announced = False
        self.wants_read = False  # the application asked for data before the stream was bound
        self.window: ReadWindow | None = None
        self.credit = WriteCredit(limit=1)
        self.inbox: ByteQueue | deque[Any] = deque() if self.object_mode else ByteQueue()
        self.pending: ByteQueue | deque[Any] = deque() if self.object_mode else ByteQueue()
        self.scheduled = False  # a write token for this stream sits in the outbox
        self.end_ack_pending = False
        self.owed_reads = 0  # consumed chunks not yet granted back (batched toward sio_stream peers)
        self.chunks_sent = 0
        self.remote_ended = False  # the peer's $stream-end arrived
        self.idle_sweeps = 0  # idle sweeps (see ProtocolCore.sweep_idle) since the last activity
        self.activity = 0  # counts reads, writes, ends and peer events: "is it moving?"
        self.listener: Callable[[], None] = _nothing
        self.settled = False  # removed from its connection's registry
        self.peer_seen = False  # the peer sent an event for this stream (or created it)
        #: This stream's bytes on its connection's budget (set when bound to a connection).
        self.holding: Holding | None = None
        self.inbox_sizes: deque[int] = deque()  # object mode: the counted size of each object
        #: Bytes reserved per credit where the writer promises no size (grows, see
        #: INITIAL_BYTE_CREDIT); and credits the window wants granted but the budget has no room for.
        self.credit_size = INITIAL_OBJECT_CREDIT if self.object_mode else INITIAL_BYTE_CREDIT
        self.owed_credit = 0
        self.probing = self.object_mode  # no object arrived yet (see PROBE_CREDITS)
        self.parked = 0  # credits held back while probing
        self.read_size = 0  # writer: the size of the peer's last read (read-size feature)
        self.grant_size = 0  # reader: the size of our last read toward a read-size writer
        #: Credits the stream took of the reader's initial offer (negotiated initial-credit).
        self.initial_credit = 0
        #: Reader: the bytes the writer said were left after its last chunk, once it ended the
        #: stream (negotiated ``final-size``, see _turns.py); ``None``: not known.
        self.peer_left: int | None = None
        self.tuner = Tuner()  # reader: the round trip and growth of its window
        # -- negotiated ``digest`` (byte streams only) --
        #: Writer: the algorithm the application asked for; reader: the one the peer announced.
        self.digest_name: str | None = None
        #: The application hashes (and, reading, compares) itself, off the event loop: the core
        #: neither hashes nor compares, and a reader's end waits for :meth:`ProtocolCore.verified`.
        self.digest_external = False
        #: The application asked this side to send a digest (:meth:`ProtocolCore.use_digest`).
        #: One direction per stream carries a digest: a writer's stream ignores incoming ones.
        self.digest_writer = False
        self.digest_active = False  # writer: the first write announced the digest
        self.hasher: Any = None  # the core's own hasher (when not external)
        #: Writer: the digest sent (or to send, when external); reader: the one the peer sent.
        self.digest_value: str | None = None
        self.bytes_received = 0
        #: Writer: bytes the application wrote, less any it dropped unsent (a primed stream's
        #: end says it, see _early.py).
        self.written_bytes = 0
        self.end_reply: PendingReply | None = None
        # -- negotiated ``resume`` (see sio_stream.core._resume) --
        self.sent_units = 0  # writer: bytes (objects) put on the wire
        self.acked_units = 0  # writer: bytes (objects) the reader said it received
        #: Writer: what was sent and not yet acknowledged, oldest first (bytes, or lists of objects).
        self.replay: deque[Any] = deque()
        self.replay_bytes = 0  # writer: bytes of ``replay`` counted in the budget
        self.replay_left = 0  # writer: bytes at the head of ``pending`` already hashed (replayed)
        self.received_units = 0  # reader: bytes (objects) accepted
        self.told_received = 0  # reader: ``received_units`` as its last read told the writer

    # -- derived state -------------------------------------------------------------------
    @property
    def pending_size(self) -> int:
        """Buffered outgoing data: bytes, or objects in object mode."""
        return self.pending.size if isinstance(self.pending, ByteQueue) else len(self.pending)

    @property
    def readable_ended(self) -> bool:
        """True once no more data will arrive and the inbox is empty."""
        return self.read_state is ReadState.ENDED and not self.inbox

    @property
    def write_finished(self) -> bool:
        """True once ``$stream-end`` was queued and every chunk was acknowledged."""
        return self.write_state is WriteState.ENDED and self.credit.unacked == 0 and not self.end_ack_pending

    def touch(self) -> None:
        """Something happened on the stream (the idle sweep and call timeouts watch this)."""
        self.idle_sweeps = 0
        self.activity += 1

    def check_alive(self) -> None:
        """Raise the stream's error if it failed."""
        if self.error is not None:
            raise self.error

    # -- state moves (the only place states change) --------------------------------------
    def move_read(self, event: ReadInput) -> bool:
        new = next_read_state(self.read_state, event)
        if new is None:
            return False
        self.read_state = new
        return True

    def move_write(self, event: WriteInput) -> bool:
        new = next_write_state(self.write_state, event)
        if new is None:
            return False
        self.write_state = new
        return True


def _nothing() -> None:
    return None


def _held_size(value: Any) -> int:
    """The bytes a received object counts for: its compact JSON size, or for objects carrying
    binary attachments (not JSON) the sum of their strings and bytes, 8 per other item."""
    size = _json_size(value)
    if size is not None:
        return size
    if isinstance(value, (bytes, bytearray, str)):
        return len(value) + 2
    if isinstance(value, dict):
        return 2 + sum(_held_size(k) + _held_size(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return 2 + sum(_held_size(v) for v in value)
    return 8


def _json_size(value: Any) -> int | None:
    """Length of ``value`` as python-socketio encodes it (compact JSON, ASCII), or ``None`` if it
    is not plain JSON (bytes travel as binary attachments: such objects are never batched)."""
    try:
        return len(json.dumps(value, separators=(",", ":")))
    except (TypeError, ValueError):
        return None
