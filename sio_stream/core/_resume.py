"""Negotiated ``resume``: a connection's streams survive a dropped transport. A mixin of
:class:`~sio_stream.core._core.ProtocolCore`.

What each side keeps, per stream (units are bytes, or objects in object mode):

* the writer counts what it put on the wire (``sent_units``) and keeps what the reader has not
  acknowledged yet (``replay``, counted in the budget as ``retained``); the reader acknowledges
  with the fourth argument of every ``$stream-read`` it sends (``received_units``: what it has
  accepted so far), and the ack of ``$stream-end`` acknowledges everything. A reader grants
  credit back as it consumes, so what a writer retains is bounded by the reader's window: data
  in flight, plus data arrived but not yet consumed (at most the credit granted);
* the reader counts what it accepted (``received_units``) and the credit it holds outstanding
  (``window.outstanding``).

When the transport drops (:meth:`suspend`), nothing is sent; the application keeps writing into
its buffers (backpressure stops it at the high-water mark) and keeps reading what arrived. On
the new connection each side reports, in its ``$stream-hello``, one entry per stream that
existed at the drop (:meth:`resume_state`)::

    {id: [received, outstanding, read_size, ended]}

and applies the peer's (:meth:`apply_resume`): as a writer it drops what the reader received,
puts what is left of its replay back in front of its buffer, takes the reader's outstanding
credit as its own (reads lost on the old connection are in it; writes lost are credit the
reader still counts), and sends its ``$stream-end`` again unless the reader saw it
(``ended``). A stream the peer does not list (it never arrived, or it ended or failed there)
fails with "Connection aborted". So every chunk is delivered exactly once, in order.

A stream whose carrying event (or answer) is sent again starts afresh on the peer, which lists
no entry for it: our reader asks again for the credit it holds outstanding (:meth:`_ask_again`;
those reads were lost with the event) and our writer starts from byte 0.
"""

from __future__ import annotations

import collections
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from .._errors import ConnectionAbortedStreamError, RemoteProtocolError, StreamError
from . import _placeholder as placeholders
from . import _wire as wire
from ._budget import Budget
from ._chunks import ByteQueue
from ._config import (
    FEATURE_BATCH_READ,
    FEATURE_RESUME,
    FEATURE_UNACKED_WRITE,
    INITIAL_OBJECT_CREDIT,
    CoreConfig,
)
from ._early import EarlyWrites
from ._sent_events import Answers, SentEvents
from ._state import ReadState, WriteInput, WriteState
from ._streamcore import Outgoing, StreamCore


class _Core(Protocol):
    """What the resume methods use of the core they are mixed into."""

    config: CoreConfig
    budget: Budget
    peer_features: frozenset[str]
    peer_known: bool
    streams: dict[str, StreamCore]
    outbox: deque[Outgoing | StreamCore]
    control: deque[Outgoing]
    suspended: bool
    suspended_ids: set[str]
    early: EarlyWrites
    recently_closed: collections.OrderedDict[str, list[int]]
    resumes: int
    sent_events: SentEvents
    events_received: int
    answers: Answers
    closed: bool
    resent: int
    starved: dict[StreamCore, None]

    def _keeps_events(self) -> bool: ...

    def _keep_nothing(self) -> None: ...

    def _queue(self, item: Outgoing | StreamCore) -> None: ...

    def on_outgoing(self) -> None: ...

    def fail(
        self, stream: StreamCore, error: StreamError, *, notify: bool = True, keep_inbox: bool = False
    ) -> None: ...

    def end_acked(self, stream: StreamCore, args: tuple[Any, ...] = ()) -> None: ...

    def _schedule(self, stream: StreamCore) -> None: ...

    def _after_write_change(self, stream: StreamCore) -> None: ...

    def _acknowledge(self, stream: StreamCore, received: Any) -> None: ...

    def _drop_replay(self, stream: StreamCore) -> None: ...

    def _rewind(self, stream: StreamCore, entry: Any) -> None: ...

    def _ask_again(self, stream: StreamCore) -> None: ...

    def _sized(self, stream: StreamCore) -> bool: ...

    def _queue_reads(self, stream: StreamCore, count: int, read_size: int) -> None: ...

    def _pay(self) -> None: ...

    @property
    def resumable(self) -> bool: ...


