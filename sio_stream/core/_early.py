"""Early writes (negotiated ``initial-credit``): a primed stream's data that reaches the reader
before the event announcing the stream, and the final size that proves none of it was lost. A
mixin of :class:`~sio_stream.core._core.ProtocolCore`.

Why: a writer that took the reader's offer sends right behind its event, so nothing orders its
writes after the event at the reader but the transport. Where two paths meet (a stream returned
in an ack whose answer crossed cluster nodes on another path than the writes behind it; a
server whose handler threads ran the writes first) the writes came first, were dropped as
``"invalid stream id"`` (unacked: the writer never knew), and the stream later ended cleanly,
short. The rules, per connection:

* **Held**: while our offer is made and not taken (and the session is not suspended, and the
  connection is up), a ``$stream-write`` for an id we do not know is kept, as the bytes it
  decodes to and a marker of the small form our peers send (see :func:`compact`: a peer's other
  JSON is not what the offer counted, so such a write is lost), as long as everything
  held stays within the offer: at most its credits in chunks (and in ids), each chunk within its
  size and ``max_read_chunk``. The offer paid for them (the budget counts it as offered; on a
  cluster node's record of another node's client, that node counted it), so memory stays
  within the budget; the ack says accepted. A ``$stream-end`` for an id with held
  writes, or one that carries a final size (only a primed stream's does), is held too (its value
  in the same small form, else refused), and its ack waits (a :class:`PendingReply`).
* **Delivered**: the event whose placeholder takes the offer for that id gets what was held, in
  arrival order, as if it came right after the event (so a write beyond the credit it claims
  fails it, as any write beyond credit). An id never announced cannot outlive the offer: the
  same event drops what is held for every other id (one offer, taken once: no other stream may
  send before its event).
* **Lost**: a write that does not fit, or is not a valid byte chunk, is dropped with whatever
  is held for its id (an end held for it is answered ``"invalid stream id"``, which fails a
  writer that sent data), and the id is remembered (the last :data:`LOST_IDS`): when its
  placeholder arrives, the stream fails with :class:`IntegrityError`, and so do held ids that
  age past the idle timeout (they count the driver's idle sweeps as streams do). A suspension
  (the writer sends again after the resume) and the connection's end forget all of it.
* **Final size**: a primed stream's writer puts ``{"size": N}`` (what its application wrote,
  less what it dropped unsent when the reader ended a duplex stream without half-open)
  in its ``$stream-end`` value, beside a digest. A reader that accepted another count fails the
  stream with :class:`IntegrityError` and answers ``{"integrity": message}``, so the writer's
  ``end()`` raises it too: whatever lost the data, the stream never ends cleanly short (our
  JavaScript client sends the key too; a writer without it is checked by the rules above only).

Why IntegrityError and not RemoteProtocolError: the peer broke no rule (the reordering happened
between the two), and what arrived is not what was sent, which is what IntegrityError says:
nothing the reader stored may be trusted, both ends learn it, and the file helpers keep no file.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._errors import IntegrityError, InvalidChunkError, RemoteProtocolError, StreamError
from ._chunks import decode_chunk
from ._config import FEATURE_INITIAL_CREDIT, FEATURE_UNACKED_WRITE, FINAL_SIZE_KEY, INTEGRITY_KEY, CoreConfig
from ._initial import InitialCredit
from ._streamcore import PendingReply, StreamCore

#: The longest string a held write's marker or a held end's value may carry (a digest's name or
#: hex value; sha512 is 128 hex digits), and the most keys either may have: what is held must be
#: what the offer counted, not any JSON a peer puts beside it.
MAX_HELD_TEXT = 256
MAX_HELD_KEYS = 4

#: Ids whose early writes were dropped, remembered so that their streams fail when announced.
#: Only a hostile or broken writer loses more than one: its oldest are forgotten (the final
#: size still catches a Python writer's loss).
LOST_IDS = 64


@dataclass
class _Held:
    """What arrived for one unknown id: write arguments, and the end's value and reply."""

    writes: list[tuple[Any, Any, Any]] = field(default_factory=list)
    chunks: int = 0
    bytes: int = 0
    end: Any = None
    reply: PendingReply | None = None
    sweeps: int = 0


