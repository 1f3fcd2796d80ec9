"""Initial credit (negotiated ``initial-credit``): credit a reader gives a stream before it
knows the stream, so that a new stream's data follows its event instead of waiting a round trip
for its first ``$stream-read`` (QUIC's initial_max_stream_data). A mixin of
:class:`~sio_stream.core._core.ProtocolCore`.

The rule, per connection and direction (one offer, taken once):

* the reader **offers** it in its hello, ``"initial": {"credits": N, "size": S}`` (S: its
  ``max_chunk``), when the process's share of offers has room (:meth:`Budget.offer`: at most
  1/8 of the process limit over all connections; an offer holds no bytes until it is taken);
* the writer **takes** it with the first byte stream it creates after the offer came: the
  stream's placeholder says how many credits it took, ``{"$stream": id, "credit": k}``
  (``k <= N``, within the writer's own credit-limit), and the writer holds k credits of S bytes
  from then on, as if the reader had sent ``$stream-read(id, S, k)``;
* the reader, decoding that placeholder, **primes** the stream: it reserves the k credits
  (always: the peer holds them already, so this may go beyond the budget by that much), opens
  its window at k chunks and starts reading it, whether or not its application has asked yet.
  From there the stream is an ordinary one: each chunk consumed gives its credit back, and the
  window grows as any other (see _tuning.py).

A placeholder's ``credit`` that was not offered (no offer, one already taken, an object-mode
stream, not a whole number from 1 to N) fails that stream (``RemoteProtocolError``,
``$stream-error`` to the peer; the connection stays up). The offer needs ``batch-read`` and
``read-size`` (the writer's chunks stay within S).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .._errors import RemoteProtocolError, StreamError
from ._budget import Budget
from ._config import (
    FEATURE_BATCH_READ,
    FEATURE_INITIAL_CREDIT,
    FEATURE_READ_SIZE,
    CoreConfig,
    floor_bytes,
)
from ._state import ReadInput
from ._streamcore import StreamCore
from ._wire import positive_ints

#: The features the offer needs on both sides besides its own.
NEEDED = frozenset({FEATURE_INITIAL_CREDIT, FEATURE_BATCH_READ, FEATURE_READ_SIZE})


@dataclass(frozen=True)
class InitialCredit:
    """An offer: ``credits`` credits of ``size`` bytes each."""

    credits: int
    size: int

    @property
    def bytes(self) -> int:
        return self.credits * self.size

    def to_wire(self) -> dict[str, int]:
        return {"credits": self.credits, "size": self.size}

    @classmethod
    def from_wire(cls, value: Any) -> InitialCredit | None:
        """The peer's offer, ``None`` when malformed (nothing is then taken)."""
        numbers = positive_ints(value, "credits", "size")
        return None if numbers is None else cls(*numbers)


