"""Uploads to an eventlet server at the speed of the rest of the stack: a fast websocket unmask.

Every frame a client sends is masked (RFC 6455, section 5.3). eventlet's websocket (python-engineio's
driver in eventlet mode) unmasks a frame one byte at a time in a Python generator: about 5 MB/s
of upload on one core, whatever the application does (benchmarks/sync.py: 4.8 MB/s with
sio_stream, 4.1 MB/s with hand-rolled emits). :func:`unmask` does the same XOR on whole Python
integers (:mod:`sio_stream.glue._xor_mask`).

:func:`configure` gives one engine.io server in eventlet mode a copy of its table of async-mode
drivers (``eio._async``, shared by all servers of the mode) whose ``websocket`` entry sets
:func:`unmask` on each connection's websocket object before engine.io's handler gets it: nothing
global changes, and an eventlet whose websocket looks otherwise is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._drivers import wrap_driver
from ._xor_mask import xor_mask

#: On the engine.io server once its websockets unmask fast.
_DONE_ATTRIBUTE = "_sio_stream_fast_unmask"


def configure(eio: Any) -> bool:
    """Make the websockets of engine.io server ``eio`` unmask with :func:`unmask`, in eventlet
    mode; return whether they do now (False for every other mode)."""
    return wrap_driver(eio, "eventlet", "websocket", _factory, _DONE_ATTRIBUTE)


def _factory(websocket: Callable[..., Any]) -> Callable[..., Any]:
    """python-engineio's ``websocket(handler, server)`` factory, whose handler gets websockets
    that unmask with :func:`unmask`."""

    def factory(handler: Callable[[Any], Any], server: Any) -> Any:
        def handle(ws: Any) -> Any:
            if callable(getattr(ws, "_apply_mask", None)):  # eventlet's RFC6455WebSocket
                ws._apply_mask = unmask
            return handler(ws)

        return websocket(handle, server)

    return factory


def unmask(data: bytes, mask: bytes, length: int | None = None, offset: int = 0) -> bytes:
    """The first ``length`` bytes of ``data`` (all by default) XORed with the 4-byte ``mask``,
    starting at byte ``offset`` of the mask's cycle (eventlet's ``_apply_mask`` signature)."""
    if length is None:
        length = len(data)
    return xor_mask(memoryview(data)[:length], bytes(mask), offset)
