"""The eventlet server's websocket unmask (sio_stream.glue._fast_unmask) against the byte-by-byte
XOR of RFC 6455, section 5.3, which eventlet computes; the uploads through eventlet servers in
tests/test_sync_green.py and tests/test_sync_green_clients.py run through it end to end."""

from __future__ import annotations

import os

import pytest
import socketio

from sio_stream.glue._fast_unmask import configure, unmask


def reference(data: bytes, mask: bytes, length: int | None = None, offset: int = 0) -> bytes:
    length = len(data) if length is None else length
    return bytes(data[i] ^ mask[(offset + i) % 4] for i in range(length))


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 255, 4096, 65537, 262144 + 3])
@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_unmask_is_the_rfc_xor(size: int, offset: int) -> None:
    data, mask = os.urandom(size), os.urandom(4)
    assert unmask(data, mask, offset=offset) == reference(data, mask, offset=offset)
    assert unmask(data, mask, size // 2, offset) == reference(data, mask, size // 2, offset)


def test_leading_and_trailing_zero_bytes_are_kept() -> None:
    mask = b"\x01\x02\x03\x04"
    data = mask + b"\x00" * 10 + mask  # XORs to zeros at both ends
    assert unmask(data, mask) == reference(data, mask)
    assert len(unmask(data, mask)) == len(data)


def test_only_eventlet_servers_are_changed() -> None:
    sio = socketio.Server(async_mode="threading")
    drivers = sio.eio._async
    assert configure(sio.eio) is False
    assert sio.eio._async is drivers
