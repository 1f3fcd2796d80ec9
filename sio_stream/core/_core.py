"""The protocol core: every stream of one connection, as a pure state machine.

``ProtocolCore`` takes the peer's events (``receive_*``) and the application's calls
(``write``, ``end``, ``take``, ...), keeps each stream's state and buffers, and queues what
must go on the wire in :attr:`ProtocolCore.outbox`, in the order it must be sent. It does no
I/O and imports no async library: the glue drains the outbox with :meth:`next_outgoing`, and
each stream's ``listener`` is called whenever something a waiting task may care about changed.
"""

from __future__ import annotations

import collections
import itertools
import reprlib
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from .._errors import (
    ConnectionAbortedStreamError,
    IntegrityError,
    InvalidChunkError,
    LocalProtocolError,
    RemoteProtocolError,
    StreamBrokenError,
    StreamClosedError,
    StreamError,
)
from . import _placeholder as placeholders
from . import _wire as wire
from ._budget import Budget, ConnectionStatistics, Holding, process_budget
from ._chunks import ByteQueue, decode_chunk, wire_chunk
from ._config import (
    AUTO_DIGEST,
    CONSUMED_KEY,
    CREDIT_LIMIT_KEY,
    DEFAULT_CONNECTION_WINDOW,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFERED,
    DEFAULT_MAX_CHUNK,
    DEFAULT_MAX_PLACEHOLDERS,
    DEFAULT_MAX_READ_CHUNK,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_WINDOW,
    DEFAULT_OBJECT_WINDOW,
    DEFAULT_WINDOW,
    DIGESTS,
    FEATURE_BATCH_READ,
    FEATURE_CLAIM,
    FEATURE_CONSUMED,
    FEATURE_CREDIT_LIMIT,
    FEATURE_DIGEST,
    FEATURE_DIGEST_BLAKE3,
    FEATURE_ERROR_REPLY,
    FEATURE_FINAL_SIZE,
    FEATURE_OBJECT_BATCH,
    FEATURE_READ_SIZE,
    FEATURE_RESUME,
    FEATURE_UNACKED_WRITE,
    INITIAL_BYTE_CREDIT,
    INITIAL_KEY,
    INITIAL_OBJECT_CREDIT,
    INTEGRITY_KEY,
    MAX_OBJECT_BATCH,
    OUR_FEATURES,
    PLAIN_CREDITS,
    PROBE_CREDITS,
    PROTOCOL_VERSION,
    RECEIVED_KEY,
    CoreConfig,
    credit_limit,
    floor_bytes,
)
from ._digest import DigestMixin
from ._early import EarlyMixin, EarlyWrites, with_final_size
from ._initial import InitialCredit, InitialMixin
from ._options import StreamOptions
from ._reading import ReadingMixin
from ._resume import ResumeMixin
from ._sent_events import Answers, SentEvents
from ._state import ReadInput, ReadState, WriteInput, WriteState
from ._streamcore import Outgoing, PendingReply, StreamCore, _held_size, _json_size, _nothing
from ._tuning import Tuner
from ._turns import Turns, has_left, read_left, with_left
from ._window import CreditLimit, ReadWindow


