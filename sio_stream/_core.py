"""The protocol core: every stream of one connection, as a pure state machine.

``ProtocolCore`` takes the peer's events (``receive_*``) and the application's calls
(``write``, ``end``, ``take``, ...), keeps each stream's state and buffers, and queues what
must go on the wire in :attr:`ProtocolCore.outbox`, in the order it must be sent. It does no
I/O and imports no async library: the glue drains the outbox with :meth:`next_outgoing`, and
each stream's ``listener`` is called whenever something a waiting task may care about changed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _placeholder as placeholders
from . import _wire as wire
from ._budget import Budget, ConnectionStatistics, Holding, process_budget
from ._chunks import ByteQueue, decode_chunk, wire_chunk
from ._errors import (
    ConnectionAbortedStreamError,
    IntegrityError,
    InvalidChunkError,
    LocalProtocolError,
    RemoteProtocolError,
    StreamBrokenError,
    StreamClosedError,
    StreamError,
)
from ._options import StreamOptions
from ._state import ReadInput, ReadState, WriteInput, WriteState, next_read_state, next_write_state
from ._window import ReadWindow, WriteCredit

#: Largest chunk a writer puts in one ``$stream-write``: under python-socketio's default
#: 1,000,000-byte message limit with room for the packet header, and large enough that the
#: per-packet cost of python-socketio (~50 us) is small beside the bytes (see the README).
DEFAULT_MAX_CHUNK = 256 * 1024
#: Chunks a reader keeps in flight: 8 x 256 KiB = 2 MiB per stream, enough to keep ~40 MB/s
#: flowing over a 50 ms round trip while bounding what one stream can make a reader hold.
DEFAULT_WINDOW = 8
#: Objects an object-mode reader keeps in flight. One object is one chunk of credit, and small
#: JSON objects make a window of 8 a round-trip limit, not a memory limit: measured
#: (benchmarks/objects.py, loopback) 4,700 msg/s at 8, 7,600 at 32, 12,500 at 128, 13,800 at 512,
#: against 17,600 for plain python-socketio emits. 128 objects stay within the memory a byte
#: stream's 8 x 256 KiB window allows as long as objects average under 16 KiB.
DEFAULT_OBJECT_WINDOW = 128
#: Most objects a writer packs into one ``$stream-write`` toward a sio_stream peer (object-batch).
MAX_OBJECT_BATCH = 64

#: Streams one connection may hold: a peer cannot make us keep more state than this.
DEFAULT_MAX_STREAMS = 1000
#: Largest chunk a reader accepts. Our writers send 256 KiB; JavaScript writers send what their
#: application wrote, and python-socketio's 1,000,000-byte message limit stops most before this.
DEFAULT_MAX_READ_CHUNK = 1024 * 1024
#: Streams one event (or ack) may carry.
DEFAULT_MAX_PLACEHOLDERS = 100
#: The connection's memory budget: bytes received and not yet read plus bytes of credit granted
#: and not yet arrived, over all its streams (byte chunks and objects at their JSON size). 32
#: full stream windows of 2 MiB; eight connections filling it stay within the process budget
#: (512 MiB, see _budget.py). Measured (benchmarks/hostile.py): a hostile client flooding 20
#: object streams of 900 kB strings now holds the server at this, where it reached 2.2 GiB.
DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024
#: Credit outstanding over all streams of a connection (HTTP/2's connection window), in bytes.
#: Two full stream windows: one stream alone keeps its whole window in flight (single-stream
#: and 20 ms RTT throughput unchanged), while a stream opened beside bulk ones waits behind at
#: most this much data instead of every bulk window (measured in benchmarks/concurrency.py).
DEFAULT_CONNECTION_WINDOW = 4 * 1024 * 1024
#: Bytes reserved per credit before anything arrived, where the writer does not promise a chunk
#: size: a JavaScript writer's chunk is whatever its application wrote (64 KiB is Node's
#: default highWaterMark for files), an object's size is unknown (most are small). Each grows
#: to the largest chunk (or object) seen on the stream.
INITIAL_BYTE_CREDIT = 64 * 1024
INITIAL_OBJECT_CREDIT = 1024
#: Credits an object-mode stream gets before its first object arrived. An object's size is
#: bounded only by the message limit, so 128 credits of 1 KiB guessed let a peer send 128 huge
#: objects before the guess is corrected (refused for the budget, but the server still reads
#: and parses them all). 8, like a byte stream's window; the rest follows the first object.
PROBE_CREDITS = 8
#: Reads outstanding at once toward a writer that did not announce batch-read (JavaScript): it
#: remembers surplus reads as one pending read, so it never uses more than two (one being
#: written, one pending). More would be credit it forgets, holding memory reservations (and,
#: under a full connection window, starving the streams whose next read waits behind them).
#: The window still bounds what is buffered; the rest of it is granted as chunks arrive.
PLAIN_CREDITS = 2
#: A stream nobody reads or writes for this long fails: it holds a window, a registry entry and
#: perhaps a blocked writer. Ten minutes, so that only abandoned streams meet it.
DEFAULT_IDLE_TIMEOUT = 600.0

#: Features this implementation announces in its ``$stream-hello``.
FEATURE_BATCH_READ = "batch-read"  # one $stream-read may grant several chunks (count argument)
FEATURE_UNACKED_WRITE = "unacked-write"  # writes carry no ack; $stream-end carries one instead
#: An object-mode $stream-write may carry a list of several objects (encoding ``$objects``),
#: spending one credit per object: per-packet cost, not bytes, bounds small-object streams.
FEATURE_OBJECT_BATCH = "object-batch"
FEATURE_CLAIM = "claim"  # a read granting 0 chunks says "the stream you returned arrived"
#: A handler that failed answers the event's ack with ``{"$stream-error": message}`` (the
#: only value of the ack), so that the caller can tell a failure from an empty reply.
FEATURE_ERROR_REPLY = "error-reply"
#: A byte-mode writer never sends a chunk larger than the ``size`` of the reader's last
#: ``$stream-read``, so the reader can reserve exactly that much memory per credit.
FEATURE_READ_SIZE = "read-size"
#: A byte stream's writer hashes what it sends: its first ``$stream-write`` carries a fourth
#: argument ``{"digest": name}``, its ``$stream-end`` a second one ``{name: hexdigest}``; the
#: reader compares before it reports the end and answers the end's ack with
#: ``{"integrity": message}`` on a mismatch. Needs ``unacked-write`` (the end's ack).
FEATURE_DIGEST = "digest"
PROTOCOL_VERSION = 1
OUR_FEATURES = frozenset(
    {
        FEATURE_BATCH_READ,
        FEATURE_UNACKED_WRITE,
        FEATURE_OBJECT_BATCH,
        FEATURE_CLAIM,
        FEATURE_ERROR_REPLY,
        FEATURE_READ_SIZE,
        FEATURE_DIGEST,
    }
)
#: Digest algorithms a stream may use (hashlib names). sha256 is the default: on the project's
#: machine (x86-64 with SHA extensions) it hashed 2.0 GB/s against blake2b's 1.4 GB/s (256 KiB
#: updates); blake2b wins only on CPUs without them.
DIGESTS = frozenset({"sha256", "blake2b"})
#: Key of the one value of a ``$stream-end`` ack that reports a digest mismatch.
INTEGRITY_KEY = "integrity"


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
        self.owner: ProtocolCore | None = None
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
        self.end_reply: PendingReply | None = None

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


@dataclass
class CoreConfig:
    """Settings of one connection's core (see the README for how the defaults were chosen)."""

    window: int = DEFAULT_WINDOW
    #: The read window of object-mode streams (in objects).
    object_window: int = DEFAULT_OBJECT_WINDOW
    max_chunk: int = DEFAULT_MAX_CHUNK
    force_base64: bool = False
    #: Most credits a writer keeps from a peer: more reads than this are ignored.
    max_credit: int = 1024
    #: Limits on what a peer can make us hold. Exceeding one fails the offending stream (or
    #: every stream of the offending event) with a ``$stream-error``, never the connection.
    #: A reader's memory is bounded by ``window * max_read_chunk`` bytes per byte stream.
    max_streams: int = DEFAULT_MAX_STREAMS
    max_read_chunk: int = DEFAULT_MAX_READ_CHUNK
    max_placeholders: int = DEFAULT_MAX_PLACEHOLDERS
    #: The connection's memory budget (bytes held unread plus credit outstanding, byte chunks
    #: and objects alike): credit is granted only as far as it fits, and a chunk larger than its
    #: credit's reservation that does not fit fails its stream.
    max_buffered: int = DEFAULT_MAX_BUFFERED
    #: Most bytes of credit outstanding over the connection's streams (see DEFAULT_CONNECTION_WINDOW).
    connection_window: int = DEFAULT_CONNECTION_WINDOW
    #: The account shared by every connection of the process (``None``: the default one, see
    #: :func:`sio_stream.process_budget`).
    process_budget: Budget | None = None
    #: Seconds a registered stream may go without any activity before it fails (``None``:
    #: never). The core only counts sweeps; the glue runs them on a timer.
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    features: frozenset[str] = field(default=OUR_FEATURES)


