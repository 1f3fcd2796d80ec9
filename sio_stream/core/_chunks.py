"""Chunks on the wire: what a ``$stream-write`` may carry, and how bytes are cut and joined.

A byte stream's chunk is ``bytes`` (a Socket.IO binary attachment), or text in a Node
encoding (``base64`` from ``forceBase64`` peers). An object-mode chunk is any JSON value.
"""

from __future__ import annotations

import binascii
from collections import deque
from typing import Any

from .._errors import InvalidChunkError
from ._wire import BASE64, BUFFER, UTF8

# Node's text encodings that Python names differently (Buffer.from(string, encoding)).
_TEXT_CODECS = {
    "utf8": "utf-8",
    "utf-8": "utf-8",
    "ascii": "ascii",
    "latin1": "latin-1",
    "binary": "latin-1",
    "ucs2": "utf-16-le",
    "ucs-2": "utf-16-le",
    "utf16le": "utf-16-le",
    "utf-16le": "utf-16-le",
}
_URL_TO_BASE64 = str.maketrans("-_", "+/")

#: Every encoding Node's ``Buffer`` knows, lower-case (Node compares them case-insensitively).
NODE_ENCODINGS = frozenset({*_TEXT_CODECS, BASE64, "base64url", "hex"})


def decode_chunk(chunk: Any, encoding: Any, object_mode: bool) -> Any:
    """The value a reader delivers for an incoming chunk; raises :class:`InvalidChunkError`."""
    if object_mode:
        if chunk is None:
            # Node ends a stream on push(null) and refuses to write null: no peer sends it.
            raise InvalidChunkError("an object-mode stream cannot carry a null chunk")
        return chunk
    if isinstance(chunk, (bytes, bytearray)):
        return bytes(chunk)
    if isinstance(chunk, str):
        # Any JSON value may arrive as the encoding: str() keeps the lookup hashable.
        name = str(encoding).lower() if encoding is not None else UTF8
        if name in (BASE64, "base64url"):
            try:
                if name != BASE64:  # Node writes base64url unpadded
                    chunk = chunk.translate(_URL_TO_BASE64) + "=" * (-len(chunk) % 4)
                return binascii.a2b_base64(chunk.encode("ascii"), strict_mode=True)
            except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
                raise InvalidChunkError(f"invalid {name} chunk: {exc}") from None
        if name == "hex":
            try:
                return bytes.fromhex(chunk)
            except ValueError as exc:
                raise InvalidChunkError(f"invalid hex chunk: {exc}") from None
        codec = _TEXT_CODECS.get(name)
        if codec is None:
            raise InvalidChunkError(f"unsupported chunk encoding: {encoding!r}")
        try:
            return chunk.encode(codec)
        except UnicodeEncodeError as exc:
            raise InvalidChunkError(f"chunk not encodable as {encoding}: {exc}") from None
    raise InvalidChunkError(f"a byte stream cannot carry a {type(chunk).__name__} chunk")


def wire_chunk(data: Any, object_mode: bool, force_base64: bool) -> tuple[Any, str]:
    """``(chunk, encoding)`` arguments of an outgoing ``$stream-write``."""
    if object_mode:
        return data, UTF8
    if force_base64:
        return binascii.b2a_base64(data, newline=False).decode("ascii"), BASE64
    return data, BUFFER


def as_bytes(data: Any) -> bytes:
    """What a byte stream accepts from ``write()``: bytes-like, or ``str`` as UTF-8 (Node's
    ``decodeStrings``); anything else raises :class:`InvalidChunkError`."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    raise InvalidChunkError(f"a byte stream accepts bytes, not {type(data).__name__}")


#: Nesting an object-mode value may have: python-socketio's encoder and a Python peer's decoder
#: recurse once per level, and a value that contains itself must be refused, not overflow the stack.
MAX_OBJECT_DEPTH = 500

# Values that need no walk (exact types: the fast path; subclasses take the slow one).
_LEAVES = frozenset({str, int, float, bool, type(None)})
_BINARY = (bytes, bytearray)


class _NotJson(Exception):
    """Raised inside :func:`as_object`'s walk; ``path`` grows as it unwinds (innermost key first)."""

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint
        self.path: list[Any] = []