def offer_size(config: CoreConfig) -> InitialCredit | None:
    """What a reader with ``config`` offers at most: ``initial_credit`` bytes, within its largest
    window and half the connection's shared pool, in whole chunks of ``max_chunk``."""
    largest = max(config.max_window, config.window * config.max_chunk)
    pool = config.max_buffered - floor_bytes(config) * config.max_streams
    size = min(config.initial_credit, largest, pool // 2)
    credits = size // config.max_chunk if config.max_chunk > 0 else 0
    return InitialCredit(credits, config.max_chunk) if credits > 0 else None


class _Core(Protocol):
    config: CoreConfig
    budget: Budget
    peer_features: frozenset[str]
    peer_known: bool
    initial_offer: InitialCredit | None
    initial_offered: bool
    peer_offer: InitialCredit | None
    peer_offer_seen: bool

    def _write_credit_limit(self, stream: StreamCore, read_size: int) -> int: ...

    def _fit_connection_window(self, stream: StreamCore, size: int) -> None: ...

    def fail(
        self, stream: StreamCore, error: StreamError, *, notify: bool = True, keep_inbox: bool = False
    ) -> None: ...


class InitialMixin:
    """The ``initial-credit`` methods of :class:`~sio_stream.core._core.ProtocolCore`."""

    initial_offer: InitialCredit | None
    peer_offer: InitialCredit | None

    def _hello_offer(self: _Core, features: frozenset[str]) -> dict[str, int] | None:
        """The offer our hello carries (made once per connection, kept until taken)."""
        if FEATURE_INITIAL_CREDIT not in features or (self.peer_known and not self.peer_features >= NEEDED):
            return None  # a server answering a hello that cannot take it
        if not self.initial_offered:
            self.initial_offered = True
            wanted = offer_size(self.config)
            if wanted is not None and self.budget.offer(wanted.bytes):
                self.initial_offer = wanted
        return None if self.initial_offer is None else self.initial_offer.to_wire()

    def forwarded_offer(self: _Core) -> None:
        """This core is another node's client, whose packets its own node forwards (cluster): the
        client may have taken its node's offer with a stream it returns here in an ack, so this
        record accepts one credit within the offer its node made (the nodes share settings).
        Its node counted that offer in its own process share; here it is reserved on arrival."""
        if not self.initial_offered and self.peer_features >= NEEDED:
            self.initial_offered = True
            self.initial_offer = offer_size(self.config)

    def _receive_offer(self: _Core, value: Any) -> None:
        """The peer's hello came: keep its offer (the first hello's only: a resume's hello
        repeats it, and it may have been taken meanwhile), and withdraw ours if it cannot use it."""
        if not self.peer_features >= NEEDED:
            if self.initial_offer is not None:
                self.budget.withdraw(self.initial_offer.bytes)
                self.initial_offer = None
            return
        if not self.peer_offer_seen:
            self.peer_offer_seen = True
            self.peer_offer = InitialCredit.from_wire(value)

    def forget_peer_offer(self: _Core) -> None:
        """The hello that carried the peer's offer asked to resume another session, and was
        refused: that offer was the old session's (the client drops it with the session), so
        none is taken here, and the client's next hello, if it sends one, offers anew."""
        self.peer_offer, self.peer_offer_seen = None, False

    def _take_offer(self: _Core, stream: StreamCore) -> int:
        """Writer: ``stream`` is being sent; the credits it takes from the peer's offer (0: none)."""
        offer = self.peer_offer
        if offer is None or stream.object_mode or not self.peer_features >= NEEDED:
            return 0
        self.peer_offer = None
        stream.credit.limit = self._write_credit_limit(stream, offer.size)
        credits = min(offer.credits, stream.credit.limit)
        stream.credit.granted(credits)
        stream.read_size = offer.size
        stream.initial_credit = credits
        return credits

    def _prime(self: _Core, stream: StreamCore, credit: Any) -> None:
        """Reader: the peer says ``stream`` took ``credit`` credits of our offer (see the module)."""
        offer = self.initial_offer
        problem = None
        if offer is None or FEATURE_INITIAL_CREDIT not in self.peer_features:
            problem = "initial credit that was not offered"
        elif stream.object_mode:
            problem = "initial credit on an object-mode stream"
        elif isinstance(credit, bool) or not isinstance(credit, int) or not 1 <= credit <= offer.credits:
            problem = f"bad initial credit {credit!r} (offered {offer.credits})"
        if problem is not None:
            self.fail(stream, RemoteProtocolError(f"{problem} on stream {stream.id}"))
            return
        assert offer is not None and stream.window is not None and stream.holding is not None
        self.initial_offer = None
        self.budget.withdraw(offer.bytes)
        stream.move_read(ReadInput.OPEN)
        window = stream.window
        window.size = max(window.size, credit)
        window.open(credit)
        stream.holding.reserve(credit * offer.size, force=True)
        window.grant(credit)
        stream.tuner.round_trip.unstamped(credit)
        stream.grant_size = offer.size
        stream.initial_credit = credit
        self._fit_connection_window(stream, window.size * offer.size)
