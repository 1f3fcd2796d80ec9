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

When the emitter wants acks, the receiving node waits for every member's and answers the node
link's event with one list, :func:`encode_answers` (one entry per member), which the emitting
node turns back into one ``callback(sid, *ack)`` per member (:func:`member_callback`) or into
entries of ``call()``'s dict (:func:`flatten_answers`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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

    @property
    def peer(self) -> NodePeer:
        return NodePeer(self.node)

    def addressing(self, acks: bool) -> dict[str, Any]:
        """The first argument of the node link's ``$stream`` event (after the event's name)."""
        return {"to": self.to, "skip": self.skip, "max_lag": self.max_lag, "acks": acks}


def looks_like_sid(name: str) -> bool:
    """True for a name shaped like python-engineio's sids (20 URL-safe base64 characters): an
    emit to one that is no client anywhere fails at once instead of asking every node."""
    return len(name) == 20 and name.isascii() and name.replace("-", "").replace("_", "").isalnum()


def parse_addressing(value: Any) -> tuple[Any, Any, int | None, bool]:
    """``(to, skip, max_lag, acks)`` of a node link's addressing; raises ``ValueError``."""
    if not isinstance(value, dict):
        raise ValueError(f"bad room addressing: {value!r}")
    to, skip, max_lag = value.get("to"), value.get("skip"), value.get("max_lag")
    names = [to] if isinstance(to, str) else to
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"bad room: {to!r}")
    return to, skip, max_lag, bool(value.get("acks"))


def encode_answers(result: dict[Any, Any]) -> list[list[Any]]:
    """A node's answer for its members: ``call()``'s dict of sid to ack value (or error) as
    ``[sid, "ok", [ack args]]`` or ``[sid, <kind>, message]`` entries. Streams in a member's
    ack do not cross nodes: they are destroyed, and arrive as ``None``."""
    answers: list[list[Any]] = []
    for sid, value in result.items():
        if isinstance(value, BaseException):
            kind = next((name for name, cls in _ERRORS.items() if isinstance(value, cls)), "aborted")
            message = value.wire_message if isinstance(value, StreamError) else type(value).__name__
            answers.append([sid, kind, message])
        else:
            args = [] if value is None else list(value) if isinstance(value, tuple) else [value]
            answers.append([sid, "ok", _without_streams(args)])
    return answers


def decode_answers(answers: Any) -> dict[str, Any]:
    """The inverse of :func:`encode_answers`: sid to ack value (a tuple for several, ``None``
    for none) or to the error it stands for. Malformed entries are skipped."""
    result: dict[str, Any] = {}
    for entry in answers if isinstance(answers, list) else ():
        if not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[0], str):
            continue
        sid, kind, payload = entry
        if kind == "ok" and isinstance(payload, list):
            result[sid] = payload[0] if len(payload) == 1 else (tuple(payload) if payload else None)
        elif kind in _ERRORS:
            result[sid] = _ERRORS[kind](str(payload), remote=True)
    return result


def member_callback(callback: Callable[..., Any]) -> Callable[..., Any]:
    """An emit's ``callback(sid, *ack)`` that also takes a node's answer for its members:
    one call per member that answered (a failed handler as a :class:`HandlerError`; members
    that left or never answered get no call, as on one node)."""

    def deliver(*args: Any) -> Any:
        if not args or not isinstance(args[0], RoomTarget):
            return callback(*args)
        pending = []
        for member, value in decode_answers(args[1] if len(args) > 1 else None).items():
            if isinstance(value, HandlerError) or not isinstance(value, BaseException):
                ack = () if value is None else value if isinstance(value, tuple) else (value,)
                result = callback(member, *ack)
                if inspect.isawaitable(result):
                    pending.append(result)
        return _each(pending) if pending else None

    return deliver


async def _each(awaitables: list[Awaitable[Any]]) -> None:
    for awaitable in awaitables:
        await awaitable


def flatten_answers(result: dict[Any, Any]) -> dict[Any, Any]:
    """``call()``'s dict with each node's answer replaced by its members' entries. A node that
    failed before answering (it died, the call timed out) has no members to report: logged."""
    flat: dict[Any, Any] = {}
    for key, value in result.items():
        if not isinstance(key, RoomTarget):
            flat[key] = value
        elif isinstance(value, BaseException):
            logger.warning("sio_stream: no answer from the members on node %s: %s", key.node, value)
        else:
            flat.update(decode_answers(value))
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