class ProtocolCore(ReadingMixin, DigestMixin, ResumeMixin, InitialMixin, EarlyMixin):
    """All streams of one Socket.IO connection (one namespace of one socket), sans I/O."""

    def __init__(self, config: CoreConfig | None = None) -> None:
        self.config = config or CoreConfig()
        self.streams: dict[str, StreamCore] = {}
        self.outbox: deque[Outgoing | StreamCore] = deque()
        parent = self.config.process_budget or process_budget()
        #: This connection's account (its parent is the process account).
        self.budget = Budget(
            self.config.max_buffered,
            parent,
            window=self.config.connection_window,
            floor=floor_bytes(self.config),
            slots=self.config.max_streams,
        )
        # A core dropped without connection_lost() (tests, a host that forgot) leaves its parent.
        weakref.finalize(self, self.budget.close)
        #: Streams owed credit the budget had no room for, oldest first (a set in FIFO order).
        self.starved: dict[StreamCore, None] = {}
        #: The starved streams a floor may pay (see ReadingMixin._pay): the dry ones, and every
        #: one toward a writer whose chunk size we do not set. A superset, pruned as passes go.
        self.floor_due: dict[StreamCore, None] = {}
        #: Streams whose read window grew beyond its configured size: their window in bytes
        #: (the connection window follows the largest, see ReadingMixin._fit_connection_window).
        self.grown: dict[StreamCore, int] = {}
        #: The largest window (bytes) a stream of this connection grew to: where the next
        #: stream's window opens (see ReadingMixin._consumed); 0 under memory pressure.
        self.reached = 0
        #: The connection window's own growth, while streams wait for it (its bytes; 0: none).
        self.window_tuner = Tuner()
        self.window_tuned = 0
        #: Whether the connection window turns, for the streams waiting their turn (_turns.py).
        self.turns = Turns()
        #: Starved streams waiting for their turn, out of ``floor_due`` (see ReadingMixin._pay).
        self.turn_waiters: dict[StreamCore, None] = {}
        #: Called when debts start to wait: the glue then calls :meth:`check_turns` every
        #: ``STALL_CHECK`` seconds while it returns True.
        self.on_turn_wait: Callable[[], None] = _nothing
        self.peer_features: frozenset[str] = frozenset()
        #: The most unused credit the peer's writer accepts per stream (negotiated credit-limit).
        self.peer_credit_limit: CreditLimit | None = None
        #: Negotiated ``initial-credit`` (see _initial.py): our offer, until the peer's stream
        #: takes it, and whether it was made; the peer's, until our first byte stream takes it.
        self.initial_offer: InitialCredit | None = None
        self.initial_offered = False
        self.peer_offer: InitialCredit | None = None
        self.peer_offer_seen = False
        #: Writes that came before the event of the stream that takes our offer (_early.py).
        self.early = EarlyWrites()
        #: The peer's hello came (its features are known), or it is known to send none.
        self.peer_known = False
        self.closed = False
        #: The peer has not been told the connection is open yet (a server's connect handler
        #: is running): the outbox fills, and the glue sends it once the connection opens.
        self.connecting = False
        #: Called when the outbox goes from empty to non-empty (the glue wakes its sender).
        self.on_outgoing: Callable[[], None] = _nothing
        # -- negotiated ``resume`` (see _resume.py) --
        #: The transport dropped and the session may resume: nothing but :attr:`control` is sent.
        self.suspended = False
        #: Streams registered when the transport dropped (those the resume handshake reports).
        self.suspended_ids: set[str] = set()
        #: Events that go before everything else, even while suspended (a resume hello).
        self.control: deque[Outgoing] = deque()
        #: Streams that left the registry in good order: ``id -> resume entry`` (bounded).
        self.recently_closed: collections.OrderedDict[str, list[int]] = collections.OrderedDict()
        self.resumes = 0
        #: Application events we sent and do not know arrived, and those we received
        #: (see _sent_events.py): each sent exactly once across a drop.
        self.sent_events = SentEvents()
        self.events_received = 0
        self.answers = Answers()
        #: Units (bytes, or objects) put back to be sent again at resumes (what cuts cost).
        self.resent = 0

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
            retained=self.budget.retained,
            suspended=self.suspended,
            resent=self.resent,
        )

    # -- negotiation -----------------------------------------------------------------------
    def hello(self, resume: dict[str, Any] | None = None) -> Outgoing:
        """Our ``$stream-hello``, to send first on a new connection (``resume``: the negotiated
        resume part, see :mod:`sio_stream.core._resume`)."""
        features = self.config.features
        if self.config.resume_timeout <= 0:
            features = features - {FEATURE_RESUME}
        info: dict[str, Any] = {"version": PROTOCOL_VERSION, "features": sorted(features)}
        if FEATURE_CREDIT_LIMIT in features:
            info[CREDIT_LIMIT_KEY] = credit_limit(self.config).to_wire()
        offer = self._hello_offer(features)
        if offer is not None:
            info[INITIAL_KEY] = offer
        if resume is not None:
            info["resume"] = resume
        return Outgoing(wire.HELLO, (info,))

    def receive_hello(self, info: Any) -> None:
        """The peer is a sio_stream peer: use the features both sides announced."""
        if not isinstance(info, dict):
            return
        features = info.get("features")
        if isinstance(features, list):
            theirs = {f for f in features if isinstance(f, str)}
            ours = self.config.features
            if self.config.resume_timeout <= 0:
                ours = ours - {FEATURE_RESUME}
            self.peer_features = frozenset(theirs & ours)
            self.peer_known = True
            self.peer_credit_limit = (
                CreditLimit.from_wire(info.get(CREDIT_LIMIT_KEY))
                if FEATURE_CREDIT_LIMIT in self.peer_features
                else None
            )
            self._receive_offer(info.get(INITIAL_KEY))
            if not self.resumable:
                self._keep_nothing()  # kept in case it could resume (see _keeps_events)

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

    def queue_control(self, item: Outgoing) -> None:
        """Queue ``item`` ahead of the outbox, sent even while suspended (a resume hello)."""
        self.control.append(item)
        self.on_outgoing()

    def next_outgoing(self) -> Outgoing | None:
        """The next event to emit, or ``None`` when nothing is queued (or may be sent now)."""
        if self.control:
            return self.control.popleft()
        if self.suspended:
            return None
        while self.outbox:
            item = self.outbox.popleft()
            if isinstance(item, Outgoing):
                if item.event == wire.STREAM and self.config.resume_timeout > 0:
                    item = self._record_event(item)
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
        credit = self._take_offer(stream)
        if credit:
            placeholder[wire.PLACEHOLDER_CREDIT_KEY] = credit
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
        # Ending or failing before the announcement left nothing on the wire yet; data written
        # meanwhile goes now if the stream holds credit already (initial credit).
        self._schedule(stream)
        self._after_write_change(stream)
        if stream.error is not None and not stream.error.remote:
            self._queue(Outgoing(wire.ERROR, (stream.id, stream.error.wire_message)))

    def decode_placeholder(self, stream_id: Any, options: Any, credit: Any = None) -> StreamCore:
        """A stream the peer sent us. Never raises: a bad placeholder yields a failed stream.
        ``credit``: the initial credit its writer took (negotiated ``initial-credit``)."""
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
        # What came for it before its event (initial credit): applied once it is primed.
        early, lost = self.early.claim(stream_id)
        stream = StreamCore(opts, stream_id)
        self._bind(stream)
        stream.announced = True
        stream.peer_seen = True
        if failure is not None:
            self.fail(stream, failure)
        elif credit is not None:
            self._prime(stream, credit)
            if self.initial_offer is None:
                self.early.lose_all()  # taken: no other stream may send before its event
        if early is not None or lost:
            self._deliver_early(stream, early, lost)
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
    def receive_read(self, stream_id: Any, size: Any = None, count: Any = 1, report: Any = None) -> None:
        """``$stream-read``: one credit (or ``count`` from a sio_stream peer). Unknown ids are
        ignored. ``report`` (negotiated ``consumed``): ``{"consumed": N}``, the credits the
        reader's application consumed so far; a bad one fails the stream (RemoteProtocolError).
        With negotiated ``resume`` it also carries ``"received"``: what the reader accepted."""
        stream = self._lookup(stream_id)
        if stream is None or stream.write_state is WriteState.FAILED:
            return
        if isinstance(report, dict) and stream.replay:
            self._acknowledge(stream, report.get(RECEIVED_KEY))
        grant = 1
        if FEATURE_BATCH_READ in self.peer_features and count != 1:
            if count == 0 and not isinstance(count, bool) and FEATURE_CLAIM in self.peer_features:
                return  # a claim: the peer received the stream (see claim())
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                self.fail(stream, RemoteProtocolError(f"bad read count: {count!r}"))
                return
            grant = count
        if report is not None and FEATURE_CONSUMED in self.peer_features:
            if isinstance(report, dict):
                problem = stream.credit.reported(report.get(CONSUMED_KEY))
            else:
                problem = f"bad consumed report: {reprlib.repr(report)}"
            if problem is not None:
                self.fail(stream, RemoteProtocolError(f"{problem} on stream {stream.id}"))
                return
        hint = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0
        if hint and FEATURE_READ_SIZE in self.peer_features:
            stream.read_size = hint
        stream.credit.limit = self._write_credit_limit(stream, hint)
        if not stream.credit.granted(grant) and FEATURE_BATCH_READ in self.peer_features:
            # A sio_stream reader never opens a window beyond our limit: absurd credit is no
            # slip, and would let its stream queue that much data for the transport.
            self.fail(
                stream,
                RemoteProtocolError(
                    f"credit beyond the limit of {stream.credit.limit} chunks on stream {stream.id}"
                ),
            )
            return
        self._schedule(stream)

    def _write_credit_limit(self, stream: StreamCore, read_size: int) -> int:
        """Most unused credits ``stream``'s writer accepts: within our announced credit-limit
        toward a peer that announced it too (in bytes: a credit counts for a chunk of the
        reader's read size, which its windows are counted in), else ``max_credit``."""
        if FEATURE_CREDIT_LIMIT not in self.peer_features:
            return self.config.max_credit
        chunk = min(self.config.max_chunk, read_size) if read_size else self.config.max_chunk
        return credit_limit(self.config).writer_credits(stream.object_mode, chunk)

    def receive_write(
        self, stream_id: Any, chunk: Any, encoding: Any = None, marker: Any = None
    ) -> str | None:
        """``$stream-write``: returns the ack argument (``None`` for an empty ack). ``marker``
        (``{"digest": name}``, negotiated ``digest``) on the first write announces a digest."""
        stream = self._lookup(stream_id)
        if stream is None:
            return self._early_write(stream_id, chunk, encoding, marker)
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
        sized = FEATURE_FINAL_SIZE in self.peer_features and not stream.object_mode and has_left(marker)
        if sized:
            left = read_left(marker)
            if isinstance(left, str):
                return self._refuse(stream, f"{left} on stream {stream.id}")
            stream.peer_left = left
        refusal = self._arrive(stream, 1, size)
        if refusal is not None:
            return refusal
        if marker is not None and not stream.object_mode and (not sized or "digest" in marker):
            problem = self._digest_announced(stream, marker)
            if problem is not None:
                return self._refuse(stream, problem)
        stream.received_units += 1 if stream.object_mode else len(value)
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
            # An empty chunk still used a credit: it goes back straight away, but shows nothing
            # of the reader (no window opens or grows for it).
            self._returned(stream)
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
        stream.received_units += count
        each, rest = divmod(total, count)
        stream.inbox_sizes.extend(each + (1 if i < rest else 0) for i in range(count))
        stream.listener()
        return None

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
            return self._early_end(stream_id, digest)
        failed, digest = self._end_value(stream, digest)
        if failed is not None:
            return failed
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
                if not stream.object_mode:  # a primed stream's end says what it did send
                    stream.written_bytes -= stream.pending_size
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

    def connection_lost(self, error: StreamError | None = None) -> None:
        """The connection dropped: every stream fails with "Connection aborted" (or ``error``)."""
        self.closed = True
        self.suspended = False
        self.early.forget()
        self.outbox.clear()
        self.control.clear()
        self.recently_closed.clear()
        for stream in list(self.streams.values()):
            self.fail(stream, error or ConnectionAbortedStreamError(wire.CONNECTION_ABORTED), notify=False)
        self.streams.clear()
        self.starved.clear()
        self.floor_due.clear()
        self.turn_waiters.clear()
        self.turns.stop()
        self.grown.clear()
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
        if not isinstance(stream_id, str) or self.suspended:
            # While suspended, events still arriving were sent on the dead transport
            # (python-socketio dispatches each in a task of its own, which may run after the
            # disconnect): ignored, what they carried is replayed after the resume.
            return None
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.peer_seen = True
            stream.touch()
            if self.sent_events.kept:
                self.sent_events.stream_used(stream_id)  # the event that carried it arrived
        return stream

    def sweep_idle(self, limit: int, message: str) -> None:
        """Count one idle sweep for every stream; fail those idle for more than ``limit`` sweeps.

        Activity (any event from the peer for the stream, any read, write or end by the
        application, any chunk sent) resets the count. The glue calls this on a timer.
        """
        self.early.sweep(limit)
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
        if not stream.object_mode:
            stream.written_bytes += len(data)
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
            sent: list[Any] = []
            if (
                FEATURE_OBJECT_BATCH in self.peer_features
                and stream.credit.available > 1
                and len(stream.pending) > 1
            ):
                batch = self._object_batch(stream.pending, stream.credit.available)
                if batch is not None:
                    chunk, encoding, spent = batch, wire.OBJECT_BATCH, len(batch)
                    sent = batch
            if chunk is None:
                value = stream.pending.popleft()
                sent = [value]
                chunk, encoding = wire_chunk(value, True, False)
            if self.resumable:
                # Objects are counted at the size a reader reserves before it saw any.
                self._retain(stream, spent, sent, spent * INITIAL_OBJECT_CREDIT)
        else:
            assert isinstance(stream.pending, ByteQueue)
            limit = self.config.max_chunk
            if stream.read_size and FEATURE_READ_SIZE in self.peer_features:
                limit = min(limit, stream.read_size)  # the reader reserved only this much
            data = stream.pending.take(limit)
            chunk, encoding = wire_chunk(data, False, self.config.force_base64)
            fresh = data
            if stream.replay_left:
                # Replayed after a resume: hashed when it was first sent.
                skip = min(len(data), stream.replay_left)
                stream.replay_left -= skip
                fresh = data[skip:]
            if stream.digest_name is not None:
                marker = self._digest_marker(stream, fresh)
            if stream.write_state is WriteState.ENDING and FEATURE_FINAL_SIZE in self.peer_features:
                # What is left after this chunk (see _turns.py): the reader sizes its credit to it.
                marker = with_left(marker, stream.pending.size)
            if self.resumable:
                self._retain(stream, len(data), data, len(data))
        stream.credit.spend(spent)
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
            args = self._end_args(stream)
            if stream.initial_credit and not stream.object_mode:
                args = with_final_size(args, stream.written_bytes)  # see _early.py
            self._queue(Outgoing(wire.END, args, on_ack))
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
        if stream.replay:
            self._drop_replay(stream)  # the peer processed every write before the end
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
        self._drop_replay(stream)
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
            self._drop_replay(stream)
            if stream.error is None and self.resumable:
                self._closed_cleanly(stream)
            # Bytes still unread stay counted until the application takes them or drops the
            # stream (its Holding is released when the stream is garbage-collected): a peer
            # cannot escape the budget by ending streams nobody has read yet.
            self._stop_credit(stream, held=False)
            if stream.holding is not None:
                stream.holding.unfloor()
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