class ProtocolCore:
    """All streams of one Socket.IO connection (one namespace of one socket), sans I/O."""

    def __init__(self, config: CoreConfig | None = None) -> None:
        self.config = config or CoreConfig()
        self.streams: dict[str, StreamCore] = {}
        self.outbox: deque[Outgoing | StreamCore] = deque()
        parent = self.config.process_budget or process_budget()
        #: This connection's account (its parent is the process account).
        self.budget = Budget(self.config.max_buffered, parent, window=self.config.connection_window)
        # A core dropped without connection_lost() (tests, a host that forgot) leaves its parent.
        weakref.finalize(self, self.budget.close)
        #: Streams owed credit the budget had no room for, oldest first (a set in FIFO order).
        self.starved: dict[StreamCore, None] = {}
        self.peer_features: frozenset[str] = frozenset()
        self.closed = False
        #: The peer has not been told the connection is open yet (a server's connect handler
        #: is running): the outbox fills, and the glue sends it once the connection opens.
        self.connecting = False
        #: Called when the outbox goes from empty to non-empty (the glue wakes its sender).
        self.on_outgoing: Callable[[], None] = _nothing

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not yet taken by the application, over all streams."""
        return self.budget.held

    def statistics(self, peer: object = None) -> ConnectionStatistics:
        """This connection's accounting (``peer`` labels it)."""
        return ConnectionStatistics(
            peer=peer,
            held=self.budget.held,
            reserved=self.budget.reserved,
            credits=sum(s.window.outstanding for s in self.streams.values() if s.window is not None),
            streams=len(self.streams),
            waiting_streams=len(self.starved),
            limit=self.budget.limit,
        )

    # -- negotiation -----------------------------------------------------------------------
    def hello(self) -> Outgoing:
        """Our ``$stream-hello``, to send first on a new connection."""
        info = {"version": PROTOCOL_VERSION, "features": sorted(self.config.features)}
        return Outgoing(wire.HELLO, (info,))

    def receive_hello(self, info: Any) -> None:
        """The peer is a sio_stream peer: use the features both sides announced."""
        if not isinstance(info, dict):
            return
        features = info.get("features")
        if isinstance(features, list):
            theirs = {f for f in features if isinstance(f, str)}
            self.peer_features = frozenset(theirs & self.config.features)

    # -- queueing --------------------------------------------------------------------------
    def _queue(self, item: Outgoing | StreamCore) -> None:
        was_empty = not self.outbox
        self.outbox.append(item)
        if was_empty:
            self.on_outgoing()

    def queue(self, item: Outgoing) -> None:
        """Queue an application event (already encoded) behind everything queued so far."""
        if self.closed:
            raise ConnectionAbortedStreamError(wire.CONNECTION_ABORTED)
        self._queue(item)

    def next_outgoing(self) -> Outgoing | None:
        """The next event to emit, or ``None`` when nothing is queued."""
        while self.outbox:
            item = self.outbox.popleft()
            if isinstance(item, Outgoing):
                return item
            item.scheduled = False
            out = self._next_write(item)
            if out is not None:
                return out
        return None

    # -- binding streams to this connection ----------------------------------------------
    def attach(self, stream: StreamCore) -> dict[str, Any]:
        """Register a local stream that is being sent; return its placeholder.

        Nothing is sent for it until :meth:`announce`, which the caller invokes once the
        event or ack carrying the placeholder is queued ahead of anything else for the stream.
        Raises :class:`LocalProtocolError` for a stream sent before or destroyed.
        """
        if stream.owner is not None or stream.settled:
            raise LocalProtocolError(f"stream {stream.id} was already sent")
        if stream.error is not None:
            raise LocalProtocolError(f"stream {stream.id} was destroyed: {stream.error}")
        if self.closed:
            raise ConnectionAbortedStreamError(wire.CONNECTION_ABORTED)
        if stream.id in self.streams:
            raise LocalProtocolError(f"a stream with id {stream.id} already exists")
        self._bind(stream)
        placeholder: dict[str, Any] = {wire.PLACEHOLDER_KEY: stream.id}
        options = stream.options.to_wire()
        if options is not None:
            placeholder["options"] = options
        return placeholder

    def _bind(self, stream: StreamCore) -> None:
        stream.owner = self
        stream.window = ReadWindow(self.config.object_window if stream.object_mode else self.config.window)
        stream.credit.limit = self.config.max_credit
        holding = Holding(self.budget)
        stream.holding = holding
        weakref.finalize(stream, holding.drop)
        self.streams[stream.id] = stream

    def announce(self, stream: StreamCore) -> None:
        """The peer now knows ``stream``: reads and writes for it may be queued."""
        if stream.announced or stream.owner is not self:
            return
        stream.announced = True
        if stream.wants_read:
            self._open_window(stream)
        # Ending or failing before the announcement left nothing on the wire yet.
        self._after_write_change(stream)
        if stream.error is not None and not stream.error.remote:
            self._queue(Outgoing(wire.ERROR, (stream.id, stream.error.wire_message)))

    def decode_placeholder(self, stream_id: Any, options: Any) -> StreamCore:
        """A stream the peer sent us. Never raises: a bad placeholder yields a failed stream."""
        try:
            opts = StreamOptions.from_wire(options)
        except StreamError as exc:
            opts = StreamOptions()
            failure: StreamError | None = RemoteProtocolError(f"bad stream options: {exc}")
        else:
            failure = None
        if not isinstance(stream_id, str) or not stream_id:
            return self.refuse_placeholder(stream_id, f"bad stream id: {stream_id!r}")
        if stream_id in self.streams:
            return self.refuse_placeholder(stream_id, f"Decoded stream already exists: {stream_id}")
        if len(self.streams) >= self.config.max_streams:
            return self.refuse_placeholder(
                stream_id, f"too many streams on this connection (limit {self.config.max_streams})"
            )
        if self.closed:
            return self.refuse_placeholder(stream_id, wire.CONNECTION_ABORTED)
        stream = StreamCore(opts, stream_id)
        self._bind(stream)
        stream.announced = True
        stream.peer_seen = True
        if failure is not None:
            self.fail(stream, failure)
        return stream

    def refuse_placeholder(self, stream_id: Any, message: str) -> StreamCore:
        """A failed, unregistered stream for a placeholder we will not accept; the peer gets a
        ``$stream-error`` for its id (when the id is a string and the connection is up)."""
        stream = StreamCore(StreamOptions(), stream_id if isinstance(stream_id, str) else None)
        stream.settled = True
        if self.closed:
            self._fail_unbound(stream, ConnectionAbortedStreamError(wire.CONNECTION_ABORTED))
            return stream
        self._fail_unbound(stream, RemoteProtocolError(message))
        if isinstance(stream_id, str) and stream_id:
            self._queue(Outgoing(wire.ERROR, (stream_id, message)))
        return stream

    @staticmethod
    def _fail_unbound(stream: StreamCore, error: StreamError) -> None:
        stream.error = error
        stream.move_read(ReadInput.FAIL)
        stream.move_write(WriteInput.FAIL)

    # -- the peer's events ---------------------------------------------------------------
    def receive_read(self, stream_id: Any, size: Any = None, count: Any = 1) -> None:
        """``$stream-read``: one credit (or ``count`` from a sio_stream peer). Unknown ids are ignored."""
        stream = self._lookup(stream_id)
        if stream is None or stream.write_state is WriteState.FAILED:
            return
        grant = 1
        if FEATURE_BATCH_READ in self.peer_features and count != 1:
            if count == 0 and not isinstance(count, bool) and FEATURE_CLAIM in self.peer_features:
                return  # a claim: the peer received the stream (see claim())
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                self.fail(stream, RemoteProtocolError(f"bad read count: {count!r}"))
                return
            grant = count
        if (
            FEATURE_READ_SIZE in self.peer_features
            and isinstance(size, int)
            and not isinstance(size, bool)
            and size > 0
        ):
            stream.read_size = size
        stream.credit.granted(grant)
        self._schedule(stream)

    def receive_write(
        self, stream_id: Any, chunk: Any, encoding: Any = None, marker: Any = None
    ) -> str | None:
        """``$stream-write``: returns the ack argument (``None`` for an empty ack). ``marker``
        (``{"digest": name}``, negotiated ``digest``) on the first write announces a digest."""
        stream = self._lookup(stream_id)
        if stream is None:
            return f"invalid stream id: {stream_id}"
        if stream.read_state is not ReadState.READING:
            if stream.read_state is ReadState.ENDED and stream.write_state is not WriteState.FAILED:
                message = f"write after end on stream {stream.id}"
            else:
                message = f"write without a read on stream {stream.id}"
            return self._refuse(stream, message)
        assert stream.window is not None
        if (
            encoding == wire.OBJECT_BATCH
            and stream.object_mode
            and FEATURE_OBJECT_BATCH in self.peer_features
        ):
            return self._receive_batch(stream, chunk)
        try:
            value = decode_chunk(chunk, encoding, stream.object_mode)
        except InvalidChunkError as exc:
            return self._refuse(stream, str(exc))
        if not stream.object_mode and len(value) > self.config.max_read_chunk:
            return self._refuse(
                stream,
                f"chunk of {len(value)} bytes exceeds the limit of {self.config.max_read_chunk} "
                f"bytes on stream {stream.id}",
            )
        size = _held_size(value) if stream.object_mode else len(value)
        refusal = self._arrive(stream, 1, size)
        if refusal is not None:
            return refusal
        if marker is not None and not stream.object_mode:
            problem = self._digest_announced(stream, marker)
            if problem is not None:
                return self._refuse(stream, problem)
        if stream.object_mode:
            assert isinstance(stream.inbox, deque)
            stream.inbox.append(value)
            stream.inbox_sizes.append(size)
        elif value:
            if stream.hasher is not None:
                stream.hasher.update(value)
            stream.bytes_received += len(value)
            assert isinstance(stream.inbox, ByteQueue)
            stream.inbox.append(value)
        else:
            # An empty chunk still used a credit: grant it back straight away.
            self._consumed(stream)
        stream.listener()
        return None

    def _receive_batch(self, stream: StreamCore, chunk: Any) -> str | None:
        """An ``object-batch`` write: a non-empty list of objects, one credit each."""
        assert stream.window is not None and isinstance(stream.inbox, deque)
        if not isinstance(chunk, list) or not chunk or any(value is None for value in chunk):
            return self._refuse(stream, f"bad object batch on stream {stream.id}")
        count = len(chunk)
        total = _held_size(chunk)  # one dumps of the list
        refusal = self._arrive(stream, count, total, per_item=-(-total // count))
        if refusal is not None:
            return refusal
        stream.inbox.extend(chunk)
        each, rest = divmod(total, count)
        stream.inbox_sizes.extend(each + (1 if i < rest else 0) for i in range(count))
        stream.listener()
        return None

    def _arrive(self, stream: StreamCore, credits: int, size: int, per_item: int | None = None) -> str | None:
        """Spend ``credits`` on a chunk of ``size`` bytes: its reservation becomes held bytes;
        any excess must fit in the free room of the connection and the process. Returns the
        refusal message (the stream then failed) or ``None``."""
        assert stream.window is not None and stream.holding is not None
        outstanding = stream.window.outstanding
        if not stream.window.received(credits):
            return self._refuse(stream, f"write beyond granted credit on stream {stream.id}")
        if not stream.holding.arrive(credits, outstanding, size):
            return self._refuse(
                stream,
                f"a chunk of {size} bytes on stream {stream.id} does not fit in the memory budget "
                f"(connection holds {self.budget.held} of {self.budget.limit} bytes)",
            )
        # Reserve what the writer actually sends from now on (never above the connection's limit).
        seen = per_item if per_item is not None else size
        if seen > stream.credit_size:
            cap = self.budget.limit if stream.object_mode else self.config.max_read_chunk
            stream.credit_size = min(seen, cap)
        stream.probing = False
        if stream.parked:
            parked, stream.parked = stream.parked, 0
            self._grant(stream, parked)  # what the cap allows now; the rest stays parked
        return None

    def _digest_announced(self, stream: StreamCore, marker: Any) -> str | None:
        if FEATURE_DIGEST not in self.peer_features:
            return None  # not negotiated: the argument means nothing
        name = marker.get("digest") if isinstance(marker, dict) else None
        if name not in DIGESTS:
            return f"unknown digest {name!r} on stream {stream.id}"
        if stream.digest_writer:
            return None  # this side sends the digest of its own writes
        if stream.digest_name is not None or stream.bytes_received:
            return f"digest announced late on stream {stream.id}"
        stream.digest_name = name
        if not stream.digest_external:
            stream.hasher = hashlib.new(name)
        return None

    def _check_end_digest(self, stream: StreamCore, digest: Any) -> Any:
        """A ``$stream-end`` carrying ``{name: hexdigest}``: ``None`` when it matches (or there
        is nothing to check), a :class:`PendingReply` when the application compares, else the
        integrity ack (the stream failed with :class:`IntegrityError`)."""
        if not isinstance(digest, dict) or len(digest) != 1 or stream.object_mode or stream.digest_writer:
            return None
        ((name, value),) = digest.items()
        if not isinstance(value, str) or name not in DIGESTS:
            return None
        if stream.digest_name is None:
            if stream.bytes_received:
                return None  # data came before the hello: nothing was hashed
            stream.digest_name = name  # an empty stream: nothing was written, nothing announced
            if not stream.digest_external:
                stream.hasher = hashlib.new(name)
        if name != stream.digest_name:
            return self._integrity_failure(stream, f"digest {name} announced as {stream.digest_name}")
        stream.digest_value = value
        if stream.digest_external:
            stream.end_reply = PendingReply()
            return stream.end_reply
        if stream.hasher.hexdigest() != value:
            return self._integrity_failure(stream, f"{name} mismatch on stream {stream.id}")
        return None

    def _integrity_failure(self, stream: StreamCore, message: str) -> dict[str, str]:
        # Not a $stream-error: the writer learns it from this ack, which its end() waits for.
        self.fail(stream, IntegrityError(message), notify=False)
        return {INTEGRITY_KEY: message}

    def verified(self, stream: StreamCore, actual: str | None) -> None:
        """External mode: the application's digest of what it read (``None``: it read nothing
        it could hash). Answers the end's ack; a mismatch fails ``stream`` with IntegrityError.
        Raises that error (or nothing when the peer sent no digest)."""
        expected = stream.digest_value
        reply, stream.end_reply = stream.end_reply, None
        if expected is None or actual == expected:
            if reply is not None:
                reply.resolve(None)
            return
        message = f"{stream.digest_name} mismatch on stream {stream.id}"
        error = IntegrityError(message)
        self.fail(stream, error, notify=False, keep_inbox=True)
        if reply is not None:
            reply.resolve({INTEGRITY_KEY: message})
        raise error

    def _refuse(self, stream: StreamCore, message: str) -> str:
        self.fail(stream, RemoteProtocolError(message))
        return message

    def receive_end(self, stream_id: Any, digest: Any = None) -> Any:
        """``$stream-end``: the peer's writing side finished. Unknown ids are ignored, as in
        JavaScript; the return value answers a sio_stream peer that asked for an ack (see
        :meth:`end_acked`): ``"invalid stream id: ..."`` when we do not know the stream,
        ``{"integrity": message}`` when ``digest`` (negotiated ``digest``) does not match, or a
        :class:`PendingReply` the glue waits for when the application compares digests."""
        stream = self._lookup(stream_id)
        if stream is None:
            return f"invalid stream id: {stream_id}"
        answer = None
        if digest is not None and FEATURE_DIGEST in self.peer_features and stream.error is None:
            answer = self._check_end_digest(stream, digest)
            if isinstance(answer, dict):
                return answer
        stream.remote_ended = True
        if not stream.move_read(ReadInput.REMOTE_END):
            self._maybe_settle(stream)
            return answer
        if not stream.options.allow_half_open:
            if stream.pending_size and stream.write_state in (WriteState.OPEN, WriteState.ENDING):
                # The peer will read nothing more: what we still hold can never be sent. Our
                # writer fails; what the peer sent us stays readable; the peer gets its end.
                lost = StreamBrokenError(
                    f"the peer ended stream {stream.id} before {stream.pending_size} buffered "
                    f"{'objects' if stream.object_mode else 'bytes'} could be sent"
                )
                stream.pending.clear()
                self.end(stream)
                self.fail(stream, lost, notify=False, keep_inbox=True)
                return answer
            self.end(stream)
        stream.listener()
        self._maybe_settle(stream)
        return answer

    def receive_error(self, stream_id: Any, message: Any) -> None:
        """``$stream-error``: the peer failed the stream; not echoed back."""
        stream = self._lookup(stream_id)
        if stream is None:
            return
        self.fail(stream, StreamBrokenError(str(message), remote=True))

    def connection_lost(self) -> None:
        """The connection dropped: every stream fails with "Connection aborted"."""
        self.closed = True
        self.outbox.clear()
        for stream in list(self.streams.values()):
            self.fail(stream, ConnectionAbortedStreamError(wire.CONNECTION_ABORTED), notify=False)
        self.streams.clear()
        self.starved.clear()
        self.budget.close()

    def fail_outgoing(self, item: Outgoing, message: str) -> None:
        """``item`` could not be sent on a live connection: fail the streams it concerns."""
        ids: list[Any] = []
        if item.event == wire.STREAM:
            placeholders.decode(list(item.args[1:]), lambda sid, _opts: ids.append(sid))
        elif item.event in (wire.WRITE, wire.END, wire.READ) and item.args:
            ids.append(item.args[0])
        for stream_id in ids:
            stream = self.streams.get(stream_id) if isinstance(stream_id, str) else None
            if stream is not None:
                self.fail(stream, LocalProtocolError(message))

    def _lookup(self, stream_id: Any) -> StreamCore | None:
        if not isinstance(stream_id, str):
            return None
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.peer_seen = True
            stream.touch()
        return stream

    def sweep_idle(self, limit: int, message: str) -> None:
        """Count one idle sweep for every stream; fail those idle for more than ``limit`` sweeps.

        Activity (any event from the peer for the stream, any read, write or end by the
        application, any chunk sent) resets the count. The glue calls this on a timer.
        """
        for stream in list(self.streams.values()):
            stream.idle_sweeps += 1
            if stream.idle_sweeps > limit:
                self.fail(stream, StreamBrokenError(message))

    def claim(self, stream: StreamCore) -> None:
        """Tell a sio_stream peer that a stream it returned through an ack arrived (a read
        granting nothing), so it does not give up on the stream after its claim timeout."""
        if FEATURE_CLAIM in self.peer_features and stream.owner is self and stream.error is None:
            self._queue(Outgoing(wire.READ, (stream.id, self.config.max_chunk, 0)))

    def detach(self, stream: StreamCore) -> None:
        """Undo :meth:`attach` for a stream whose event could not be queued (nothing was sent)."""
        if stream.owner is self and not stream.announced and self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
            stream.owner = None
            stream.window = None

    # -- the application's calls: reading -------------------------------------------------
    def start_reading(self, stream: StreamCore) -> None:
        """The application wants data: grant the window (once), when the peer knows the stream."""
        stream.wants_read = True
        stream.touch()
        if stream.owner is self and stream.announced:
            self._open_window(stream)

    def _open_window(self, stream: StreamCore) -> None:
        if not stream.move_read(ReadInput.OPEN) or stream.read_state is not ReadState.READING:
            return
        assert stream.window is not None
        grant = stream.window.open()
        self._grant(stream, grant)

    def _credit_bytes(self, stream: StreamCore) -> int:
        """Bytes to reserve for one credit of ``stream``: our read size when the writer promises
        to stay within it (read-size), else the largest chunk or object seen so far."""
        if not stream.object_mode and FEATURE_READ_SIZE in self.peer_features:
            size = self.config.max_chunk
        else:
            size = stream.credit_size
        # Never more than the budget itself could hold (tiny budgets): larger chunks are then
        # checked against the free room on arrival.
        return min(size, self.budget.ceiling)

    def _grant(self, stream: StreamCore, count: int) -> None:
        """The window wants ``count`` more credits granted: they join the stream's debt, and
        debts are paid in FIFO order as far as the budget allows (see :meth:`_pay`)."""
        cap = self._credit_cap(stream)
        if cap is not None:
            assert stream.window is not None
            allowed = max(0, cap - stream.window.outstanding - stream.owed_credit)
            stream.parked += max(0, count - allowed)
            count = min(count, allowed)
        if count <= 0:
            return
        stream.owed_credit += count
        self.starved.setdefault(stream)
        self._pay()

    def _credit_cap(self, stream: StreamCore) -> int | None:
        """Most credits ``stream`` may have outstanding now, beyond its window (``None``: no cap)."""
        if FEATURE_BATCH_READ not in self.peer_features:
            return PLAIN_CREDITS
        return PROBE_CREDITS if stream.probing else None

    def _pay(self) -> None:
        """Grant owed credit, oldest debt first, as far as the connection's budget (its limit,
        its window of outstanding credit) and the process budget allow. The first stream that
        cannot be paid in full keeps its place and blocks the ones behind it (so a stream opened
        beside bulk ones gets its turn), and the connection waits for room."""
        while self.starved:
            stream = next(iter(self.starved))
            if stream.read_state is not ReadState.READING or stream.owner is not self or stream.settled:
                stream.owed_credit = 0
                del self.starved[stream]
                continue
            assert stream.window is not None and stream.holding is not None
            size = max(1, self._credit_bytes(stream))
            count = min(stream.owed_credit, self.budget.grantable() // size)
            if count <= 0 or not stream.holding.reserve(count * size):
                self.budget.wait(self, self._pay)
                return
            stream.owed_credit -= count
            stream.window.grant(count)
            if FEATURE_BATCH_READ in self.peer_features:
                self._queue(Outgoing(wire.READ, (stream.id, self.config.max_chunk, count)))
            else:
                for _ in range(count):
                    self._queue(Outgoing(wire.READ, (stream.id, self.config.max_chunk)))
            if stream.owed_credit:
                self.budget.wait(self, self._pay)
                return
            del self.starved[stream]

    def _stop_credit(self, stream: StreamCore, *, held: bool) -> None:
        """``stream`` reads no more: its debt and reservation go (and its held bytes with
        ``held``); room freed wakes the streams waiting for it."""
        stream.owed_credit = 0
        stream.parked = 0
        self.starved.pop(stream, None)
        if stream.holding is not None and stream.owner is self:
            stream.holding.release(held=held)

    def take(self, stream: StreamCore, max_bytes: int) -> Any:
        """Remove data from the inbox: up to ``max_bytes`` of the head chunk, or one object.

        The caller checks that the inbox is not empty. A chunk used up grants one credit back.
        """
        stream.touch()
        if stream.object_mode:
            assert isinstance(stream.inbox, deque)
            value = stream.inbox.popleft()
            size = stream.inbox_sizes.popleft() if stream.inbox_sizes else 0
            done = True
        else:
            assert isinstance(stream.inbox, ByteQueue)
            value, done = stream.inbox.take_head(max_bytes)
            size = len(value)
        if stream.holding is not None and stream.owner is self:
            stream.holding.take(size)
        if done:
            self._consumed(stream)
        return value

    def _consumed(self, stream: StreamCore) -> None:
        assert stream.window is not None
        stream.window.consumed()
        if stream.read_state is not ReadState.READING or stream.owner is not self:
            return
        if FEATURE_BATCH_READ in self.peer_features:
            # Toward a sio_stream peer, grant in batches of a quarter window: one packet instead of
            # several, while at least three quarters of the window stay in flight. (Half-window
            # batches let the in-flight data drop to half a window before each refill: 0.85-0.93x
            # of raw python-socketio at 20 ms RTT, against 0.95-0.96x with quarter batches.)
            stream.owed_reads += 1
            if stream.owed_reads * 4 >= stream.window.size:
                self._grant(stream, stream.owed_reads)
                stream.owed_reads = 0
        else:
            self._grant(stream, 1)

    # -- the application's calls: writing -------------------------------------------------
    def write(self, stream: StreamCore, data: Any) -> None:
        """Buffer ``data`` (bytes or one object) for sending. The caller applies backpressure.

        Raises the stream's error if it failed, :class:`StreamClosedError` after ``end``.
        """
        stream.check_alive()
        stream.touch()
        if not stream.move_write(WriteInput.WRITE):
            raise StreamClosedError(f"write after end on stream {stream.id}")
        stream.pending.append(data)
        if stream.owner is self:
            self._schedule(stream)

    def end(self, stream: StreamCore) -> None:
        """End the writable side: ``$stream-end`` follows the buffered data."""
        stream.check_alive()
        stream.move_write(WriteInput.END)
        if stream.owner is self:
            self._after_write_change(stream)

    def _schedule(self, stream: StreamCore) -> None:
        if (
            not stream.scheduled
            and stream.announced
            and stream.credit.available > 0
            and stream.pending_size > 0
            and stream.write_state in (WriteState.OPEN, WriteState.ENDING)
        ):
            stream.scheduled = True
            self._queue(stream)

    def _next_write(self, stream: StreamCore) -> Outgoing | None:
        if stream.error is not None or stream.credit.available <= 0 or not stream.pending_size:
            return None
        spent = 1
        marker: dict[str, Any] | None = None
        if stream.object_mode:
            assert isinstance(stream.pending, deque)
            chunk: Any = None
            if (
                FEATURE_OBJECT_BATCH in self.peer_features
                and stream.credit.available > 1
                and len(stream.pending) > 1
            ):
                batch = self._object_batch(stream.pending, stream.credit.available)
                if batch is not None:
                    chunk, encoding, spent = batch, wire.OBJECT_BATCH, len(batch)
            if chunk is None:
                chunk, encoding = wire_chunk(stream.pending.popleft(), True, False)
        else:
            assert isinstance(stream.pending, ByteQueue)
            limit = self.config.max_chunk
            if stream.read_size and FEATURE_READ_SIZE in self.peer_features:
                limit = min(limit, stream.read_size)  # the reader reserved only this much
            data = stream.pending.take(limit)
            chunk, encoding = wire_chunk(data, False, self.config.force_base64)
            if stream.digest_name is not None:
                marker = self._digest_marker(stream, data)
        stream.credit.available -= spent
        stream.chunks_sent += 1
        stream.touch()
        on_ack: Callable[..., None] | None = None
        if FEATURE_UNACKED_WRITE not in self.peer_features:
            stream.credit.unacked += 1
            on_ack = _WriteAck(self, stream)
        self._schedule(stream)
        self._after_write_change(stream)
        stream.listener()
        if marker is not None:
            return Outgoing(wire.WRITE, (stream.id, chunk, encoding, marker), on_ack)
        return Outgoing(wire.WRITE, (stream.id, chunk, encoding), on_ack)

    def _digest_usable(self) -> bool:
        return FEATURE_DIGEST in self.peer_features and FEATURE_UNACKED_WRITE in self.peer_features

    def _digest_marker(self, stream: StreamCore, data: bytes) -> dict[str, Any] | None:
        """Hash ``data`` (unless the application does); the first write's digest announcement."""
        marker = None
        if stream.chunks_sent == 0 and self._digest_usable():
            stream.digest_active = True
            marker = {"digest": stream.digest_name}
        if stream.digest_active and not stream.digest_external:
            stream.hasher.update(data)
        return marker

    def use_digest(self, stream: StreamCore, name: str, *, external: bool = False) -> None:
        """Send a digest of ``stream``'s bytes with its end (when the peer announced ``digest``).

        With ``external`` the application hashes and hands the value to :meth:`set_digest`
        before ending. Raises :class:`LocalProtocolError` once data was sent, for object mode,
        or for an algorithm not in :data:`DIGESTS`.
        """
        if name not in DIGESTS:
            raise LocalProtocolError(f"unknown digest {name!r} (one of {', '.join(sorted(DIGESTS))})")
        if stream.object_mode:
            raise LocalProtocolError("digests are for byte streams, not object mode")
        if stream.chunks_sent or stream.write_state is not WriteState.OPEN:
            raise LocalProtocolError(f"stream {stream.id} already sent data: too late for a digest")
        stream.digest_name = name
        stream.digest_writer = True
        stream.digest_external = external
        stream.hasher = None if external else hashlib.new(name)

    def set_digest(self, stream: StreamCore, value: str) -> None:
        """The digest the application computed of everything it wrote (external mode)."""
        stream.digest_value = value

    def _end_args(self, stream: StreamCore) -> tuple[Any, ...]:
        if not stream.digest_writer or stream.object_mode or not self._digest_usable():
            return (stream.id,)
        if stream.chunks_sent and not stream.digest_active:
            return (stream.id,)  # data went out before the peer's hello: nothing to compare
        if not stream.digest_external:
            stream.digest_value = stream.hasher.hexdigest()
        elif stream.digest_value is None:
            return (stream.id,)
        return (stream.id, {stream.digest_name: stream.digest_value})

    def _object_batch(self, pending: deque[Any], credit: int) -> list[Any] | None:
        """Toward a sio_stream peer: the queued objects that fit in one ``$stream-write`` (at most
        ``credit`` and MAX_OBJECT_BATCH objects, and about ``max_chunk`` bytes of JSON so that a
        batch stays under the peer's message limit), taken off ``pending``; ``None`` (nothing
        taken) when fewer than two fit."""
        budget = self.config.max_chunk
        limit = min(credit, len(pending), MAX_OBJECT_BATCH)
        used = 0
        count = 0
        for value in itertools.islice(pending, limit):
            size = _json_size(value)
            if size is None or used + size > budget:
                break
            used += size
            count += 1
        if count < 2:
            return None
        return [pending.popleft() for _ in range(count)]

    def _after_write_change(self, stream: StreamCore) -> None:
        if (
            stream.write_state is WriteState.ENDING
            and not stream.pending_size
            and stream.announced
            and stream.move_write(WriteInput.FLUSHED)
        ):
            on_ack: Callable[..., None] | None = None
            if FEATURE_UNACKED_WRITE in self.peer_features:
                stream.end_ack_pending = True
                on_ack = _EndAck(self, stream)
            self._queue(Outgoing(wire.END, self._end_args(stream), on_ack))
            if not stream.options.allow_half_open:
                stream.move_read(ReadInput.LOCAL_END)
            stream.listener()
        self._maybe_settle(stream)

    def write_acked(self, stream: StreamCore, args: tuple[Any, ...]) -> None:
        """The peer acknowledged one write; a non-empty ack means it refused the chunk."""
        stream.credit.acknowledged()
        if args and args[0]:
            self.fail(stream, RemoteProtocolError(str(args[0]), remote=True), notify=False)
            return
        stream.listener()
        self._maybe_settle(stream)

    def end_acked(self, stream: StreamCore, args: tuple[Any, ...] = ()) -> None:
        """A sio_stream peer processed our ``$stream-end`` (and so every write before it).

        Writes toward a sio_stream peer carry no ack, so this is where a stream the peer no
        longer knew shows up: if we sent it data, that data was lost and the stream fails.
        (A reader echoing ``$stream-end`` after sending nothing loses nothing.)
        """
        stream.end_ack_pending = False
        if args and isinstance(args[0], dict) and isinstance(args[0].get(INTEGRITY_KEY), str):
            self.fail(stream, IntegrityError(args[0][INTEGRITY_KEY], remote=True), notify=False)
            return
        if args and args[0]:
            if stream.chunks_sent:
                self.fail(stream, RemoteProtocolError(str(args[0]), remote=True), notify=False)
                return
            stream.remote_ended = True  # the peer does not know the stream: no $stream-end will come
        stream.listener()
        self._maybe_settle(stream)

    # -- lifetime --------------------------------------------------------------------------
    def fail(
        self, stream: StreamCore, error: StreamError, *, notify: bool = True, keep_inbox: bool = False
    ) -> None:
        """Fail ``stream``: wake its waiters with ``error``, tell the peer unless the peer told
        us (``error.remote``) or ``notify`` is false, and drop it from the registry. With
        ``keep_inbox`` the data already received stays readable before the error is raised."""
        if stream.error is not None:
            return
        stream.error = error
        if stream.end_reply is not None:
            # The peer's end waits for our digest check, which will not come now.
            reply, stream.end_reply = stream.end_reply, None
            reply.resolve(error.wire_message)
        stream.move_read(ReadInput.FAIL)
        stream.move_write(WriteInput.FAIL)
        if not keep_inbox:
            stream.inbox.clear()
            stream.inbox_sizes.clear()
        self._stop_credit(stream, held=not keep_inbox)
        stream.pending.clear()
        if notify and not error.remote and stream.owner is self and stream.announced and not self.closed:
            self._queue(Outgoing(wire.ERROR, (stream.id, error.wire_message)))
        self._remove(stream)
        stream.listener()

    def _maybe_settle(self, stream: StreamCore) -> None:
        if stream.settled or stream.owner is not self:
            return
        if stream.read_state is not ReadState.READING and (
            stream.owed_credit or (stream.holding is not None and stream.holding.reserved)
        ):
            # No more data will be accepted: credit still outstanding reserves nothing now.
            self._stop_credit(stream, held=False)
        if stream.read_state is ReadState.ENDED and stream.write_finished:
            if FEATURE_UNACKED_WRITE in self.peer_features and not stream.remote_ended:
                # We ended first (half-open off): keep the id until the peer's $stream-end
                # arrives, so its end, answered "invalid stream id" otherwise, and any write
                # still in flight meet a stream we know (see end_acked).
                return
            self._remove(stream)

    def _remove(self, stream: StreamCore) -> None:
        if stream.owner is self and self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
            # Bytes still unread stay counted until the application takes them or drops the
            # stream (its Holding is released when the stream is garbage-collected): a peer
            # cannot escape the budget by ending streams nobody has read yet.
            self._stop_credit(stream, held=False)
        stream.settled = stream.owner is not None or stream.settled


class _WriteAck:
    """Ack callback of one ``$stream-write`` (a small object rather than a closure per chunk)."""

    __slots__ = ("core", "stream")

    def __init__(self, core: ProtocolCore, stream: StreamCore) -> None:
        self.core = core
        self.stream = stream

    def __call__(self, *args: Any) -> None:
        self.core.write_acked(self.stream, args)


class _EndAck(_WriteAck):
    __slots__ = ()

    def __call__(self, *args: Any) -> None:
        self.core.end_acked(self.stream, args)
