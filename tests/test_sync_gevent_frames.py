"""A gevent server's websocket frames arrive whole when its socket buffer fills
(sio_stream.glue._whole_frames): simple-websocket's one ``send()`` per frame lost the tail of
frames that did not fit, and the client dropped the connection."""

from __future__ import annotations

import hashlib

import pytest

from sio_stream import sync
from tests.sync_support import eventually, sync_client, sync_peer

MiB = 1024 * 1024


@pytest.mark.parametrize("host", ["socketio", "flask"])
def test_downloads_at_full_speed_arrive_whole(host: str) -> None:
    with (
        sync_peer("--mode", "gevent", "--host", host) as peer,
        sync_client(peer.url, reconnection=False) as client,
    ):
        streams = sync.ss(client)
        client.connect(peer.url, transports=["websocket"])
        for _ in range(3):  # at full speed: the socket buffer fills now and then
            down, digest = streams.call("download", {"size": 48 * MiB}, timeout=60)
            assert hashlib.sha256(down.read(timeout=60)).hexdigest() == digest
            assert client.connected
        eventually(lambda: streams.stream_count() == 0)
    assert not [line for line in peer.seen if line.startswith("FAILED")], peer.seen