def _check_json(value: Any, depth: int, in_tuple: bool) -> None:
    if depth > MAX_OBJECT_DEPTH:
        raise _NotJson(f"nested deeper than {MAX_OBJECT_DEPTH} levels (or it contains itself)")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotJson(f"dict key {key!r}", " (keys must be str)")
            if type(item) not in _LEAVES:
                try:
                    _check_json(item, depth + 1, in_tuple)
                except _NotJson as exc:
                    exc.path.append(key)
                    raise
    elif isinstance(value, (list, tuple)):
        in_tuple = in_tuple or isinstance(value, tuple)
        for index, item in enumerate(value):
            if type(item) not in _LEAVES:
                try:
                    _check_json(item, depth + 1, in_tuple)
                except _NotJson as exc:
                    exc.path.append(index)
                    raise
    elif isinstance(value, _BINARY):
        if in_tuple:
            # python-socketio finds binary attachments in lists and dicts only.
            raise _NotJson(f"{type(value).__name__} inside a tuple", " (use a list)")
    elif not isinstance(value, (str, int, float)) and value is not None:  # bool is an int
        hint = " (pass bytes(view))" if isinstance(value, memoryview) else ""
        raise _NotJson(type(value).__name__, hint)


def as_object(value: Any) -> Any:
    """What an object-mode stream accepts from ``write()``: one JSON value as python's ``json``
    encodes it (``None`` only inside another value; dict keys must be ``str``; floats may be
    infinite or NaN), with ``bytes`` and ``bytearray`` anywhere in lists and dicts (binary
    attachments). A ``memoryview`` is copied to ``bytes``. Anything else raises
    :class:`InvalidChunkError`. The walk costs about a microsecond per small object.
    """
    kind = type(value)
    if kind in _LEAVES or kind is bytes or kind is bytearray:
        if value is None:
            # Node ends a stream on push(null), so no peer could receive it as a value.
            raise InvalidChunkError("None cannot be written to an object-mode stream")
        return value
    if kind is memoryview:
        return value.tobytes()
    try:
        _check_json(value, 1, False)
    except _NotJson as exc:
        where = "".join(f"[{key!r}]" for key in reversed(exc.path[-8:]))
        more = "..." if len(exc.path) > 8 else ""
        at = f" at {more}{where}" if where else ""
        raise InvalidChunkError(f"not a JSON value: {exc.what}{at}{exc.hint}") from None
    return value


class ByteQueue:
    """A FIFO of byte strings with a running size; joins and splits without copying more than once."""

    __slots__ = ("_items", "_offset", "size")

    def __init__(self) -> None:
        self._items: deque[bytes] = deque()
        self._offset = 0  # bytes of the head item already taken
        self.size = 0

    def __len__(self) -> int:
        return len(self._items)

    def append(self, data: bytes) -> None:
        if data:
            self._items.append(data)
            self.size += len(data)

    def prepend(self, data: bytes) -> None:
        """Put ``data`` back in front of everything queued (a resumed stream's replay)."""
        if not data:
            return
        if self._offset:
            self._items[0] = self._items[0][self._offset :]
            self._offset = 0
        self._items.appendleft(data)
        self.size += len(data)

    def take(self, limit: int) -> bytes:
        """Remove and return up to ``limit`` bytes (at least one byte if any is queued)."""
        items = self._items
        if not items:
            return b""
        head = items[0]
        remaining = len(head) - self._offset
        if remaining >= limit:
            piece = head[self._offset : self._offset + limit]
            self._advance_head(limit, remaining)
            return piece
        parts = [head[self._offset :] if self._offset else head]
        total = remaining
        items.popleft()
        self._offset = 0
        while items and total + len(items[0]) <= limit:
            item = items.popleft()
            parts.append(item)
            total += len(item)
        if items and total < limit:
            want = limit - total
            parts.append(items[0][:want])
            self._offset = want
            total = limit
        self.size -= total
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def take_head(self, limit: int) -> tuple[bytes, bool]:
        """Up to ``limit`` bytes of the head item only; the flag says whether the item is used up."""
        head = self._items[0]
        remaining = len(head) - self._offset
        if remaining <= limit:
            piece = head[self._offset :] if self._offset else head
            self._items.popleft()
            self._offset = 0
            self.size -= remaining
            return piece, True
        piece = head[self._offset : self._offset + limit]
        self._advance_head(limit, remaining)
        return piece, False

    def _advance_head(self, count: int, remaining: int) -> None:
        if count == remaining:
            self._items.popleft()
            self._offset = 0
        else:
            self._offset += count
        self.size -= count

    def clear(self) -> None:
        self._items.clear()
        self._offset = 0
        self.size = 0
