"""The fast websocket masks (sio_stream.glue._xor_mask, _client_masks, _server_reads) against
the libraries they stand in for: websocket-client's frames and wsproto's unmasking, byte for byte.
The uploads of tests/test_sync.py run through both ends of them."""

from __future__ import annotations

import os
import socket
import threading

import pytest
import socketio
import websocket
from websocket import ABNF
from wsproto.frame_protocol import FrameDecoder, XorMaskerSimple

from sio_stream import sync
from sio_stream.glue import _client_masks as client_masks
from sio_stream.glue import _server_reads as server_reads
from sio_stream.glue._xor_mask import xor_mask

SIZES = [0, 1, 3, 4, 5, 125, 126, 4095, 4096, 65535, 65536, 65537, 524288 + 3]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 6])
def test_xor_mask_is_the_rfc_xor(size: int, offset: int) -> None:
    data, key = os.urandom(size), os.urandom(4)
    expected = bytes(b ^ key[(offset + i) % 4] for i, b in enumerate(data))
    assert xor_mask(data, key, offset) == expected
    assert xor_mask(memoryview(bytearray(data)), key, offset) == expected


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opcode", [ABNF.OPCODE_BINARY, ABNF.OPCODE_TEXT])
def test_client_frames_are_websocket_clients_bytes(size: int, opcode: int) -> None:
    """The same bytes on a real socket as websocket-client's own ``format()``, with the same key."""
    key = os.urandom(4)
    cls = client_masks.masked_frames_class(websocket.WebSocket, ABNF)
    ws = cls(get_mask_key=lambda length: key)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ws.sock = ours
        data = os.urandom(size)
        frame = ABNF.create_frame(data, opcode)
        expected = ABNF.create_frame(data, opcode)
        expected.get_mask_key = lambda length: key
        wire = expected.format()
        theirs.settimeout(30)
        got = bytearray()

        def read() -> None:  # at once: a large frame does not fit in the socket buffers
            while len(got) < len(wire):
                got.extend(theirs.recv(1 << 20))

        reader = threading.Thread(target=read)
        reader.start()
        sent = ws.send_frame(frame)
        reader.join(30)
        assert sent == len(wire)
        assert got == wire


def test_a_sync_client_gets_the_class_unless_it_chose_one() -> None:
    client = socketio.Client()
    sync.ss(client)
    assert "MaskedFrames" in [cls.__name__ for cls in client.eio.websocket_extra_options["class_"].__mro__]
    own = type("Own", (websocket.WebSocket,), {})
    chosen = socketio.Client(websocket_extra_options={"class_": own})
    sync.ss(chosen)
    assert chosen.eio.websocket_extra_options["class_"] is own


@pytest.mark.parametrize("pieces", [1, 2, 7])
def test_wsproto_decoder_unmasks_with_ours(pieces: int) -> None:
    """A masked frame fed to wsproto's server-side decoder in pieces: same payload, our masker."""
    data, key = os.urandom(300_001), os.urandom(4)
    frame = ABNF.create_frame(data, ABNF.OPCODE_BINARY)
    frame.get_mask_key = lambda length: key
    wire = frame.format()
    decoder = FrameDecoder(client=False)
    server_reads.unmask_fast(decoder)
    payload = b""
    step = len(wire) // pieces + 1
    for start in range(0, len(wire), step):
        decoder.receive_bytes(wire[start : start + step])
        while True:
            parsed = decoder.process_buffer()
            if parsed is None:
                break
            payload += parsed.payload
            if decoder.masker is not None:
                assert isinstance(decoder.masker, server_reads.Unmasker)
    assert payload == data
    assert not isinstance(decoder.masker, XorMaskerSimple)


def test_only_threading_and_gevent_servers_are_changed() -> None:
    threaded = socketio.Server(async_mode="threading")
    assert server_reads.configure(threaded.eio) is True
    assert threaded.eio._async is not socketio.Server(async_mode="threading").eio._async
    eventlet_like = socketio.Server(async_mode="threading")
    eventlet_like.eio.async_mode = "eventlet"
    drivers = eventlet_like.eio._async
    assert server_reads.configure(eventlet_like.eio) is False
    assert eventlet_like.eio._async is drivers
