"""Negotiated ``resume``: application events (``$stream``) sent exactly once across a drop.

Socket.IO delivers a connection's events in order, so both ends number a session's
application events implicitly: the n-th ``$stream`` event one side sends is the n-th the other
receives. The sender keeps each event it emitted until it knows the event arrived; the receiver
counts what it received. At a resume each side reports its count (``"events"`` in its resume
hello) and the other sends again, in order and ahead of anything else, the events the count
does not cover, with the streams they carry started afresh (the peer never saw them). An event
that did arrive is never sent twice, one that did not is never lost.

What proves an event arrived while the connection is up (so that it is not kept forever):
its ack, or a ``$stream-read`` for a stream it carried (a reader reads only streams it was
told of), which also proves every earlier event arrived (in-order delivery, also across a
resume, where the unconfirmed ones are sent again first). Events that prove nothing (no ack,
no stream read) are kept up to ``MAX_UNCONFIRMED``; beyond that the oldest is forgotten and a
drop that loses it fails its streams, as without this record.

In a cluster another node's events reach the peer on this connection too (forwarded by
:mod:`sio_stream.cluster`): the peer counts them, so they are numbered here as well (see
:meth:`SentEvents.skip`), but never sent again: their streams live on the other node (which
resumes them with the session, or fails those the peer never got). Their answers are awaited
like ours, so that an answer the drop lost is sent again to the node that asked.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import Any

from ._streamcore import Outgoing

#: Events kept while nothing confirms them (an event is a few hundred bytes of arguments in
#: the usual case: about a stream, a name, some metadata).
MAX_UNCONFIRMED = 1000


class SentEvents:
    """The application events one end sent on a session and does not know arrived."""

    def __init__(self, cap: int = MAX_UNCONFIRMED) -> None:
        self.cap = cap
        #: Events sent on the session so far (the number of the last one).
        self.sent = 0
        #: ``(number, event, stream ids it carries)``, oldest first; the event is ``None`` for
        #: one another node sent (numbered, never sent again).
        self.kept: collections.deque[tuple[int, Outgoing | None, frozenset[str]]] = collections.deque()
        #: The newest unconfirmed event carrying each stream id.
        self._carriers: dict[str, int] = {}
        #: The highest number known to have arrived (everything up to it did).
        self.confirmed = 0
        #: The ack callbacks of events whose answer has not come: called once, by whichever
        #: comes first of python-socketio's ack and a reply sent again after a resume.
        self.awaiting: dict[int, _Once] = {}
        #: Callbacks of events lost for good at a resume (see :meth:`take_lost`).
        self._lost: list[_Once] = []

    def record(self, item: Outgoing, stream_ids: Iterable[str]) -> Outgoing:
        """``item`` is being emitted: number it, keep it, and return what to emit (``item``,
        or a copy whose ack callback first confirms the event)."""
        self.sent += 1
        number = self.sent
        ids = frozenset(stream_ids)
        self.kept.append((number, item, ids))
        for sid in ids:
            self._carriers[sid] = number
        if len(self.kept) > self.cap:
            self._forget_oldest()
        if item.on_ack is None:
            return item
        return Outgoing(item.event, item.args, self._await(number, item.on_ack))

    def _await(self, number: int, on_ack: Callable[..., None]) -> Callable[..., None]:
        """Await the answer to event ``number``: the ack callback to emit it with."""
        once = _Once(on_ack)
        self.awaiting[number] = once
        if len(self.awaiting) > self.cap:
            # A peer that never answers must not make the record grow: the oldest answer can
            # no longer be sent again after a resume (its own ack still works).
            del self.awaiting[next(iter(self.awaiting))]

        def confirm_then(*args: Any) -> None:
            self.confirm(number)
            self.awaiting.pop(number, None)
            once(*args)

        return confirm_then

    def skip(self, on_ack: Callable[..., None] | None = None) -> Callable[..., None] | None:
        """Another node's event went to the peer on this connection: number it with ours (the
        peer counts every event it receives) and keep a place for it that a replay passes over.
        With ``on_ack`` (the event asks for an answer) its answer is awaited as ours are: the
        callback to emit it with, which an answer sent again after a resume calls too."""
        self.sent += 1
        number = self.sent
        self.kept.append((number, None, frozenset()))
        if len(self.kept) > self.cap:
            self._forget_oldest()
        return None if on_ack is None else self._await(number, on_ack)

    def replied(self, number: int, args: tuple[Any, ...]) -> bool:
        """The answer to event ``number`` came (its ack, or a reply sent again after a resume):
        call its callback unless an answer came already. Returns whether it was awaited."""
        callback = self.awaiting.pop(number, None)
        if callback is None:
            return False
        callback(*args)
        return True

    def awaited(self) -> list[int]:
        """The events whose answer has not come, for our resume hello (``"awaiting"``)."""
        return sorted(self.awaiting)

    def confirm(self, number: int) -> None:
        """Every event up to ``number`` arrived."""
        if number <= self.confirmed:
            return
        self.confirmed = number
        while self.kept and self.kept[0][0] <= number:
            self._forget_oldest()

    def stream_used(self, stream_id: Any) -> None:
        """The peer read (or wrote) a stream: the event that carried it arrived."""
        number = self._carriers.get(stream_id) if isinstance(stream_id, str) else None
        if number is not None:
            self.confirm(number)

    def forget(self) -> None:
        """The session cannot resume: keep nothing (the numbering goes on; acks still come
        through their own callbacks)."""
        self.kept.clear()
        self._carriers.clear()
        self.awaiting.clear()

    def _forget_oldest(self) -> None:
        number, _item, ids = self.kept.popleft()
        for sid in ids:
            if self._carriers.get(sid) == number:
                del self._carriers[sid]

    def unreceived(self, received: Any) -> list[tuple[Outgoing, frozenset[str]]] | None:
        """The peer received ``received`` events of ours: the events to send again, in order,
        numbered from ``received + 1`` once sent again. ``None`` when they cannot all be sent
        (the count is not a count, it is beyond what we sent, or events it needs were forgotten):
        nothing is sent again then, and the numbering restarts from the peer's count."""
        count = received if isinstance(received, int) and not isinstance(received, bool) else -1
        if count < 0 or count > self.sent:
            return None
        missing = self.sent - count
        if missing > len(self.kept):
            self._restart(count)
            return None
        self.confirm(count)
        # Another node's events are not ours to send again: the peer never gets them, and the
        # numbering restarts from its count, so ours that follow keep their place.
        again = [(item, ids) for _number, item, ids in self.kept if item is not None]
        for number, item, _ids in self.kept:
            once = self.awaiting.pop(number, None)  # ours: awaited again when sent again (record())
            if item is None and once is not None:
                self._lost.append(once)  # another node's, never sent again: its answer never comes
        self.kept.clear()
        self._carriers.clear()
        self.sent = count  # each is numbered again as it goes out (record())
        return again

    def _restart(self, count: int) -> None:
        self.kept.clear()
        self._carriers.clear()
        self.sent = count
        self.confirmed = min(self.confirmed, count)
        # The events beyond the peer's count are lost for good: their answers never come, and
        # their numbers go to the events sent from now on.
        for number in [n for n in self.awaiting if n > count]:
            self._lost.append(self.awaiting.pop(number))

    def take_lost(self) -> list[Callable[..., None]]:
        """The ack callbacks of events a resume could not send again (forgotten beyond
        ``MAX_UNCONFIRMED``): the caller fails them, or their ``call()`` would wait forever."""
        lost, self._lost = self._lost, []
        return list(lost)

    def __len__(self) -> int:
        return len(self.kept)


