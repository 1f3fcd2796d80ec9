"""Frames between server nodes: a small JSON header, then binary parts as they are.

A frame is ``MAGIC``, the header's length (4 bytes, big-endian), the header as compact JSON,
then each binary part as its length (4 bytes) and its bytes. Binary values anywhere in the
header's ``args`` (chunks, bytes inside objects) are replaced by ``{BINARY_KEY: index}`` in the
JSON and travel as parts: never base64, never inside JSON. Pure functions; no I/O.
"""

from __future__ import annotations

import json
import struct
from typing import Any

MAGIC = b"SS1"
#: A message of several frames: ``BATCH_MAGIC``, then each frame as its length (4 bytes) and
#: its bytes. One publish and one pub/sub message for several frames: redis-py's per-message
#: work (parsing, timeouts, a task wake-up) is most of what a 256 KiB frame costs beyond its
#: copies, and batching made a stream across nodes 1.3-1.9x faster (benchmarks/cluster.py).
BATCH_MAGIC = b"SSB"
BINARY_KEY = "$sio_stream_binary"
#: Nesting deeper than this is refused (a forged frame must not exhaust the stack).
MAX_DEPTH = 64
_LENGTH = struct.Struct("!I")


class FrameError(ValueError):
    """A frame that is not one of ours (truncated, forged, or from another version)."""


#: A frame as :func:`encode` makes it, or as the pieces :func:`encode_pieces` gives.
Frame = bytes | list[bytes]


def encode(header: dict[str, Any], args: Any = ()) -> bytes:
    """One frame: ``header`` plus ``args`` (which may hold bytes at any depth)."""
    return b"".join(encode_pieces(header, args))


def encode_pieces(header: dict[str, Any], args: Any = ()) -> list[bytes]:
    """The frame of :func:`encode` as the pieces that make it, the binary parts among them as
    given: a chunk is then copied once, into the message :func:`batch` builds, not twice."""
    parts: list[bytes] = []
    body = dict(header, args=_strip(args, parts, 0))
    text = json.dumps(body, separators=(",", ":")).encode()
    out = [MAGIC, _LENGTH.pack(len(text)), text]
    for part in parts:
        out += (_LENGTH.pack(len(part)), part)
    return out


def size_of(frame: Frame) -> int:
    return len(frame) if isinstance(frame, bytes) else sum(map(len, frame))


def batch(frames: list[Frame]) -> bytes:
    """One message carrying ``frames`` in order (a single frame goes as it is)."""
    if len(frames) == 1:
        frame = frames[0]
        return frame if isinstance(frame, bytes) else b"".join(frame)
    out = [BATCH_MAGIC]
    for frame in frames:
        out.append(_LENGTH.pack(size_of(frame)))
        if isinstance(frame, bytes):
            out.append(frame)
        else:
            out += frame
    return b"".join(out)


def unbatch(message: bytes) -> list[memoryview]:
    """The frames of a message (one, unless it is a batch); raises :class:`FrameError` for a
    truncated batch."""
    view = memoryview(message)
    if bytes(view[: len(BATCH_MAGIC)]) != BATCH_MAGIC:
        return [view]
    frames: list[memoryview] = []
    offset = len(BATCH_MAGIC)
    while offset < len(view):
        if offset + _LENGTH.size > len(view):
            raise FrameError("truncated batch")
        (size,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + size > len(view):
            raise FrameError("truncated batch")
        frames.append(view[offset : offset + size])
        offset += size
    return frames


def decode(frame: bytes | memoryview) -> tuple[dict[str, Any], Any]:
    """``(header, args)`` of a frame; raises :class:`FrameError` for anything else."""
    if not isinstance(frame, (bytes, bytearray, memoryview)) or bytes(frame[: len(MAGIC)]) != MAGIC:
        raise FrameError("not a sio_stream frame")
    view = memoryview(frame)
    offset = len(MAGIC)
    try:
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        header = json.loads(bytes(view[offset : offset + length]))
        offset += length
        parts: list[bytes] = []
        while offset < len(view):
            (size,) = _LENGTH.unpack_from(view, offset)
            offset += _LENGTH.size
            if offset + size > len(view):
                raise FrameError("truncated binary part")
            parts.append(bytes(view[offset : offset + size]))
            offset += size
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"bad frame: {exc}") from None
    if not isinstance(header, dict) or "args" not in header:
        raise FrameError("bad frame header")
    args = _restore(header.pop("args"), parts, 0)
    return header, args


def _strip(value: Any, parts: list[bytes], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise FrameError(f"arguments nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, (bytes, bytearray, memoryview)):
        parts.append(bytes(value))
        return {BINARY_KEY: len(parts) - 1}
    if isinstance(value, (list, tuple)):
        return [_strip(item, parts, depth + 1) for item in value]
    if isinstance(value, dict):
        return {key: _strip(item, parts, depth + 1) for key, item in value.items()}
    return value


def _restore(value: Any, parts: list[bytes], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise FrameError(f"arguments nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return [_restore(item, parts, depth + 1) for item in value]
    if isinstance(value, dict):
        if len(value) == 1 and BINARY_KEY in value:
            index = value[BINARY_KEY]
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(parts):
                raise FrameError(f"bad binary part index: {index!r}")
            return parts[index]
        return {key: _restore(item, parts, depth + 1) for key, item in value.items()}
    return value
