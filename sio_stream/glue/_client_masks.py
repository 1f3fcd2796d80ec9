"""Uploads from a sync ``socketio.Client`` without websocket-client's slow mask.

python-engineio's sync client speaks websocket through websocket-client, which masks every frame
(RFC 6455, section 5.3: a client must) by converting the payload and its key's pattern to
``array``s and then to integers: about 200 MB/s on the project's machine, most of the client's
CPU in an upload (benchmarks/sync.py), and it copies the frame twice more (the key in front,
the header in front) and once per partial ``send()``. :class:`MaskedFrames` writes large data
frames with :func:`~sio_stream.glue._xor_mask.xor_mask` (about twice as fast) and sends the
header and the payload as they are, through memoryviews; other frames (small, control,
fragments) take websocket-client's own path.

:func:`configure` hands one engine.io client that class through its
``websocket_extra_options["class_"]`` (websocket-client's ``create_connection`` builds its
``WebSocket`` from it): nothing global changes, and a client whose application chose its own
class, or a websocket-client that looks otherwise, is left alone.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from ._xor_mask import xor_mask

#: Frames shorter than this keep websocket-client's path: the copies are nothing there.
_LARGE = 4096
_FIN = 0x80
_MASKED = 0x80
_classes: dict[type, type] = {}


def configure(eio: Any) -> bool:
    """Make engine.io client ``eio`` mask its websocket's large frames fast; return whether it
    does (False when websocket-client is missing or the application set its own class)."""
    options = getattr(eio, "websocket_extra_options", None)
    if not isinstance(options, dict):
        return False
    if "class_" in options:
        chosen = options["class_"]  # ours, or a class built on ours
        return isinstance(chosen, type) and any(issubclass(chosen, cls) for cls in _classes.values())
    try:
        import websocket
    except ImportError:
        return False
    base = getattr(websocket, "WebSocket", None)
    abnf = getattr(websocket, "ABNF", None)
    if not isinstance(base, type) or not callable(getattr(base, "_send", None)) or abnf is None:
        return False
    options["class_"] = masked_frames_class(base, abnf)
    return True


def is_ours(cls: type) -> bool:
    """Whether ``cls`` is a class :func:`configure` gave a client (other fixes may build on it)."""
    return cls in _classes.values()


def masked_frames_class(base: type, abnf: Any) -> type:
    """websocket-client's ``WebSocket`` class ``base`` with :func:`send_frame` (one per base)."""
    cls = _classes.get(base)
    if cls is None:
        attributes = {
            "send_frame": _send_frame,
            "_plain_send_frame": getattr(base, "send_frame"),  # noqa: B009 (a type of no known shape)
            "_data_opcodes": frozenset({abnf.OPCODE_TEXT, abnf.OPCODE_BINARY}),
        }
        cls = type("MaskedFrames", (base,), attributes)
        _classes[base] = cls
    return cls


def header(opcode: int, size: int) -> bytes:
    """The first bytes of a final, masked frame of ``size`` bytes (before its key)."""
    if size < 126:
        return struct.pack("!BB", _FIN | opcode, _MASKED | size)
    if size < 1 << 16:
        return struct.pack("!BBH", _FIN | opcode, _MASKED | 126, size)
    return struct.pack("!BBQ", _FIN | opcode, _MASKED | 127, size)


def _send_frame(self: Any, frame: Any) -> int:
    """``WebSocket.send_frame``: the same bytes on the wire, a large data frame masked fast."""
    data = frame.data
    if not (
        isinstance(data, (bytes, bytearray))
        and len(data) >= _LARGE
        and frame.mask_value
        and frame.fin
        and not (frame.rsv1 or frame.rsv2 or frame.rsv3)
        and frame.opcode in self._data_opcodes
    ):
        return int(self._plain_send_frame(frame))
    key = (self.get_mask_key or os.urandom)(4)
    if isinstance(key, str):
        key = key.encode("latin-1")  # websocket-client accepts a str key
    head = header(frame.opcode, len(data)) + key
    with self.lock:
        for part in (head, xor_mask(data, key)):
            view = memoryview(part)
            while view:
                view = view[self._send(view) :]
    return len(head) + len(data)