class _Once:
    """An ack callback that runs at most once (an answer may come twice: python-socketio's ack
    racing a reply sent again after a resume)."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[..., None]) -> None:
        self.callback: Callable[..., None] | None = callback

    def __call__(self, *args: Any) -> None:
        callback, self.callback = self.callback, None
        if callback is not None:
            callback(*args)


#: A kept answer whose handler still runs.
_RUNNING: Any = object()
#: Answers kept while nothing says the peer has them (a few hundred bytes each as a rule).
MAX_KEPT_ANSWERS = 1000


class Answers:
    """The answers (ack arguments) this end gave to the peer's application events, kept so
    that an answer lost in a drop can be sent again after the resume (``"awaiting"`` in the
    peer's resume hello lists the events it still waits for)."""

    def __init__(self, cap: int = MAX_KEPT_ANSWERS) -> None:
        self.cap = cap
        #: Event number -> its ack arguments (``_RUNNING`` while the handler runs).
        self.kept: collections.OrderedDict[int, Any] = collections.OrderedDict()
        #: Events the peer waits for whose handler still runs: answered again when it ends.
        self.wanted: set[int] = set()

    def forget(self) -> None:
        """The session cannot resume: keep nothing."""
        self.kept.clear()
        self.wanted.clear()

    def started(self, number: int) -> None:
        self.kept[number] = _RUNNING
        while len(self.kept) > self.cap:
            old, _answer = self.kept.popitem(last=False)
            self.wanted.discard(old)

    def answered(self, number: int, args: tuple[Any, ...]) -> bool:
        """The handler of event ``number`` answered ``args``: keep them; True when the peer
        already asked for them again (after a resume): send them now."""
        if number in self.kept:
            self.kept[number] = args
        if number in self.wanted:
            self.wanted.discard(number)
            return True
        return False

    def asked(self, numbers: Any, received: int) -> list[tuple[int, tuple[Any, ...] | None]]:
        """The peer's resume hello waits for the answers to ``numbers``: those to send now
        (``None``: forgotten, the peer's call fails). Every other answer up to ``received`` the
        peer has: forgotten. Events beyond ``received`` never arrived: the peer sends them again."""
        listed = numbers[: self.cap] if isinstance(numbers, list) else []  # we send at most cap
        wanted = {n for n in listed if isinstance(n, int) and not isinstance(n, bool)}
        for number in [n for n in self.kept if n <= received and n not in wanted]:
            del self.kept[number]
        now: list[tuple[int, tuple[Any, ...] | None]] = []
        for number in sorted(wanted):
            if not 0 < number <= received:
                continue
            answer = self.kept.get(number)
            if answer is _RUNNING:
                self.wanted.add(number)
            else:
                now.append((number, answer))
        return now
