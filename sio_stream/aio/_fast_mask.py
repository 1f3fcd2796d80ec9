"""Uploads from an asyncio client without a fresh copy of every chunk: a cheaper masked frame.

A client masks every websocket frame it sends (RFC 6455, section 5.3). aiohttp's client
(python-engineio's websocket transport on asyncio) masks a copy of the payload with its C helper,
then sends ``header + mask + masked``: one more copy of the whole payload into a new object. For a
512 KiB chunk that object is fresh memory the kernel maps page by page: 1.15 CPU s per GiB on the
event loop of a ``sio-stream put`` (cProfile, ``_write_websocket_frame``), more than the rest of
the upload's loop, against 0.05 for the masking and the copy it needs (issue 24).

:func:`configure` makes one engine.io client write each large frame as two transport writes, the
header with its mask, then the masked copy: the same bytes on the wire, one copy fewer. The hook
is the client's own ``_connect_websocket``: each websocket it opens (a reconnect opens another)
gets the frame writer as an attribute of its own aiohttp writer. Nothing global changes; other
clients, and an aiohttp whose writer looks otherwise, are left alone.
"""

from __future__ import annotations

import inspect
import struct
from collections.abc import Callable
from functools import partial
from typing import Any

#: Frames smaller than this keep aiohttp's own path (one write; the copy is cheap there). At least
#: 65536: the header written here always has the 64-bit length, the minimal form from there on.
LARGE_FRAME = 64 * 1024
_DONE_ATTRIBUTE = "_sio_stream_fast_mask"
_HEADER = struct.Struct("!BBQL")  # FIN+opcode, MASK+127, 64-bit length, 32-bit mask


def configure(eio: Any) -> bool:
    """Make the websockets engine.io client ``eio`` opens write large frames with one copy fewer;
    return whether they will (False for a client whose connect step looks otherwise)."""
    if getattr(eio, _DONE_ATTRIBUTE, False):
        return True
    connect = getattr(eio, "_connect_websocket", None)
    if not inspect.iscoroutinefunction(connect):
        return False

    async def connect_websocket(*args: Any, **kwargs: Any) -> Any:
        connected = await connect(*args, **kwargs)
        if connected:
            install(getattr(eio, "ws", None))
        return connected

    eio._connect_websocket = connect_websocket
    setattr(eio, _DONE_ATTRIBUTE, True)
    install(getattr(eio, "ws", None))  # ss() after connect(): the websocket already open
    return True


def install(ws: Any) -> bool:
    """Give aiohttp client websocket ``ws`` the cheaper frame writer; return whether it has it."""
    writer: Any = getattr(ws, "_writer", None)
    original = getattr(writer, "_write_websocket_frame", None)
    mask = _aiohttp_mask()
    if (
        mask is None
        or not callable(original)
        or getattr(writer, "use_mask", None) is not True
        or not callable(getattr(writer, "get_random_bits", None))
        or not isinstance(getattr(writer, "_output_size", None), int)
        or getattr(writer, "transport", None) is None
    ):
        return False
    writer._write_websocket_frame = partial(_write_frame, writer, original, mask)
    return True


def _aiohttp_mask() -> Callable[[bytes, bytearray], None] | None:
    """aiohttp's masking function (C when its extensions are built), or None."""
    try:
        from aiohttp._websocket.helpers import websocket_mask
    except ImportError:
        return None
    return websocket_mask


def _write_frame(
    writer: Any,
    original: Callable[[bytes, int, int], None],
    mask: Callable[[bytes, bytearray], None],
    message: bytes,
    opcode: int,
    rsv: int,
) -> None:
    """aiohttp's ``_write_websocket_frame(message, opcode, rsv)`` for a masked frame of at least
    :data:`LARGE_FRAME` bytes; smaller ones, and a closing transport (aiohttp raises its own
    error), go to ``original``."""
    length = len(message)
    transport = writer.transport
    if length < LARGE_FRAME or transport.is_closing():
        original(message, opcode, rsv)
        return
    bits = writer.get_random_bits()
    header = _HEADER.pack(0x80 | rsv | opcode, 0x80 | 127, length, bits)
    masked = bytearray(message)
    mask(header[-4:], masked)
    transport.write(header)
    transport.write(masked)
    writer._output_size += len(header) + length