def _reply(number: int, args: tuple[Any, ...] | None) -> Outgoing:
    """Our answer to the peer's event ``number``, sent again after a resume (``None``: lost)."""
    if args is None:
        return Outgoing(wire.HELLO, ({"resume": {"reply": number, "lost": True}},))
    return Outgoing(wire.HELLO, ({"resume": {"reply": number, "args": list(args)}},))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class ResumeMixin:
    """The resume methods of :class:`~sio_stream.core._core.ProtocolCore`."""

    @property
    def resumable(self: _Core) -> bool:
        """Both sides announced ``resume`` (with the batched reads and unacked writes it builds on)."""
        return (
            FEATURE_RESUME in self.peer_features
            and FEATURE_BATCH_READ in self.peer_features
            and FEATURE_UNACKED_WRITE in self.peer_features
            and self.config.resume_timeout > 0
        )

    # -- while the connection is up -------------------------------------------------------------
    def _retain(self: _Core, stream: StreamCore, units: int, item: Any, size: int) -> None:
        """``item`` (``units`` bytes or objects, ``size`` bytes of memory) went on the wire."""
        stream.sent_units += units
        stream.replay.append((units, item))
        stream.replay_bytes += size
        self.budget.retain(size)

    def _acknowledge(self: _Core, stream: StreamCore, received: Any) -> None:
        """The reader accepted ``received`` units of ``stream`` so far: drop what it covers."""
        count = _count(received)
        if count is None or count <= stream.acked_units or count > stream.sent_units:
            return
        replay = stream.replay
        freed = 0
        while replay and stream.acked_units < count:
            units, item = replay[0]
            if stream.acked_units + units <= count:
                replay.popleft()
                stream.acked_units += units
                freed += len(item) if isinstance(item, bytes) else units * INITIAL_OBJECT_CREDIT
                continue
            # Part of a chunk: keep its tail.
            cut = count - stream.acked_units
            if isinstance(item, bytes):
                replay[0] = (units - cut, item[cut:])
                freed += cut
            else:
                replay[0] = (units - cut, item[cut:])
                freed += cut * INITIAL_OBJECT_CREDIT
            stream.acked_units = count
        freed = min(freed, stream.replay_bytes)
        stream.replay_bytes -= freed
        self.budget.retain(-freed)

    def _drop_replay(self: _Core, stream: StreamCore) -> None:
        """Nothing of ``stream`` will be replayed (it ended acknowledged, or failed)."""
        stream.replay.clear()
        stream.acked_units = stream.sent_units
        if stream.replay_bytes:
            self.budget.retain(-stream.replay_bytes)
            stream.replay_bytes = 0

    # -- application events, exactly once (see _sent_events.py) ------------------------------------
    def _keeps_events(self: _Core) -> bool:
        """Keep our application events and our answers for a replay: the session can resume,
        or it may (resume is on here and the peer's hello has not come yet).

        Events sent before the peer's hello are kept too: a client emits as soon as it is
        connected, without waiting a round trip for the server's answer, so its first events
        (and the acks they wait for) would otherwise be lost to the first drop after the
        answer (issue 21: 108 of 200 calls hung). A hello that does not announce ``resume``
        forgets them; a peer that never sends one (npm's JavaScript packages) is held to
        ``MAX_UNCONFIRMED`` events, and a server stops at its client's first stream event
        that is not a hello (:meth:`peer_without_hello`). Every event is numbered all the
        same, so that the count stays that of the peer."""
        return self.resumable or (not self.peer_known and self.config.resume_timeout > 0)

    def peer_without_hello(self: _Core) -> None:
        """The peer sent a stream event before any hello: it is no sio_stream peer (a server
        calls this: its sio_stream clients send their hello before anything else), so it
        will never resume: forget the events kept meanwhile."""
        if not self.peer_known:
            self.peer_known = True
            self._keep_nothing()

    def _keep_nothing(self: _Core) -> None:
        """The session cannot resume: forget the events and answers kept for a replay."""
        self.sent_events.forget()
        self.answers.forget()

    def _record_event(self: _Core, item: Outgoing) -> Outgoing:
        if not self._keeps_events():
            self.sent_events.sent += 1
            return item
        ids: list[str] = []
        placeholders.decode(list(item.args[1:]), lambda sid, _o: ids.append(sid))
        return self.sent_events.record(item, ids)

    def event_forwarded(self: _Core, on_ack: Callable[..., None] | None = None) -> Callable[..., None] | None:
        """Another node of a cluster sent the peer an application event on this connection's
        transport: number it with ours, so that both ends' counts stay equal; never replayed.
        Returns the ack callback to emit it with (``on_ack``, or one that also lets a resume
        send again an answer the drop lost)."""
        if self._keeps_events():
            return self.sent_events.skip(on_ack)
        self.sent_events.sent += 1
        return on_ack

    def event_received(self: _Core) -> int:
        """An application event arrived: count it and return its number (0: do not handle
        it: while suspended it was sent on the dead transport, and the peer sends it again).
        Give its answer to :meth:`event_answered`."""
        if self.suspended:
            return 0
        self.events_received += 1
        if self._keeps_events():
            self.answers.started(self.events_received)
        return self.events_received

    def event_answered(self: _Core, number: int, args: tuple[Any, ...]) -> None:
        """The handler of event ``number`` answered ``args`` (python-socketio sends them as its
        ack): kept, and sent again now if the peer asked for them after a resume."""
        if number and self.answers.answered(number, args) and not self.closed:
            self._queue(_reply(number, args))

    def receive_reply(self: _Core, resume: Any) -> bool:
        """A resume hello's ``{"reply": n, "args": [...]}`` (or ``"lost": true``): the answer
        to our event ``n``, sent again after a resume. Returns whether ``resume`` was one."""
        if not isinstance(resume, dict) or "reply" not in resume:
            return False
        number = _count(resume.get("reply"))
        args = resume.get("args")
        if resume.get("lost") is True or not isinstance(args, list):
            args = [{wire.ERROR_REPLY_KEY: "the answer was lost with a dropped connection"}]
        if number is not None:
            self.sent_events.replied(number, tuple(args))
        return True

    def _closed_cleanly(self: _Core, stream: StreamCore) -> None:
        """Remember a stream that left the registry in good order: the peer may still wait for
        the answer to its ``$stream-end``, lost with the connection (bounded by ``max_streams``)."""
        self.recently_closed[stream.id] = [stream.received_units, 0, 0, 1 if stream.remote_ended else 0]
        while len(self.recently_closed) > self.config.max_streams:
            self.recently_closed.popitem(last=False)

    # -- the drop ---------------------------------------------------------------------------------
    def suspend(self: _Core) -> None:
        """The transport dropped but the session may resume: send nothing, keep every stream.

        Application events not sent yet stay queued (their streams are new to the peer), and
        so do the reads, ends and errors queued behind them for those streams: the peer learns
        of those only from us, after the event (the resume entries cover only streams it knew).
        The rest of the outbox is dropped: credit and ends are exchanged again at the resume,
        and writes are cut afresh from the buffers.
        """
        if self.suspended:
            return
        self.suspended = True
        self.early.forget()  # came on the dead transport: the writer sends again after the resume
        kept: list[Outgoing] = []
        fresh: set[Any] = set()
        for item in self.outbox:
            if isinstance(item, Outgoing):
                if item.event == wire.STREAM:
                    kept.append(item)
                    placeholders.decode(list(item.args[1:]), lambda sid, _o: fresh.add(sid))
                elif (
                    item.event in (wire.READ, wire.END, wire.ERROR)
                    and item.args
                    and isinstance(item.args[0], str)
                    and item.args[0] in fresh
                ):
                    kept.append(item)  # behind its event, since it was queued after it
            else:
                item.scheduled = False
        self.outbox.clear()
        self.outbox.extend(kept)
        self.control.clear()
        self.suspended_ids = {sid for sid in self.streams if sid not in fresh}
        # Room freed elsewhere wakes live connections only: debts are paid at the resume.
        self.budget.cancel(self)

    def resume_state(self: _Core) -> dict[str, list[int]]:
        """What we have of every stream of the suspended session, for our resume hello. Reads
        queued meanwhile are dropped from the outbox: their credit is in ``outstanding``; so are
        ends queued meanwhile (the application ended a stream whose bytes were all sent, some of
        them lost): the resume sends the end again after what the peer did not get."""
        entries: dict[str, list[int]] = {}
        for sid, state in self.recently_closed.items():
            entries[sid] = list(state)
        for sid in self.suspended_ids:
            stream = self.streams.get(sid)
            if stream is None or stream.error is not None:
                continue
            outstanding = stream.window.outstanding if stream.window is not None else 0
            entries[sid] = [
                stream.received_units,
                outstanding,
                stream.grant_size,
                1 if stream.remote_ended else 0,
            ]
        ids = self.suspended_ids
        kept = [
            item
            for item in self.outbox
            if not (
                isinstance(item, Outgoing)
                and item.event in (wire.READ, wire.END)
                and item.args
                and item.args[0] in ids
            )
        ]
        self.outbox.clear()
        self.outbox.extend(kept)
        return entries

    def apply_resume(self: _Core, entries: Any, events: Any = None, awaiting: Any = None) -> None:
        """The peer's state (its :meth:`resume_state`, and ``events``: the application events
        of ours it received, or ``None`` from a peer that does not say): rewind our writers,
        send again the events it did not get (their streams start afresh), fail the streams it
        does not have, and send again."""
        if not isinstance(entries, dict):
            entries = {}
        again = self.sent_events.unreceived(events) if events is not None else None
        fresh = {sid for _item, ids in again or () for sid in ids}
        replies = [_reply(n, args) for n, args in self.answers.asked(awaiting, self.events_received)]
        for reply in replies:  # streams in an answer the peer never got start afresh too
            placeholders.decode(reply.args[0]["resume"].get("args") or [], lambda sid, _o: fresh.add(sid))
        for sid in list(self.suspended_ids):
            stream = self.streams.get(sid)
            if stream is None or stream.error is not None:
                continue
            entry = entries.get(sid)
            if entry is None and sid in fresh:
                # Its event goes again: the peer never saw the stream (nor took its initial
                # credit: the placeholder carries it again, see _initial.py).
                entry = [0, stream.initial_credit, stream.read_size if stream.initial_credit else 0, 0]
            if not (
                isinstance(entry, list) and len(entry) == 4 and all(_count(v) is not None for v in entry)
            ):
                self.fail(stream, ConnectionAbortedStreamError(wire.CONNECTION_ABORTED), notify=False)
                continue
            self._rewind(stream, entry)
            if sid in fresh and sid not in entries:
                self._ask_again(stream)
        for stream in self.streams.values():
            if stream.initial_credit and stream.id not in self.suspended_ids:
                # Its event was still queued at the drop: its initial credit is intact, but the
                # writes the suspension dropped from the outbox must be scheduled again.
                self._schedule(stream)
        self.suspended = False
        self.suspended_ids = set()
        self.resumes += 1
        if self.starved:
            self._pay()  # credit owed while suspended (see suspend)
        if again:
            # Ahead of everything queued since: before the reads and writes of their streams,
            # and before the events not sent yet at the drop (numbered after them).
            self.outbox.extendleft(item for item, _ids in reversed(again))
        # The answers it waits for go first: they may announce streams, as events do.
        self.outbox.extendleft(reversed(replies))
        for stream in list(self.streams.values()):
            stream.touch()
            stream.listener()
        if self.outbox or self.control:
            self.on_outgoing()
        for callback in self.sent_events.take_lost():
            callback({wire.ERROR_REPLY_KEY: "the event was lost with a dropped connection"})

    def _ask_again(self: _Core, stream: StreamCore) -> None:
        """``stream`` starts afresh on the peer (the event or answer that carries it goes again):
        the credit our reader holds outstanding was granted in reads the peer never saw (lost
        with the event, or dropped from the outbox while suspended). Ask for it again, in one
        read queued behind the event; the reservation behind that credit stays as it was, so
        nothing is counted twice and the window's bound holds."""
        window = stream.window
        if window is None or not window.outstanding or stream.read_state is not ReadState.READING:
            return
        read_size = stream.grant_size if self._sized(stream) and stream.grant_size else self.config.max_chunk
        self._queue_reads(stream, window.outstanding, read_size)

    def _rewind(self: _Core, stream: StreamCore, entry: list[int]) -> None:
        received, outstanding, read_size, ended = entry
        if not stream.acked_units <= received <= stream.sent_units:
            self.fail(
                stream,
                RemoteProtocolError(
                    f"cannot resume stream {stream.id}: the peer reports {received} "
                    f"{'objects' if stream.object_mode else 'bytes'} received of {stream.sent_units} sent, "
                    f"{stream.acked_units} acknowledged"
                ),
            )
            return
        self._acknowledge(stream, received)
        if stream.replay:
            # What the reader did not get goes back in front of what the application wrote since.
            if isinstance(stream.pending, ByteQueue):
                data = b"".join(item for _units, item in stream.replay)
                self.resent += len(data)
                stream.pending.prepend(data)
                stream.replay_left += len(data)  # already hashed (digest)
            else:
                for units, items in reversed(stream.replay):
                    self.resent += units
                    stream.pending.extendleft(reversed(items))
            self.budget.retain(-stream.replay_bytes)
            stream.replay.clear()
            stream.replay_bytes = 0
        stream.sent_units = received
        if received == 0:
            stream.chunks_sent = 0  # the first write (and its digest announcement) goes again
        stream.credit.available = 0
        stream.credit.unacked = 0
        stream.credit.granted(outstanding)
        if read_size:
            stream.read_size = read_size
        if stream.write_state in (WriteState.ENDED, WriteState.ENDING) and stream.end_ack_pending:
            stream.end_ack_pending = False
            if ended and not stream.pending_size:
                self.end_acked(stream, ())  # the reader had our end; its answer was lost
                return
            stream.move_write(WriteInput.RESEND)
        self._schedule(stream)
        self._after_write_change(stream)
