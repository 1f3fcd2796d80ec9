"""Uploads to threading and gevent servers: simple-websocket reads large pieces and unmasks fast.

python-engineio's websocket driver in threading and gevent modes is simple-websocket over
wsproto. simple-websocket reads its socket 4,096 bytes at a time, and for each piece wsproto
runs its frame parser and yields an event that simple-websocket appends to the message: a
512 KiB chunk is 128 rounds of Python. wsproto then unmasks each piece with four strided
``bytes.translate`` calls (about 140 MB/s on the project's machine). Together they were most of
a threading server's CPU in a sync upload (benchmarks/sync.py): reading 256 KiB at a time
halved it, and :func:`~sio_stream.glue._xor_mask.xor_mask` unmasks about three times as fast.

:func:`configure` gives one engine.io server in those modes a copy of its table of async-mode
drivers (see :mod:`sio_stream.glue._drivers`) whose ``websocket`` entry passes simple-websocket a
larger ``receive_bytes`` (unless the application set one) and a thread class that, when the
websocket starts its receive thread (right after the handshake), gives its wsproto frame decoder
:class:`Unmasker` in place of wsproto's masker for each masked frame. Nothing global changes,
and a simple-websocket or wsproto that looks otherwise keeps its own ways.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._drivers import wrap_driver
from ._xor_mask import xor_mask

#: Bytes simple-websocket asks its socket for at once (it asks 4,096 by default): measured
#: with 512 KiB chunks, 256 KiB halved the threading server's CPU per uploaded byte.
RECEIVE_BYTES = 256 * 1024
#: Modes whose websocket driver is simple-websocket.
MODES = frozenset({"threading", "gevent"})
_DONE_ATTRIBUTE = "_sio_stream_server_reads"


def configure(eio: Any) -> bool:
    """Make the websockets of engine.io server ``eio`` read large pieces and unmask fast, in
    threading and gevent modes; return whether they do now (False for every other mode)."""
    mode = getattr(eio, "async_mode", None)
    return mode in MODES and wrap_driver(eio, mode, "websocket", _factory, _DONE_ATTRIBUTE)


def _factory(websocket: Callable[..., Any]) -> Callable[..., Any]:
    """python-engineio's ``websocket(handler, server)`` factory, whose simple-websocket gets the
    larger reads and the thread class that installs :class:`Unmasker`."""

    def factory(handler: Any, server: Any) -> Any:
        driver = websocket(handler, server)
        options = getattr(driver, "server_args", None)  # SimpleWebSocketWSGI's Server(**options)
        if isinstance(options, dict):
            options.setdefault("receive_bytes", RECEIVE_BYTES)
            options["thread_class"] = _unmasking_thread(options.get("thread_class") or threading.Thread)
        return driver

    return factory


def _unmasking_thread(thread_class: Callable[..., Any]) -> Callable[..., Any]:
    def start(*args: Any, target: Any = None, **kwargs: Any) -> Any:
        ws = getattr(target, "__self__", None)  # simple_websocket.Base, after its handshake
        connection = getattr(getattr(ws, "ws", None), "connection", None)  # wsproto's
        decoder = getattr(getattr(connection, "_proto", None), "_frame_decoder", None)
        if decoder is not None and callable(getattr(decoder, "parse_header", None)):
            unmask_fast(decoder)
        return thread_class(*args, target=target, **kwargs)

    return start


def unmask_fast(decoder: Any) -> None:
    """Make a wsproto ``FrameDecoder`` unmask each masked frame with :class:`Unmasker`: its
    ``parse_header`` (called at the start of every frame) sets wsproto's masker, replaced here."""
    parse_header = decoder.parse_header

    def parse_header_then_unmasker() -> Any:
        parsed = parse_header()
        masker = decoder.masker
        key = getattr(masker, "_masking_key", None)
        if (
            type(masker).__name__ == "XorMaskerSimple"
            and isinstance(key, (bytes, bytearray))
            and len(key) == 4
        ):
            decoder.masker = Unmasker(bytes(key))
        return parsed

    decoder.parse_header = parse_header_then_unmasker


class Unmasker:
    """wsproto's masker interface (``process(data)``, called with each piece of one frame's
    payload in order) on :func:`~sio_stream.glue._xor_mask.xor_mask`."""

    __slots__ = ("_key", "_offset")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._offset = 0

    def process(self, data: Any) -> bytes:
        unmasked = xor_mask(data, self._key, self._offset)
        self._offset += len(data)
        return unmasked