# The core's names, with those of the modules it is made of (settings, one stream's state), so
# that the glue imports the protocol from one place.
__all__ = [
    "CoreConfig",
    "DEFAULT_CONNECTION_WINDOW",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BUFFERED",
    "DEFAULT_MAX_CHUNK",
    "DEFAULT_MAX_PLACEHOLDERS",
    "DEFAULT_MAX_READ_CHUNK",
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_MAX_WINDOW",
    "DEFAULT_OBJECT_WINDOW",
    "DEFAULT_WINDOW",
    "DIGESTS",
    "FEATURE_BATCH_READ",
    "FEATURE_CLAIM",
    "AUTO_DIGEST",
    "FEATURE_DIGEST",
    "FEATURE_DIGEST_BLAKE3",
    "FEATURE_ERROR_REPLY",
    "FEATURE_OBJECT_BATCH",
    "FEATURE_READ_SIZE",
    "FEATURE_RESUME",
    "FEATURE_UNACKED_WRITE",
    "INITIAL_BYTE_CREDIT",
    "INITIAL_OBJECT_CREDIT",
    "INTEGRITY_KEY",
    "MAX_OBJECT_BATCH",
    "OUR_FEATURES",
    "Outgoing",
    "PLAIN_CREDITS",
    "PROBE_CREDITS",
    "PROTOCOL_VERSION",
    "PendingReply",
    "ProtocolCore",
    "StreamCore",
]