class EarlyWrites:
    """The bounded store of the module's rules (the core decides what fits the offer)."""

    max_lost = LOST_IDS

    def __init__(self) -> None:
        self.held: dict[str, _Held] = {}
        self.lost: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.chunks = 0
        self.bytes = 0

    def hold_write(self, stream_id: str, args: tuple[Any, Any, Any], size: int, offer: InitialCredit) -> bool:
        """Keep a write of ``size`` bytes if it fits the offer (else nothing changes)."""
        entry = self.held.get(stream_id)
        if (
            stream_id in self.lost
            or size > offer.size
            or self.chunks >= offer.credits
            or (entry is None and len(self.held) >= offer.credits)
            or (entry is not None and entry.reply is not None)  # a write after its end
        ):
            return False
        if entry is None:
            entry = self.held[stream_id] = _Held()
        entry.writes.append(args)
        entry.chunks += 1
        entry.bytes += size
        self.chunks += 1
        self.bytes += size
        return True

    def hold_end(self, stream_id: str, value: Any, sized: bool, offer: InitialCredit) -> PendingReply | None:
        """Keep an end for an id with held writes, or a primed stream's (``sized``); its reply."""
        entry = self.held.get(stream_id)
        if entry is None:
            if not sized or stream_id in self.lost or len(self.held) >= offer.credits:
                return None
            entry = self.held[stream_id] = _Held()
        if entry.reply is not None:
            return None
        entry.end = value
        entry.reply = PendingReply()
        return entry.reply

    def claim(self, stream_id: str) -> tuple[_Held | None, bool]:
        """``stream_id``'s placeholder arrived: what was held for it, and whether it was lost."""
        lost = stream_id in self.lost
        if lost:
            del self.lost[stream_id]
        return self.pop(stream_id), lost

    def pop(self, stream_id: Any) -> _Held | None:
        entry = self.held.pop(stream_id, None) if isinstance(stream_id, str) else None
        if entry is not None:
            self.chunks -= entry.chunks
            self.bytes -= entry.bytes
        return entry

    def lose(self, stream_id: str) -> None:
        """Drop what is held for ``stream_id`` and remember the id."""
        _refuse(self.pop(stream_id), stream_id)
        self.lost[stream_id] = None
        self.lost.move_to_end(stream_id)
        while len(self.lost) > LOST_IDS:
            self.lost.popitem(last=False)

    def lose_all(self) -> None:
        for stream_id in list(self.held):
            self.lose(stream_id)

    def sweep(self, limit: int) -> None:
        """One idle sweep: ids held for more than ``limit`` sweeps are lost."""
        for stream_id, entry in list(self.held.items()):
            entry.sweeps += 1
            if entry.sweeps > limit:
                self.lose(stream_id)

    def forget(self) -> None:
        """Drop everything, lost ids too (a suspension or the connection's end)."""
        for stream_id in list(self.held):
            _refuse(self.pop(stream_id), stream_id)
        self.lost.clear()


def compact(value: Any) -> tuple[bool, Any]:
    """A held write's marker or a held end's value, kept only in the small form sio_stream peers
    send (``None``, or a dict of a few short keys to ints or short strings: a digest's name or
    value, ``left``, ``size``): (whether it is that form, the value to keep)."""
    if value is None:
        return True, None
    if not isinstance(value, dict) or len(value) > MAX_HELD_KEYS:
        return False, None
    kept: dict[str, Any] = {}
    for key, item in value.items():
        small = (isinstance(item, int) and not isinstance(item, bool) and abs(item) < 2**63) or (
            isinstance(item, str) and len(item) <= MAX_HELD_TEXT
        )
        if not isinstance(key, str) or len(key) > MAX_HELD_TEXT or not small:
            return False, None
        kept[key] = item
    return True, kept


def _refuse(entry: _Held | None, stream_id: str) -> None:
    if entry is not None and entry.reply is not None:
        entry.reply.resolve(f"invalid stream id: {stream_id}")


class _Core(Protocol):
    config: CoreConfig
    peer_features: frozenset[str]
    initial_offer: InitialCredit | None
    closed: bool
    suspended: bool
    early: EarlyWrites

    def _early_offer(self, stream_id: Any) -> InitialCredit | None: ...

    def receive_write(
        self, stream_id: Any, chunk: Any, encoding: Any = None, marker: Any = None
    ) -> str | None: ...

    def receive_end(self, stream_id: Any, digest: Any = None) -> Any: ...

    def fail(
        self, stream: StreamCore, error: StreamError, *, notify: bool = True, keep_inbox: bool = False
    ) -> None: ...

    def _refuse(self, stream: StreamCore, message: str) -> str: ...

    def _check_final_size(self, stream: StreamCore, size: Any) -> Any: ...


