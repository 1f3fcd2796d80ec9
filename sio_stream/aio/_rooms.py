"""Rooms that span server nodes: the names and the answer format the socket and the cluster share.

An emit to a room (or a list of sids and rooms) on a node of a cluster goes to this node's
members through the one-node fan-out, and to every other live node as **one** sub-stream of
that fan-out: the node is a recipient like a member (a :class:`RoomTarget`), and each chunk
crosses Redis once per node, whatever its number of members. The sub-stream travels on the
*node link*, an ordinary connection record (:class:`NodePeer`) whose packets are frames to that
node, so its credit window bounds what is in flight between the two nodes. The receiving node
resolves the room against its own members (python-socketio's rooms live on each node) and
relays the stream to them through its own fan-out, with the same ``skip_sid`` and ``max_lag``;
a node with no member refuses the stream (``$stream-error``), which drops it from the group.

When the emitter wants acks, its addressing carries a call id, and the receiving node sends each
member's ack as it comes, in a ``member`` frame (:func:`encode_answer`); the emitting node turns
it into ``callback(sid, *ack)`` (:class:`MemberCallback`) or keeps it in the target for
``call()``'s dict (:func:`flatten_answers`). Once every member answered or left, the node answers
the link's event itself (an empty ack): the frames of one node arrive in order, so every member's
answer is in by then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConnectionAbortedStreamError, HandlerError, StreamError, StreamTimeoutError
from ..core import _wire as wire

logger = logging.getLogger("sio_stream")

#: Kinds of failure a member's entry may carry, and the error each stands for.
_ERRORS: dict[str, type[StreamError]] = {
    "handler": HandlerError,
    "timeout": StreamTimeoutError,
    "aborted": ConnectionAbortedStreamError,
}


@dataclass(frozen=True)
class NodePeer:
    """The key of the connection record for the link to another node (never a sid: sids are
    strings)."""

    node: str

    def __str__(self) -> str:
        return f"node {self.node}"


@dataclass(eq=False)
class RoomTarget:
    """One other node as a recipient of a fan-out: the members it finds for ``to`` less
    ``skip``. Compared by identity: a fan-out keys its sub-streams and a call its futures by it."""

    node: str
    to: Any
    skip: Any
    max_lag: int | None = None
    #: The id the other node's ``member`` frames name (0: no acks wanted).
    call: int = 0
    #: Each member's ack value (a tuple for several, ``None`` for none) or error, as it came.
    answers: dict[str, Any] = field(default_factory=dict)
    #: Called with ``(sid, value)`` as each answer comes (an emit's callback), or ``None``.
    on_answer: Callable[[str, Any], Any] | None = None

    @property
    def peer(self) -> NodePeer:
        return NodePeer(self.node)

    def addressing(self) -> dict[str, Any]:
        """The first argument of the node link's ``$stream`` event (after the event's name)."""
        return {"to": self.to, "skip": self.skip, "max_lag": self.max_lag, "call": self.call}

    def answered(self, entry: Any) -> Any:
        """A member's answer arrived (an :func:`encode_answer` entry; a malformed one is
        skipped): kept, and handed to :attr:`on_answer`, whose result is returned."""
        decoded = _decode_answer(entry)
        if decoded is None:
            return None
        sid, value = decoded
        self.answers[sid] = value
        return None if self.on_answer is None else self.on_answer(sid, value)


def looks_like_sid(name: str) -> bool:
    """True for a name shaped like python-engineio's sids (20 URL-safe base64 characters): an
    emit to one that is no client anywhere fails at once instead of asking every node."""
    return len(name) == 20 and name.isascii() and name.replace("-", "").replace("_", "").isalnum()


def parse_addressing(value: Any) -> tuple[Any, Any, int | None, int]:
    """``(to, skip, max_lag, call id)`` of a node link's addressing; raises ``ValueError``."""
    if not isinstance(value, dict):
        raise ValueError(f"bad room addressing: {value!r}")
    to, skip, max_lag, call = value.get("to"), value.get("skip"), value.get("max_lag"), value.get("call")
    names = [to] if isinstance(to, str) else to
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"bad room: {to!r}")
    if isinstance(call, bool) or not isinstance(call, int):
        raise ValueError(f"bad call id: {call!r}")
    return to, skip, max_lag, call


def encode_answer(sid: str, value: Any) -> list[Any]:
    """A member's answer for a ``member`` frame: ``call()``'s value for it (its ack, or the
    error that stands for it) as ``[sid, "ok", [ack args]]`` or ``[sid, <kind>, message]``.
    Streams in a member's ack do not cross nodes: they are destroyed, and arrive as ``None``."""
    if isinstance(value, BaseException):
        kind = next((name for name, cls in _ERRORS.items() if isinstance(value, cls)), "aborted")
        message = value.wire_message if isinstance(value, StreamError) else type(value).__name__
        return [sid, kind, message]
    args = [] if value is None else list(value) if isinstance(value, tuple) else [value]
    return [sid, "ok", _without_streams(args)]


def _decode_answer(entry: Any) -> tuple[str, Any] | None:
    """The inverse of :func:`encode_answer`: ``(sid, value or error)``, ``None`` if malformed."""
    if not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[0], str):
        return None
    sid, kind, payload = entry
    if kind == "ok" and isinstance(payload, list):
        return sid, payload[0] if len(payload) == 1 else (tuple(payload) if payload else None)
    if kind in _ERRORS:
        return sid, _ERRORS[kind](str(payload), remote=True)
    return None


class MemberCallback:
    """An emit's ``callback(sid, *ack)``, called for the members of other nodes too: once per
    member that answered (a failed handler as a :class:`HandlerError`; members that left or
    never answered get no call, as on one node). A node's own final answer is no member's."""

    def __init__(self, callback: Callable[..., Any]) -> None:
        self.callback = callback

    def __call__(self, *args: Any) -> Any:
        if args and isinstance(args[0], RoomTarget):
            return None  # every member of that node has answered or left
        return self.callback(*args)

    def member(self, sid: str, value: Any) -> Any:
        if isinstance(value, BaseException) and not isinstance(value, HandlerError):
            return None
        return self.callback(sid, *(() if value is None else value if isinstance(value, tuple) else (value,)))


def flatten_answers(result: dict[Any, Any]) -> dict[Any, Any]:
    """``call()``'s dict with each node replaced by its members' answers. If a node failed
    before every member answered (it died, the call timed out), those that had not are missing:
    logged."""
    flat: dict[Any, Any] = {}
    for key, value in result.items():
        if not isinstance(key, RoomTarget):
            flat[key] = value
            continue
        if isinstance(value, BaseException):
            logger.warning("sio_stream: not every member on node %s answered: %s", key.node, value)
        flat.update(key.answers)
    return flat


def _without_streams(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_streams(item) for item in value]
    if isinstance(value, tuple):
        return [_without_streams(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_streams(item) for key, item in value.items()}
    destroy = getattr(value, "destroy", None)
    if destroy is not None and hasattr(value, "_core"):
        destroy(wire.CONNECTION_ABORTED)
        return None
    return value
