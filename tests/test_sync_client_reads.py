"""Whole frame reads on the sync client (sio_stream.sync._client_reads): the same frames as
websocket-client's own buffer, each payload asked for in one call, and a real download."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable

import pytest
import socketio
import websocket
from websocket import ABNF, WebSocketTimeoutException
from websocket._abnf import frame_buffer

from sio_stream import sync
from sio_stream.sync import _client_reads as client_reads
from tests.sync_support import sync_client, sync_server

CHUNK = 512 * 1024


def wire(*frames: tuple[int, bytes]) -> bytes:
    """Server frames (unmasked), as a server sends them."""
    out = b""
    for opcode, data in frames:
        out += ABNF(1, 0, 0, 0, opcode, 0, data).format()
    return out


def source(data: bytes, most: int, asks: list[int]) -> Callable[[int], bytes]:
    """A ``recv`` over ``data`` that gives at most ``most`` bytes a call and records each ask."""
    left = memoryview(data)

    def recv(bufsize: int) -> bytes:
        nonlocal left
        asks.append(bufsize)
        if not left:
            raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
        piece, left = bytes(left[: min(bufsize, most)]), left[min(bufsize, most) :]
        return piece

    return recv


def whole_reads_buffer(recv: Callable[[int], bytes]) -> frame_buffer:
    cls = client_reads.whole_reads_class(websocket.WebSocket, frame_buffer)
    buffer_class = type(cls().frame_buffer)
    assert issubclass(buffer_class, client_reads.WholeReads)
    return buffer_class(recv, True)


def test_a_payload_is_asked_for_whole_and_not_copied() -> None:
    data = os.urandom(CHUNK)
    asks: list[int] = []
    served: list[bytes] = []
    recv = source(wire((ABNF.OPCODE_BINARY, data)), 1 << 30, asks)

    def keeping(bufsize: int) -> bytes:
        served.append(recv(bufsize))
        return served[-1]

    frame = whole_reads_buffer(keeping).recv_frame()
    assert frame.data == data
    assert asks == [2, 8, CHUNK]  # header, 64-bit length, the payload at once (no read-ahead)
    assert frame.data is served[-1]  # the string recv made is the one that goes up the stack


@pytest.mark.parametrize("most", [1, 7, 4096, 100_000, 1 << 30])
def test_the_same_frames_as_websocket_clients_buffer(most: int) -> None:
    rng = random.Random(most)
    frames = []
    for size in [0, 1, 125, 126, 65535, 65536, CHUNK, 3, CHUNK + 5, 20]:
        data = rng.randbytes(size)
        if rng.random() < 0.5:
            frames.append((ABNF.OPCODE_BINARY, data))
        else:  # text frames are checked as UTF-8
            frames.append((ABNF.OPCODE_TEXT, data.hex().encode()[:size]))
    stream = wire(*frames)
    ours, theirs = whole_reads_buffer(source(stream, most, [])), frame_buffer(source(stream, most, []), True)
    for opcode, data in frames:
        mine, reference = ours.recv_frame(), theirs.recv_frame()
        assert (mine.opcode, mine.data) == (reference.opcode, reference.data) == (opcode, data)


def test_a_timeout_inside_a_payload_keeps_what_came() -> None:
    data = os.urandom(CHUNK)
    recv = source(wire((ABNF.OPCODE_BINARY, data), (ABNF.OPCODE_TEXT, b"next")), 200_000, [])
    calls = 0

    def timing_out(bufsize: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 4:  # after the header, the length and a first piece of the payload
            raise WebSocketTimeoutException("timed out")
        return recv(bufsize)

    buffer = whole_reads_buffer(timing_out)
    with pytest.raises(WebSocketTimeoutException):
        buffer.recv_frame()
    assert buffer.recv_frame().data == data
    assert buffer.recv_frame().data == b"next"


def test_a_sync_client_downloads_through_whole_reads() -> None:
    size = 3 * CHUNK + 12345
    blob = os.urandom(size)
    with sync_server(max_http_buffer_size=4 * CHUNK) as (sio, url):
        server = sync.ss(sio)

        @server.on("get")
        def get(sid: str) -> sync.IOStream:
            stream = sync.create_stream()
            sio.start_background_task(stream.end, blob)
            return stream

        with sync_client(url, reconnection=False) as client:
            streams = sync.ss(client)
            client.connect(url, transports=["websocket"], wait_timeout=30)
            assert isinstance(client.eio.ws.frame_buffer, client_reads.WholeReads)
            assert client.eio.ws.frame_buffer.skip_utf8_validation is True  # recv() decodes
            stream = streams.call("get", timeout=60)
            assert stream.read(timeout=60) == blob


def test_text_that_is_not_utf8_is_still_refused() -> None:
    """Without websocket-client's check in Python, ``recv()``'s own decode refuses bad text."""
    cls = client_reads.whole_reads_class(websocket.WebSocket, frame_buffer)
    ws = cls(skip_utf8_validation=True)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ws.sock = ours
        theirs.sendall(wire((ABNF.OPCODE_TEXT, "héllo".encode()), (ABNF.OPCODE_TEXT, b"\xff\xfe")))
        assert ws.recv() == "héllo"
        with pytest.raises(UnicodeDecodeError):
            ws.recv()


def test_a_client_that_chose_its_class_keeps_it() -> None:
    own = type("Own", (websocket.WebSocket,), {})
    chosen = socketio.Client(websocket_extra_options={"class_": own})
    sync.ss(chosen)
    assert chosen.eio.websocket_extra_options["class_"] is own
    assert client_reads.configure(chosen.eio) is False
    strict = socketio.Client(websocket_extra_options={"skip_utf8_validation": False})
    sync.ss(strict)
    assert strict.eio.websocket_extra_options["skip_utf8_validation"] is False
    plain = socketio.Client()
    sync.ss(plain)
    assert client_reads.configure(plain.eio) is True  # once: configuring again changes nothing
