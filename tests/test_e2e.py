"""socket.io-stream's own test suite, in Python, over a real AsyncServer and AsyncClient."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random

import anyio
import pytest

from sio_stream import IOStream, StreamBrokenError, create_stream
from tests.support import wait_for

pytestmark = pytest.mark.anyio


async def pipe(source: IOStream, destination: IOStream) -> None:
    async for chunk in source:
        await destination.write(chunk)
    await destination.end()


async def write_all(stream: IOStream, data: bytes, sizes=(65536, 1, 1000, 200_000, 4096)) -> None:
    pos, i = 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        await stream.write(data[pos : pos + size])
        pos += size
        i += 1
    await stream.end()


def background(coro) -> asyncio.Task:
    return asyncio.ensure_future(coro)


async def test_file_piped_back_has_the_same_checksum(pair, tmp_path):
    path = tmp_path / "source.bin"
    path.write_bytes(os.urandom(1_500_000))

    @pair.server_streams.on("file")
    async def on_file(sid, incoming, back):
        background(pipe(incoming, back))

    out, back = create_stream(), create_stream()
    await pair.client_streams.emit("file", out, back)
    writer = background(write_all(out, path.read_bytes()))
    received = await back.read()
    await writer
    assert hashlib.sha256(received).digest() == hashlib.sha256(path.read_bytes()).digest()


@pytest.mark.parametrize("mode", ["flowing", "paused"])
async def test_echo_with_extra_data(pair, mode):
    @pair.server_streams.on("echo")
    async def echo(sid, stream, extra):
        back = create_stream()
        await pair.server_streams.emit("echo", back, extra, to=sid)
        background(pipe(stream, back))

    result: asyncio.Future = asyncio.get_running_loop().create_future()

    @pair.client_streams.on("echo")
    async def on_echo(stream, extra):
        if mode == "flowing":
            chunks = [chunk async for chunk in stream]
        else:
            chunks = []
            while chunk := await stream.read(1000):
                assert len(chunk) <= 1000
                chunks.append(chunk)
        result.set_result((b"".join(chunks), extra))

    stream = create_stream()
    await pair.client_streams.emit("echo", stream, {"foo": "bar", "n": [1, 2]})
    await stream.end(b"foobar" * 1000)
    data, extra = await asyncio.wait_for(result, 30)
    assert data == b"foobar" * 1000
    assert extra == {"foo": "bar", "n": [1, 2]}


async def test_binary_chunks_arrive_exactly(pair):
    chunks = [bytes(range(256)) * 3, b"\x00", b"\xff" * 70000, bytes(1)]

    @pair.server_streams.on("binary")
    async def binary(sid, stream):
        return (await stream.read()).hex()

    stream = create_stream()
    call = background(pair.client_streams.call("binary", stream))
    for chunk in chunks:
        await stream.write(chunk)
    await stream.end()
    assert await call == b"".join(chunks).hex()


async def test_object_mode(pair):
    values = [{"a": 1}, [1, 2, 3], "text", 42, 0, False, {"nested": {"deep": [None, 1.5]}}]

    @pair.server_streams.on("objects")
    async def objects(sid, stream):
        assert stream.object_mode
        return [value async for value in stream]

    stream = create_stream(object_mode=True)
    call = background(pair.client_streams.call("objects", stream))
    for value in values:
        await stream.write(value)
    await stream.end()
    assert await call == values


@pytest.mark.parametrize("shape", ["list", "dict"])
async def test_several_streams_in_a_list_and_in_a_dict(pair, shape):
    @pair.server_streams.on("many")
    async def many(sid, container):
        items = container if shape == "list" else [container[k] for k in sorted(container)]
        return [(await s.read()).decode() for s in items]

    streams = [create_stream() for _ in range(3)]
    container = streams if shape == "list" else {f"k{i}": s for i, s in enumerate(streams)}
    call = background(pair.client_streams.call("many", container))
    for i, stream in enumerate(streams):
        await stream.end(f"stream {i}".encode())
    assert await call == ["stream 0", "stream 1", "stream 2"]


async def test_same_stream_written_and_read_back_with_allow_half_open(pair):
    @pair.server_streams.on("sendback")
    async def sendback(sid, stream):
        assert stream.options == {"allowHalfOpen": True}
        background(pipe(stream, stream))

    stream = create_stream(allow_half_open=True)
    await pair.client_streams.emit("sendback", stream)
    data = os.urandom(300_000)
    writer = background(write_all(stream, data))
    assert await stream.read() == data
    await writer
    await wait_for(
        lambda: pair.client_streams.stream_count() == 0 and pair.server_streams.stream_count() == 0
    )


async def test_two_streams_in_one_event_piped_into_each_other(pair):
    @pair.server_streams.on("multi")
    async def multi(sid, a, b):
        background(pipe(a, b))

    a, b = create_stream(), create_stream()
    await pair.client_streams.emit("multi", a, b)
    data = os.urandom(200_000)
    writer = background(write_all(a, data))
    assert await b.read() == data
    await writer


async def test_stream_returned_through_an_ack(pair):
    @pair.server_streams.on("download")
    async def download(sid, size):
        stream = create_stream()
        background(write_all(stream, b"z" * size))
        return stream

    stream = await pair.client_streams.call("download", 123_456)
    assert isinstance(stream, IOStream)
    assert await stream.read() == b"z" * 123_456


@pytest.mark.parametrize("shape", ["list", "dict"])
async def test_streams_in_a_list_and_a_dict_returned_through_an_ack(pair, shape):
    @pair.server_streams.on("download")
    async def download(sid):
        streams = [create_stream() for _ in range(3)]
        for i, s in enumerate(streams):
            background(s.end(f"part {i}".encode()))
        return streams if shape == "list" else {"a": streams[0], "b": streams[1], "c": streams[2]}

    got = await pair.client_streams.call("download")
    items = got if shape == "list" else [got["a"], got["b"], got["c"]]
    assert [await s.read() for s in items] == [b"part 0", b"part 1", b"part 2"]


async def test_ack_with_callback_decodes_streams(pair):
    @pair.server_streams.on("ack")
    async def ack(sid, n):
        s = create_stream()
        background(s.end(b"x" * n))
        return s, "meta"

    got: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_ack(stream, meta):
        got.set_result((await stream.read(), meta))

    await pair.client_streams.emit("ack", 10, callback=on_ack)
    assert await asyncio.wait_for(got, 30) == (b"x" * 10, "meta")


async def test_error_raised_on_the_client_arrives_on_the_server(pair):
    seen: asyncio.Future = asyncio.get_running_loop().create_future()

    @pair.server_streams.on("fail")
    async def fail(sid, stream):
        try:
            await stream.read()
        except StreamBrokenError as exc:
            seen.set_result(exc)

    stream = create_stream()
    await pair.client_streams.emit("fail", stream)
    await stream.write(b"some data first")
    stream.destroy(ValueError("client says no"))
    error = await asyncio.wait_for(seen, 30)
    assert error.message == "client says no" and error.remote
    await wait_for(lambda: pair.server_streams.stream_count() == 0)


async def test_error_raised_on_the_server_arrives_on_the_client(pair):
    @pair.server_streams.on("fail")
    async def fail(sid, stream):
        stream.destroy(RuntimeError("server says no"))

    stream = create_stream()
    await pair.client_streams.emit("fail", stream)
    with pytest.raises(StreamBrokenError) as info:
        while True:
            await stream.write(b"x" * 100_000)
    assert info.value.message == "server says no" and info.value.remote
    assert pair.client_streams.stream_count() == 0


async def test_many_streams_each_from_its_own_task_arrive_complete_and_in_order(pair):
    rng = random.Random(7)
    payloads = [rng.randbytes(rng.randint(0, 400_000)) for _ in range(40)]

    @pair.server_streams.on("upload")
    async def upload(sid, index, stream):
        return index, hashlib.sha256(await stream.read()).hexdigest()

    async def one(index: int) -> None:
        stream = create_stream()
        call = background(pair.client_streams.call("upload", index, stream))
        await write_all(stream, payloads[index], sizes=(rng.randint(1, 100_000),))
        got_index, digest = await call
        assert got_index == index and digest == hashlib.sha256(payloads[index]).hexdigest()

    async with anyio.create_task_group() as tg:
        for index in range(len(payloads)):
            tg.start_soon(one, index)
    await wait_for(
        lambda: pair.client_streams.stream_count() == 0 and pair.server_streams.stream_count() == 0
    )


async def test_downloads_to_the_client_from_many_server_tasks(pair):
    payloads = [os.urandom(50_000 * (i + 1)) for i in range(10)]
    results: dict[int, bytes] = {}
    done = asyncio.Event()

    @pair.client_streams.on("file")
    async def on_file(index, stream):
        # The client handler consumes its whole stream before returning.
        results[index] = await stream.read()
        if len(results) == len(payloads):
            done.set()

    async with anyio.create_task_group() as tg:
        for index, data in enumerate(payloads):

            async def send(index: int = index, data: bytes = data) -> None:
                stream = create_stream()
                await pair.server_streams.emit("file", index, stream, to=pair.sid)
                await write_all(stream, data)

            tg.start_soon(send)
    await asyncio.wait_for(done.wait(), 60)
    assert [results[i] for i in range(len(payloads))] == payloads


async def test_a_handler_reading_its_stream_does_not_block_other_events(pair):
    release = asyncio.Event()

    @pair.server_streams.on("slow")
    async def slow(sid, stream):
        return len(await stream.read())

    @pair.server_streams.on("ping")
    async def ping(sid, n):
        return n + 1

    @pair.client_streams.on("ping")
    async def client_ping(n):
        return n * 2

    @pair.client_streams.on("hold")
    async def hold(stream):
        await release.wait()
        return len(await stream.read())

    stream = create_stream()
    slow_call = background(pair.client_streams.call("slow", stream))
    await stream.write(b"partial")
    # While the server handler waits for more data, other events still flow both ways.
    assert await pair.client_streams.call("ping", 1) == 2
    held = create_stream()
    hold_call = background(pair.server_streams.call("hold", held, to=pair.sid))
    assert await pair.server_streams.call("ping", 21, to=pair.sid) == 42
    release.set()
    await held.end(b"abc")
    await stream.end(b"rest")
    assert await slow_call == len(b"partialrest")
    assert await hold_call == 3


async def test_ending_one_direction_ends_the_other_by_default(pair):
    ended: asyncio.Future = asyncio.get_running_loop().create_future()

    @pair.server_streams.on("upload")
    async def upload(sid, stream):
        data = await stream.read()
        # The server's writable side of this stream was ended for it (allowHalfOpen false).
        with pytest.raises(anyio.ClosedResourceError):
            await stream.write(b"late")
        ended.set_result(data)

    stream = create_stream()
    await pair.client_streams.emit("upload", stream)
    await stream.end(b"bye")
    assert await asyncio.wait_for(ended, 30) == b"bye"
    await wait_for(
        lambda: pair.server_streams.stream_count() == 0 and pair.client_streams.stream_count() == 0
    )


async def test_sio_stream_peers_negotiate_the_fast_path(pair):
    @pair.server_streams.on("x")
    async def x(sid, stream):
        return len(await stream.read())

    stream = create_stream()
    call = background(pair.client_streams.call("x", stream))
    await stream.end(b"12345")
    assert await call == 5
    client_conn = pair.client_streams._connections[None]
    server_conn = pair.server_streams._connections[pair.sid]
    assert client_conn.core.peer_features == server_conn.core.peer_features != frozenset()


async def test_a_stream_for_an_event_without_handler_fails_on_the_sender(pair):
    stream = create_stream()
    await pair.client_streams.emit("nobody-listens", stream)
    with pytest.raises(StreamBrokenError) as info:
        while True:
            await stream.write(b"x" * 300_000)
    assert "no handler" in info.value.message
