"""The sync API on servers in eventlet and gevent modes (socketio.Server and Flask-SocketIO),
each in a subprocess of its own (tests/sync_peer.py: monkey-patching never reaches pytest), with
a sync python-socketio client in this process."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from sio_stream import ConnectionAbortedStreamError, StreamError, sync
from tests.sync_support import PeerProcess, eventually, sync_client, sync_peer

MiB = 1024 * 1024
COMBINATIONS = [("eventlet", "flask"), ("eventlet", "socketio"), ("gevent", "flask"), ("gevent", "socketio")]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: Initial credit both ends offer in the ``offer`` cases (ss(initial_credit=)): a green server's
#: receive loop handles a primed upload's first writes before its event's handler runs, which
#: lost 300,000 bytes of 4 MiB before such writes were held (core/_early.py).
OFFER = 16 * MiB
OFFERS = [0, OFFER]


@pytest.fixture(params=COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS])
def peer(request: pytest.FixtureRequest) -> Iterator[PeerProcess]:
    mode, host = request.param
    with sync_peer("--mode", mode, "--host", host) as process:
        yield process
    assert not [line for line in process.seen if line.startswith("FAILED")], process.seen


@pytest.fixture(
    params=[(*c, o) for o in OFFERS for c in COMBINATIONS],
    ids=[f"{'-'.join(c)}-{'offer' if o else 'no-offer'}" for o in OFFERS for c in COMBINATIONS],
)
def offering(request: pytest.FixtureRequest) -> Iterator[tuple[PeerProcess, int]]:
    """A green server that offers ``initial_credit`` (0 or OFFER), and that value."""
    mode, host, offer = request.param
    with sync_peer("--mode", mode, "--host", host, "--initial-credit", str(offer)) as process:
        yield process, offer
    assert not [line for line in process.seen if line.startswith("FAILED")], process.seen


def write_all(stream: sync.IOStream, data: bytes, piece: int = 100_000) -> threading.Thread:
    def run() -> None:
        for offset in range(0, len(data), piece):
            stream.write(data[offset : offset + piece], timeout=60)
        stream.end(timeout=60)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_upload_and_download_a_few_mib_intact(offering: tuple[PeerProcess, int]) -> None:
    peer, offer = offering
    with sync_client(peer.url, reconnection=False) as client:
        streams = sync.ss(client, initial_credit=offer)
        client.connect(peer.url, transports=["websocket"])
        core = streams._connections[None].core
        eventually(lambda: core.peer_offer_seen)
        # Both ends offer (or neither); each takes the other's below.
        assert (core.peer_offer is not None) is (core.initial_offer is not None) is bool(offer)
        data = os.urandom(4 * MiB + 5)
        up = sync.create_stream()
        writer = write_all(up, data)
        assert streams.call("sha", up, timeout=60) == (sha(data), len(data))
        writer.join(60)
        assert core.peer_offer is None
        down, digest = streams.call("download", {"size": 3 * MiB}, timeout=60)
        assert sha(down.read(timeout=60)) == digest
        assert core.initial_offer is None  # the server's writer took ours
        eventually(lambda: streams.stream_count() == 0)


def test_a_relay_to_a_room(offering: tuple[PeerProcess, int]) -> None:
    """One client's upload relayed by the server to the two other members of a room, each at
    its own pace (the sync fan-out's waits are the async mode's events: green threads here).
    With the offer on, the server's writers take the members' offers too."""
    peer, offer = offering
    with ExitStack() as stack:
        clients = []
        for _ in range(3):
            client = stack.enter_context(sync_client(peer.url, reconnection=False))
            streams = sync.ss(client, initial_credit=offer)
            streams.on("relayed", lambda stream: sha(stream.read(timeout=60)))
            client.connect(peer.url, transports=["websocket"])
            assert streams.call("join", "lobby", timeout=60) is True
            assert (streams._connections[None].core.initial_offer is not None) is bool(offer)
            clients.append(client)
        data = os.urandom(4 * MiB + 3)
        up = sync.create_stream()
        writer = write_all(up, data)
        acks = sync.ss(clients[0]).call("share", up, "lobby", timeout=60)
        writer.join(60)
        assert acks == {client.get_sid(): sha(data) for client in clients[1:]}
        for client in clients[1:]:
            assert sync.ss(client)._connections[None].core.initial_offer is None  # the relay took it


def test_a_disconnect_mid_transfer_fails_both_ends(
    peer: PeerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with sync_client(peer.url, reconnection=False) as client:
        streams = sync.ss(client)
        client.connect(peer.url, transports=["websocket"])
        up = sync.create_stream()
        failures: dict[str, BaseException] = {}

        def write_up() -> None:
            try:
                while True:
                    up.write(b"u" * 65536, timeout=60)
            except StreamError as exc:
                failures["up"] = exc

        writer = threading.Thread(target=write_up)
        writer.start()
        down = streams.call("drop", up, timeout=60)
        with pytest.raises(StreamError) as info:
            while down.read(65536, timeout=60):
                pass
        failures["down"] = info.value
        writer.join(60)
        for name in ("up", "down"):
            assert isinstance(failures[name], ConnectionAbortedStreamError), failures
        line = peer.line("DROPPED ")
        assert json.loads(line.split(" ", 1)[1]) == {"up": "Connection aborted", "down": "Connection aborted"}
        eventually(lambda: streams.stream_count() == 0)
    # The server's DISCONNECT packet is handled off the read loop, which it joins.
    assert "cannot join current thread" not in caplog.text


@pytest.mark.parametrize("host", ["socketio", "flask"])
def test_gevent_under_load_of_small_binary_messages(host: str) -> None:
    """Thousands of binary messages each way (4 KiB chunks: two engine.io messages each) through
    a gevent server: simple-websocket 1.1.0 was seen dropping such connections (its issue 45)."""
    chunk = 4096
    with (
        sync_peer("--mode", "gevent", "--host", host, "--max-chunk", str(chunk)) as peer,
        sync_client(peer.url, reconnection=False) as client,
    ):
        streams = sync.ss(client, max_chunk=chunk)
        client.connect(peer.url, transports=["websocket"])
        data = os.urandom(24 * MiB)
        up = sync.create_stream()
        writer = write_all(up, data, MiB)
        assert streams.call("sha", up, timeout=60) == (sha(data), len(data))
        writer.join(60)
        down, digest = streams.call("download", {"size": 16 * MiB}, timeout=60)
        assert sha(down.read(timeout=60)) == digest
        assert client.connected
    assert not [line for line in peer.seen if line.startswith("FAILED")], peer.seen
