"""Negotiated ``digest``: the end of a byte stream carries a digest of its bytes, checked by the
reader before it reports the end; a mismatch fails both ends with IntegrityError.

At the core (two cores back to back, a hostile wire that flips one bit: hypothesis), and over a
real loopback connection with a raw python-socketio writer that flips one bit of one chunk but
sends the digest of the original, against ``receive_file``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import blake3
import pytest
import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from sio_stream import IntegrityError, StreamError, create_stream, receive_file, send_file, ss
from sio_stream._errors import LocalProtocolError
from sio_stream.core import _wire as wire
from sio_stream.core._core import (
    FEATURE_DIGEST,
    FEATURE_DIGEST_BLAKE3,
    OUR_FEATURES,
    CoreConfig,
    Outgoing,
    StreamCore,
)
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair
from tests.support import start_server, wait_for

CHUNK = 1024


def _pair(**kwargs: Any) -> CorePair:
    return CorePair(CoreConfig(max_chunk=CHUNK), CoreConfig(max_chunk=CHUNK), **kwargs)


def _send_all(pair: CorePair, data: bytes, name: str = "sha256", flip: tuple[int, int] | None = None):
    """a writes ``data`` to b with a digest; ``flip`` = (write index, bit) corrupts one chunk on the wire."""
    writer = StreamCore(StreamOptions())
    pair.a.use_digest(writer, name)
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.a.write(writer, data)
    pair.a.end(writer)
    received = bytearray()
    writes = 0
    for _ in range(100_000):
        moved = False
        while pair.send(pair.a):
            moved = True
        queue = pair.wires[id(pair.a)]
        for index, item in enumerate(queue):
            if isinstance(item, Outgoing) and item.event == wire.WRITE and not getattr(item, "seen", False):
                item.seen = True  # type: ignore[attr-defined]
                if flip is not None and writes == flip[0]:
                    chunk = bytearray(item.args[1])
                    bit = flip[1] % (len(chunk) * 8)
                    chunk[bit // 8] ^= 1 << (bit % 8)
                    queue[index] = Outgoing(
                        item.event, (item.args[0], bytes(chunk), *item.args[2:]), item.on_ack
                    )
                writes += 1
        while pair.deliver(pair.a):
            moved = True
        while reader.inbox:
            received += pair.b.take(reader, 1 << 20)
            moved = True
        while pair.send(pair.b) or pair.deliver(pair.b):
            moved = True
        if not moved:
            break
    return writer, reader, bytes(received), writes


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=5 * CHUNK), where=st.integers(0, 10_000), bit=st.integers(0, 1 << 20)
)
def test_a_flipped_bit_fails_both_ends_every_time(data: bytes, where: int, bit: int) -> None:
    pair = _pair()
    chunks = -(-len(data) // CHUNK)
    writer, reader, _, writes = _send_all(pair, data, flip=(where % chunks, bit))
    assert writes == chunks
    assert isinstance(reader.error, IntegrityError) and not reader.error.remote
    assert isinstance(writer.error, IntegrityError) and writer.error.remote
    assert not pair.a.streams and not pair.b.streams


def _expected(name: str, data: bytes) -> str:
    return blake3.blake3(data).hexdigest() if name == "blake3" else hashlib.new(name, data).hexdigest()


@pytest.mark.parametrize("name", ["sha256", "blake2b", "blake3"])
@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 5])
def test_an_intact_stream_is_verified(name: str, size: int) -> None:
    pair = _pair()
    data = os.urandom(size)
    writer, reader, received, _ = _send_all(pair, data, name)
    assert received == data
    assert writer.error is None and reader.error is None
    expected = _expected(name, data)
    assert writer.digest_value == reader.digest_value == expected
    assert not pair.a.streams and not pair.b.streams


@pytest.mark.parametrize("reader_has_blake3", [True, False])
@pytest.mark.parametrize("size", [0, 3 * CHUNK + 5])
def test_auto_picks_blake3_only_toward_a_peer_that_announced_it(reader_has_blake3: bool, size: int) -> None:
    features = OUR_FEATURES if reader_has_blake3 else OUR_FEATURES - {FEATURE_DIGEST_BLAKE3}
    pair = CorePair(CoreConfig(max_chunk=CHUNK), CoreConfig(max_chunk=CHUNK, features=features))
    data = os.urandom(size)
    writer, reader, received, _ = _send_all(pair, data, "auto")
    name = "blake3" if reader_has_blake3 else "sha256"
    assert received == data
    assert writer.error is None and reader.error is None
    assert writer.digest_name == reader.digest_name == name
    assert writer.digest_value == reader.digest_value == _expected(name, data)


def test_no_digest_toward_a_peer_that_did_not_announce_it() -> None:
    plain = CoreConfig(max_chunk=CHUNK, features=OUR_FEATURES - {FEATURE_DIGEST})
    pair = CorePair(CoreConfig(max_chunk=CHUNK), plain)
    writer = StreamCore(StreamOptions())
    pair.a.use_digest(writer, "sha256")
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.flush()
    pair.a.write(writer, b"x" * (2 * CHUNK))
    pair.a.end(writer)
    sent = []
    send = pair.send

    def recording_send(core):
        moved = send(core)
        if moved and core is pair.a:
            sent.append(pair.wires[id(core)][-1])
        return moved

    pair.send = recording_send  # type: ignore[method-assign]
    while not reader.readable_ended:
        pair.flush()
        while reader.inbox:
            pair.b.take(reader, 1 << 20)
    writes = [o.args for o in sent if o.event == wire.WRITE]
    # A fourth argument only for what is left (negotiated final-size), never a digest.
    assert len(writes) == 2 and all(len(args) == 3 or "digest" not in args[3] for args in writes)
    assert [len(o.args) for o in sent if o.event == wire.END] == [1]


def test_too_late_or_unknown_digest_is_refused() -> None:
    pair = _pair()
    stream = StreamCore(StreamOptions())
    with pytest.raises(LocalProtocolError, match="unknown digest"):
        pair.a.use_digest(stream, "md5")
    reader = pair.open_stream(pair.a, stream)
    pair.b.start_reading(reader)
    pair.flush()
    pair.a.write(stream, b"abc")
    pair.flush()
    with pytest.raises(LocalProtocolError, match="too late"):
        pair.a.use_digest(stream, "sha256")


def test_an_unknown_algorithm_from_the_peer_fails_the_stream() -> None:
    pair = _pair()
    writer = StreamCore(StreamOptions())
    reader = pair.open_stream(pair.a, writer)
    pair.b.start_reading(reader)
    pair.flush()
    answer = pair.b.receive_write(reader.id, b"abc", "buffer", {"digest": "md5"})
    assert answer and "unknown digest" in answer
    assert reader.error is not None


# -- over a real connection -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_send_file_to_receive_file_carries_a_digest(pair: Any, tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    data = os.urandom(3 * 256 * 1024 + 17)
    source.write_bytes(data)
    done = asyncio.get_running_loop().create_future()

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> str | None:
        await receive_file(stream, tmp_path / "dst.bin")
        done.set_result(stream.digest)
        return [stream.digest_name, stream.digest]

    # The default ("auto") between two sio_stream peers with the blake3 package: blake3, once
    # the client's hello round trip ended (before it, "auto" means sha256).
    connection = pair.client_streams._connections[None]
    await wait_for(lambda: FEATURE_DIGEST_BLAKE3 in connection.core.peer_features)
    for digest, expected in [
        ("auto", blake3.blake3(data).hexdigest()),
        ("sha256", hashlib.sha256(data).hexdigest()),
    ]:
        done = asyncio.get_running_loop().create_future()
        stream = create_stream()
        reply = asyncio.ensure_future(pair.client_streams.call("upload", stream))
        if digest == "auto":
            await send_file(stream, source)
        else:
            await send_file(stream, source, digest=digest)
        name = "blake3" if digest == "auto" else digest
        assert (stream.digest_name, stream.digest) == (name, expected)
        assert await reply == [name, expected] and await done == expected
        assert (tmp_path / "dst.bin").read_bytes() == data


@pytest.mark.anyio
async def test_an_empty_file_carries_the_auto_digest_of_nothing(pair: Any, tmp_path: Path) -> None:
    """No byte is hashed, so the algorithm is settled at the end: blake3 of nothing, checked."""
    source = tmp_path / "empty.bin"
    source.write_bytes(b"")
    connection = pair.client_streams._connections[None]
    await wait_for(lambda: FEATURE_DIGEST_BLAKE3 in connection.core.peer_features)

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> Any:
        await receive_file(stream, tmp_path / "dst.bin")
        return [stream.digest_name, stream.digest]

    stream = create_stream()
    reply = await pair.client_streams.call("upload", stream, writer=send_file(stream, source))
    assert reply == ["blake3", blake3.blake3(b"").hexdigest()] == [stream.digest_name, stream.digest]
    assert (tmp_path / "dst.bin").read_bytes() == b""


@pytest.mark.anyio
async def test_send_file_falls_back_to_sha256_toward_a_peer_without_blake3(tmp_path: Path) -> None:
    """A server that does not announce ``digest-blake3`` (an older sio_stream, or one without
    the package) gets, and checks, the sha256 of a file sent with the default digest."""
    server = socketio.AsyncServer(async_mode="aiohttp")
    streams = ss(server)
    streams._config.features = OUR_FEATURES - {FEATURE_DIGEST_BLAKE3}
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @streams.on("upload")
    async def upload(sid: str, stream: Any) -> str | None:
        await receive_file(stream, tmp_path / "dst.bin")
        done.set_result((stream._core.digest_name, stream.digest))
        return stream.digest

    runner, url = await start_server(server)
    client = socketio.AsyncClient()
    client_streams = ss(client)
    source = tmp_path / "src.bin"
    data = os.urandom(2 * 256 * 1024 + 3)
    source.write_bytes(data)
    try:
        await client.connect(url, transports=["websocket"])
        connection = client_streams._connections[None]
        await wait_for(lambda: FEATURE_DIGEST in connection.core.peer_features)
        stream = create_stream()
        reply = await client_streams.call("upload", stream, writer=send_file(stream, source))
        expected = hashlib.sha256(data).hexdigest()
        assert reply == stream.digest == expected
        assert await done == ("sha256", expected)
        assert (tmp_path / "dst.bin").read_bytes() == data
    finally:
        await client.disconnect()
        await server.shutdown()
        await runner.cleanup()


@pytest.mark.anyio
@pytest.mark.parametrize("flip_index", [0, 2])
async def test_hostile_writer_flipping_one_bit_is_caught_by_receive_file(
    tmp_path: Path, flip_index: int
) -> None:
    """A raw python-socketio writer announces ``digest``, flips one bit of one chunk and sends
    the digest of the original: receive_file raises IntegrityError, leaves no file, and the
    end's ack tells the writer."""
    server = socketio.AsyncServer(async_mode="aiohttp")
    streams = ss(server)
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    @streams.on("upload")
    async def upload(sid: str, stream: Any) -> None:
        try:
            await receive_file(stream, tmp_path / "dst.bin")
        except StreamError as exc:
            outcome.set_result(exc)
        else:
            outcome.set_result(None)

    runner, url = await start_server(server)
    raw = socketio.AsyncClient()
    reads: list[tuple[Any, ...]] = []
    raw.on(wire.READ, lambda *args: reads.append(args))
    try:
        await raw.connect(url, transports=["websocket"])
        hello = {"version": 1, "features": ["batch-read", "unacked-write", "digest"]}
        await raw.emit(wire.HELLO, hello)
        stream_id = str(uuid.uuid4())
        await raw.emit(wire.STREAM, ("upload", {"$stream": stream_id}))
        await wait_for(lambda: bool(reads), timeout=10)
        chunks = [os.urandom(1000) for _ in range(3)]
        original = hashlib.sha256(b"".join(chunks)).hexdigest()
        for index, chunk in enumerate(chunks):
            if index == flip_index:
                chunk = bytes([chunk[0] ^ 0x10]) + chunk[1:]
            args: tuple[Any, ...] = (stream_id, chunk, "buffer")
            if index == 0:
                args += ({"digest": "sha256"},)
            await raw.emit(wire.WRITE, args)
        ack = await raw.call(wire.END, (stream_id, {"sha256": original}), timeout=10)
        assert isinstance(ack, dict) and "sha256 mismatch" in ack["integrity"]
        error = await asyncio.wait_for(outcome, 10)
        assert isinstance(error, IntegrityError)
        assert not os.listdir(tmp_path)
    finally:
        await raw.disconnect()
        await server.shutdown()
        await runner.cleanup()


def test_the_readers_own_end_carries_no_digest() -> None:
    """Half-open off, the reader ends its side too: that end must not pass the digest it
    received off as its own (the writer would wait for a check that never comes)."""
    pair = _pair()
    ends: list[Outgoing] = []
    original = pair.b.next_outgoing

    def watch() -> Outgoing | None:
        item = original()
        if item is not None and item.event == wire.END:
            ends.append(item)
        return item

    pair.b.next_outgoing = watch  # type: ignore[method-assign]
    writer, reader, _, _ = _send_all(pair, os.urandom(3 * CHUNK))
    assert writer.error is None and reader.error is None
    assert [len(item.args) for item in ends] == [1]