class EarlyMixin:
    """The early-write and final-size methods of :class:`~sio_stream.core._core.ProtocolCore`."""

    def _early_offer(self: _Core, stream_id: Any) -> InitialCredit | None:
        """The offer that may hold an early event for ``stream_id`` (``None``: refuse it)."""
        offer = self.initial_offer
        if offer is None or self.closed or self.suspended or not isinstance(stream_id, str) or not stream_id:
            return None
        return offer if FEATURE_INITIAL_CREDIT in self.peer_features else None

    def _early_write(self: _Core, stream_id: Any, chunk: Any, encoding: Any, marker: Any) -> str | None:
        """A write for an id we do not know: held (``None``, an empty ack) or refused."""
        refusal = f"invalid stream id: {stream_id}"
        offer = self._early_offer(stream_id)
        if offer is None:
            return refusal
        # Held as the bytes it decodes to and a marker of the small form (see compact()): what
        # is held is what the offer counted, whatever else the peer's JSON carried.
        small, marker = compact(marker)
        try:
            data: bytes | None = decode_chunk(chunk, encoding, False)
        except InvalidChunkError:
            data = None
        if (
            data is None
            or not small
            or len(data) > self.config.max_read_chunk
            or not self.early.hold_write(stream_id, (data, None, marker), len(data), offer)
        ):
            self.early.lose(stream_id)
            return refusal
        return None

    def _early_end(self: _Core, stream_id: Any, value: Any) -> Any:
        """An end for an id we do not know: its :class:`PendingReply` when held, else the refusal."""
        offer = self._early_offer(stream_id)
        small, value = compact(value)
        if offer is not None and small:
            sized = isinstance(value, dict) and FINAL_SIZE_KEY in value
            reply = self.early.hold_end(stream_id, value, sized, offer)
            if reply is not None:
                return reply
        return f"invalid stream id: {stream_id}"

    def _deliver_early(self: _Core, stream: StreamCore, entry: _Held | None, lost: bool) -> None:
        """``stream``'s placeholder was decoded: apply what came for it before (see the module)."""
        if lost and stream.error is None:
            self.fail(
                stream,
                IntegrityError(
                    f"writes of stream {stream.id} came before its event, beyond the initial "
                    "credit, and were lost"
                ),
            )
        if entry is None:
            return
        if stream.error is None and not stream.initial_credit:
            self.fail(
                stream, RemoteProtocolError(f"writes before the event of stream {stream.id}, without credit")
            )
        for args in entry.writes:
            if stream.error is not None:
                break
            self.receive_write(stream.id, *args)
        if entry.reply is None:
            return
        if stream.error is not None:
            entry.reply.resolve(stream.error.wire_message)
            return
        answer = self.receive_end(stream.id, entry.end)
        if isinstance(answer, PendingReply):
            answer.on_done(entry.reply.resolve)
        else:
            entry.reply.resolve(answer)

    def _end_value(self: _Core, stream: StreamCore, value: Any) -> tuple[Any, Any]:
        """A ``$stream-end`` value from a peer that announced ``initial-credit`` may carry the
        final size (from others it stays as it is): (the end's answer if it failed the stream,
        else ``None``; the value without it, ``None`` when nothing is left)."""
        if FEATURE_INITIAL_CREDIT not in self.peer_features or not isinstance(value, dict):
            return None, value
        if FINAL_SIZE_KEY not in value:
            return None, value
        rest = {key: item for key, item in value.items() if key != FINAL_SIZE_KEY}
        return self._check_final_size(stream, value[FINAL_SIZE_KEY]), rest or None

    def _check_final_size(self: _Core, stream: StreamCore, size: Any) -> Any:
        """A primed stream's end says its writer wrote ``size`` bytes: ``None`` when that is what
        arrived, else the end's answer (the stream failed)."""
        if stream.error is not None or stream.object_mode:
            return None
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return self._refuse(stream, f"bad final size {size!r} on stream {stream.id}")
        if size == stream.received_units:
            return None
        message = f"stream {stream.id} ended at {stream.received_units} bytes of its final size {size}"
        # The writer learns it from the end's ack; one that asks for none gets a $stream-error.
        self.fail(stream, IntegrityError(message), notify=FEATURE_UNACKED_WRITE not in self.peer_features)
        return {INTEGRITY_KEY: message}


def with_final_size(args: tuple[Any, ...], size: int) -> tuple[Any, ...]:
    """A primed stream's ``$stream-end`` arguments with its final size beside any digest."""
    value = dict(args[1]) if len(args) > 1 and isinstance(args[1], dict) else {}
    value[FINAL_SIZE_KEY] = size
    return (args[0], value)
