"""An asyncio client's large websocket frames (sio_stream.aio._fast_mask) through a real aiohttp
server on 127.0.0.1: the server unmasks them with the mask in their header, so any error in the
frame comes out as different bytes or a dropped connection."""

from __future__ import annotations

import hashlib
import os
from functools import partial
from typing import Any

import pytest
import socketio

from sio_stream import create_stream
from sio_stream.aio._fast_mask import LARGE_FRAME, _write_frame, configure, install

pytestmark = pytest.mark.anyio

#: Around the threshold and the 16/64-bit length forms, up to a whole default chunk and beyond.
SIZES = [LARGE_FRAME - 1, LARGE_FRAME, LARGE_FRAME + 1, 512 * 1024, 2 * 1024 * 1024 + 3]


def _installed(client: socketio.AsyncClient) -> bool:
    frame = getattr(client.eio.ws._writer, "_write_websocket_frame", None)
    return isinstance(frame, partial) and frame.func is _write_frame


async def _upload(pair: Any, data: bytes) -> list[Any]:
    stream = create_stream(high_water_mark=len(data))
    reply = await pair.client_streams.call("upload", stream, writer=stream.end(data), timeout=60)
    return list(reply)


def _serve_uploads(pair: Any) -> None:
    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> list[Any]:
        data = await stream.read()
        return [len(data), hashlib.sha256(data).hexdigest()]


async def test_large_frames_arrive_whole(pair: Any) -> None:
    _serve_uploads(pair)
    assert _installed(pair.client)
    for size in SIZES:
        data = os.urandom(size)
        assert await _upload(pair, data) == [size, hashlib.sha256(data).hexdigest()]


async def test_a_client_that_connects_again_gets_it_on_its_new_websocket(pair: Any) -> None:
    _serve_uploads(pair)
    first = pair.client.eio.ws
    await pair.client.disconnect()
    await pair.client.connect(pair.url, transports=["websocket"])
    assert pair.client.eio.ws is not first and _installed(pair.client)
    data = os.urandom(3 * LARGE_FRAME + 5)
    assert await _upload(pair, data) == [len(data), hashlib.sha256(data).hexdigest()]


def test_what_looks_otherwise_is_left_alone() -> None:
    assert install(None) is False
    assert install(object()) is False
    sync_client = socketio.Client()  # its _connect_websocket is not a coroutine function
    assert configure(sync_client.eio) is False
