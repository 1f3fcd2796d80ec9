"""sio_stream playing each role of the interop scenarios (the contract is in README.md).

:class:`ServerRole` is the Python twin of ``node/server.js`` (its handlers serve ``node/client.js``);
:data:`CLIENT_SCENARIOS` are the Python twins of ``node/client.js``'s scenarios (run against
``node/server.js``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import socketio

from sio_stream import IOStream, StreamBrokenError, StreamError, StreamSocket, create_stream

MiB = 1024 * 1024
#: Chunk sizes a writer cycles through: tiny, odd and large (node/common.js CHUNK_SIZES).
CHUNK_SIZES = (65536, 1, 1000, 200000, 4096, 65537)
#: The server of ``drop`` disconnects the client once this many bytes of its upload arrived.
DROP_AFTER = 262144
TIMEOUT = 60.0

_PY_OPTION_NAMES = {
    "highWaterMark": "high_water_mark",
    "encoding": "encoding",
    "decodeStrings": "decode_strings",
    "objectMode": "object_mode",
    "allowHalfOpen": "allow_half_open",
}


# -- helpers --------------------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pieces(data: bytes, sizes: tuple[int, ...] = CHUNK_SIZES) -> Iterator[bytes]:
    offset, i = 0, 0
    while offset < len(data):
        size = sizes[i % len(sizes)]
        yield data[offset : offset + size]
        offset += size
        i += 1


async def write_all(stream: IOStream, chunks: Any) -> None:
    """Write every chunk (bytes, text or objects), then end the stream."""
    for chunk in chunks:
        await stream.write(chunk)
    await stream.end()


async def write_bytes(stream: IOStream, data: bytes, sizes: tuple[int, ...] = CHUNK_SIZES) -> None:
    await write_all(stream, pieces(data, sizes))


async def hash_stream(stream: IOStream, read_size: int | None = None) -> tuple[str, int]:
    """``(sha256 hex, byte count)`` of everything read from ``stream`` (chunks as they arrive,
    or ``read(read_size)`` calls)."""
    digest = hashlib.sha256()
    count = 0
    if read_size is None:
        async for chunk in stream:
            digest.update(chunk)
            count += len(chunk)
    else:
        while chunk := await stream.read(read_size):
            digest.update(chunk)
            count += len(chunk)
    return digest.hexdigest(), count


async def collect(stream: IOStream) -> Any:
    """Everything read from ``stream``: joined bytes, or the list of objects in object mode."""
    items = [item async for item in stream]
    return items if stream.object_mode else b"".join(items)


async def pipe(src: IOStream, dst: IOStream) -> None:
    """Copy ``src`` into ``dst`` and end it; a failure of ``src`` destroys ``dst``."""
    try:
        async for chunk in src:
            await dst.write(chunk)
    except StreamError as exc:
        dst.destroy(exc)
        return
    await dst.end()


def same_options(stream: IOStream) -> dict[str, Any]:
    """``create_stream`` keyword arguments for a new stream with ``stream``'s options."""
    return {_PY_OPTION_NAMES[k]: v for k, v in stream.options.items() if k in _PY_OPTION_NAMES}


async def write_until_error(stream: IOStream) -> StreamError:
    chunk = os.urandom(65536)
    try:
        while True:
            await stream.write(chunk)
    except StreamError as exc:
        return exc


async def read_until_error(stream: IOStream, on_bytes: Callable[[int], Awaitable[None]] | None = None) -> Any:
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if on_bytes is not None:
                await on_bytes(received)
    except StreamError as exc:
        return exc
    return f"ended cleanly after {received} bytes"


def leftover_streams(streams: StreamSocket) -> str:
    """The streams still registered on ``streams`` (for failure messages; reads private state)."""
    cores = [core for connection in streams._connections.values() for core in connection.streams.values()]
    return f"{len(cores)} stream(s) left: " + "; ".join(
        f"{core.id} read={core.read_state.value} write={core.write_state.value} "
        f"unacked={core.credit.unacked} options={core.options.to_wire()}"
        for core in cores
    )


# -- the server role --------------------------------------------------------------------------------
@dataclass
class ServerRole:
    """The handlers of node/server.js, written with sio_stream, on a python-socketio AsyncServer.

    ``read_size`` makes ``sha`` read with ``read(read_size)`` calls instead of whole chunks.
    Background tasks (pipes, writers) are kept in ``tasks``; unexpected exceptions in them are
    recorded in ``failures``. ``dropped`` receives the two stream errors of ``drop``; the
    connection is cut there by ``drop_action(sid)`` (default: ``sio.disconnect(sid)``).
    """

    sio: socketio.AsyncServer
    streams: StreamSocket
    read_size: int | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    failures: list[BaseException] = field(default_factory=list)
    dropped: dict[str, Any] = field(default_factory=dict)
    drop_done: asyncio.Event = field(default_factory=asyncio.Event)
    drop_action: Callable[[str], Awaitable[None]] | None = None

    def install(self) -> None:
        on = self.streams.on
        on("file", self.file)
        on("sha", self.sha)
        on("echo", self.echo)
        on("sendBack", self.send_back)
        on("multi", self.multi)
        on("ack", self.ack)
        on("clientError", self.client_error)
        on("serverError", self.server_error)
        on("download", self.download)
        on("reverse", self.reverse)
        on("drop", self.drop)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failures.append(task.exception())  # type: ignore[arg-type]

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _echo(self, value: Any) -> Any:
        """``value`` with every stream replaced by a new stream (same options) it is piped into."""
        if isinstance(value, IOStream):
            out = create_stream(**same_options(value))
            self.spawn(pipe(value, out))
            return out
        if isinstance(value, list):
            return [self._echo(v) for v in value]
        if isinstance(value, dict):
            return {k: self._echo(v) for k, v in value.items()}
        return value

    # file(stream, {size}, ack): write size random bytes (64 KiB chunks), ack(sha) once finished
    async def file(self, sid: str, stream: IOStream, meta: dict[str, Any]) -> str:
        data = os.urandom(meta["size"])
        await write_bytes(stream, data, (65536,))
        return sha256(data)

    # sha(stream, ack): ack(sha, byteCount) of everything read
    async def sha(self, sid: str, stream: IOStream) -> Any:
        try:
            return await hash_stream(stream, self.read_size)
        except StreamError as exc:
            return f"error: {exc.message}"

    # echo(...args): emit echo back, streams replaced by piped copies
    async def echo(self, sid: str, *args: Any) -> None:
        await self.streams.emit("echo", *self._echo(list(args)), to=sid)

    # sendBack(stream): pipe the stream into itself (allowHalfOpen)
    async def send_back(self, sid: str, stream: IOStream) -> None:
        self.spawn(pipe(stream, stream))

    # multi(s1, s2): pipe s1 into s2
    async def multi(self, sid: str, s1: IOStream, s2: IOStream) -> None:
        self.spawn(pipe(s1, s2))

    # ack(...args, ack): ack(...args) with streams replaced as for echo
    async def ack(self, sid: str, *args: Any) -> tuple[Any, ...]:
        return tuple(self._echo(list(args)))

    # clientError(stream, ack): ack(err.message) once the stream fails
    async def client_error(self, sid: str, stream: IOStream) -> str:
        try:
            got = await stream.read()
        except StreamError as exc:
            return exc.message
        return f"the stream ended without an error after {len(got)} bytes"

    # serverError(stream, msg): fail the stream with msg
    async def server_error(self, sid: str, stream: IOStream, message: str) -> None:
        stream.destroy(message)

    # download({size}, ack): ack(s, sha) and write size random bytes into s
    async def download(self, sid: str, meta: dict[str, Any]) -> tuple[IOStream, str]:
        data = os.urandom(meta["size"])
        stream = create_stream()
        self.spawn(write_bytes(stream, data))
        return stream, sha256(data)

    # reverse({size}, ack): server-initiated upload and download, then the report
    async def reverse(self, sid: str, meta: dict[str, Any]) -> dict[str, Any]:
        size = meta["size"]
        up = await self.streams.call("upload", size, to=sid, timeout=TIMEOUT)
        upload_sha, upload_bytes = await hash_stream(up)
        data = os.urandom(size)
        out = create_stream()
        writer = self.spawn(write_bytes(out, data))
        client_sha, client_bytes = await self.streams.call("sha", out, to=sid, timeout=TIMEOUT)
        await writer
        return {
            "uploadSha": upload_sha,
            "uploadBytes": upload_bytes,
            "sentSha": sha256(data),
            "clientSha": client_sha,
            "clientBytes": client_bytes,
        }

    # drop(up, ack): ack(down); write into down and read up until they fail; disconnect the
    # client once DROP_AFTER bytes of up arrived
    async def drop(self, sid: str, up: IOStream) -> IOStream:
        down = create_stream()

        async def maybe_disconnect(received: int) -> None:
            if received >= DROP_AFTER and "disconnected_after" not in self.dropped:
                self.dropped["disconnected_after"] = received
                if self.drop_action is not None:
                    await self.drop_action(sid)
                else:
                    await self.sio.disconnect(sid)

        async def watch() -> None:
            up_error, down_error = await asyncio.gather(
                read_until_error(up, maybe_disconnect), write_until_error(down)
            )
            self.dropped.update(up=up_error, down=down_error)
            self.drop_done.set()

        self.spawn(watch())
        return down


# -- the client role ---------------------------------------------------------------------------------
@dataclass
class ClientContext:
    sio: socketio.AsyncClient
    streams: StreamSocket


def next_event(streams: StreamSocket, event: str) -> asyncio.Future[tuple[Any, ...]]:
    future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    def handler(*args: Any) -> None:
        if not future.done():
            future.set_result(args)

    streams.on(event, handler)
    return future


async def _wait(awaitable: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(awaitable, TIMEOUT)


async def upload(streams: StreamSocket, size: int) -> dict[str, Any]:
    data = os.urandom(size)
    stream = create_stream()
    result, _ = await asyncio.gather(streams.call("sha", stream, timeout=TIMEOUT), write_bytes(stream, data))
    assert result == (sha256(data), size), "sha acked by the server"
    return {"size": size}


async def download(streams: StreamSocket, size: int) -> dict[str, Any]:
    stream, digest = await streams.call("download", {"size": size}, timeout=TIMEOUT)
    assert isinstance(stream, IOStream)
    assert await _wait(hash_stream(stream)) == (digest, size), "downloaded bytes"
    return {"size": size}


async def binary_echo(streams: StreamSocket) -> None:
    echoed = next_event(streams, "echo")
    stream = create_stream()
    chunks = [bytes([0, 1]), bytes([2, 3]), bytes(range(256))]
    await streams.emit("echo", stream)
    (r,), _ = await asyncio.gather(_wait(echoed), write_all(stream, chunks))
    assert await _wait(collect(r)) == b"".join(chunks)


async def _echo_text(ctx: ClientContext, reader: Callable[[IOStream], Awaitable[bytes]]) -> None:
    echoed = next_event(ctx.streams, "echo")
    stream = create_stream()
    await ctx.streams.emit("echo", stream, {"hi": 1})
    (r, obj), _ = await asyncio.gather(_wait(echoed), write_all(stream, ["foo", "bar"]))
    assert obj == {"hi": 1}
    assert await _wait(reader(r)) == b"foobar"


async def _read_small(stream: IOStream) -> bytes:
    parts = []
    while part := await stream.read(2):
        parts.append(part)
    return b"".join(parts)


async def c_file(ctx: ClientContext) -> dict[str, Any]:
    s1, s2 = create_stream(), create_stream()
    sent, (got, n), _ = await asyncio.gather(
        ctx.streams.call("file", s1, {"size": 300000}, timeout=TIMEOUT),
        ctx.streams.call("sha", s2, timeout=TIMEOUT),
        pipe(s1, s2),
    )
    assert got == sent, "sha of the file sent == sha of the bytes piped back"
    assert n == 300000
    return {"sha256": sent}


async def c_flowing(ctx: ClientContext) -> None:
    await _echo_text(ctx, collect)


async def c_paused(ctx: ClientContext) -> None:
    await _echo_text(ctx, _read_small)


async def c_binary(ctx: ClientContext) -> None:
    await binary_echo(ctx.streams)


async def c_object(ctx: ClientContext) -> None:
    values = [{"foo": 0}, {"bar": 1}, "baz", [1, 2], {"n": {"a": [True, None]}}]
    echoed = next_event(ctx.streams, "echo")
    stream = create_stream(object_mode=True)
    await ctx.streams.emit("echo", stream)
    (r,), _ = await asyncio.gather(_wait(echoed), write_all(stream, values))
    assert r.object_mode
    assert await _wait(collect(r)) == values


async def c_echo_list(ctx: ClientContext) -> None:
    s1, s2 = create_stream(), create_stream()
    echoed = next_event(ctx.streams, "echo")
    await ctx.streams.emit("echo", [s1, s2], "tag")
    ([r1, r2], tag), _, _ = await asyncio.gather(
        _wait(echoed), write_all(s1, ["a", "b"]), write_all(s2, ["c"])
    )
    assert tag == "tag"
    assert await _wait(asyncio.gather(collect(r1), collect(r2))) == [b"ab", b"c"]


async def c_echo_dict(ctx: ClientContext) -> None:
    s1, s2 = create_stream(), create_stream()
    echoed = next_event(ctx.streams, "echo")
    await ctx.streams.emit("echo", {"foo": s1, "bar": s2})
    (got,), _, _ = await asyncio.gather(_wait(echoed), write_all(s1, ["x"]), write_all(s2, ["y", "z"]))
    assert set(got) == {"foo", "bar"}
    assert await _wait(asyncio.gather(collect(got["foo"]), collect(got["bar"]))) == [b"x", b"yz"]


async def c_sendback(ctx: ClientContext) -> None:
    stream = create_stream(allow_half_open=True)
    await ctx.streams.emit("sendBack", stream)
    got, _ = await _wait(asyncio.gather(collect(stream), write_all(stream, ["foo", "bar"])))
    assert got == b"foobar"


async def c_multi(ctx: ClientContext) -> None:
    s1, s2 = create_stream(), create_stream()
    await ctx.streams.emit("multi", s1, s2)
    got, _ = await _wait(asyncio.gather(collect(s2), write_all(s1, ["foo", "bar"])))
    assert got == b"foobar"


async def c_ack(ctx: ClientContext) -> None:
    stream = create_stream()
    r, _ = await asyncio.gather(
        ctx.streams.call("ack", stream, timeout=TIMEOUT), write_all(stream, ["foo", "bar"])
    )
    assert isinstance(r, IOStream)
    assert await _wait(collect(r)) == b"foobar"


async def c_ack_list(ctx: ClientContext) -> None:
    s1, s2 = create_stream(), create_stream()
    acked, _, _ = await asyncio.gather(
        ctx.streams.call("ack", [s1, {"foo": s2}], timeout=TIMEOUT),
        write_all(s1, ["one"]),
        write_all(s2, ["two"]),
    )
    r1, holder = acked
    assert await _wait(asyncio.gather(collect(r1), collect(holder["foo"]))) == [b"one", b"two"]


async def c_ack_dict(ctx: ClientContext) -> None:
    s1, s2 = create_stream(), create_stream()
    acked, _, _ = await asyncio.gather(
        ctx.streams.call("ack", {"a": s1, "b": s2, "n": 1}, timeout=TIMEOUT),
        write_all(s1, ["A"]),
        write_all(s2, ["B"]),
    )
    assert acked["n"] == 1 and set(acked) == {"a", "b", "n"}
    assert await _wait(asyncio.gather(collect(acked["a"]), collect(acked["b"]))) == [b"A", b"B"]


async def c_client_error(ctx: ClientContext) -> None:
    stream = create_stream()
    acked: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
    await ctx.streams.emit("clientError", stream, callback=lambda *args: acked.set_result(args))
    stream.destroy(Exception("error on the client"))
    assert await _wait(acked) == ("error on the client",)


async def c_server_error(ctx: ClientContext) -> dict[str, Any]:
    stream = create_stream()
    await ctx.streams.emit("serverError", stream, "error on the server")
    try:
        got = await _wait(stream.read())
    except StreamBrokenError as exc:
        assert exc.message == "error on the server"
        assert exc.remote is True
        return {"remote": exc.remote}
    raise AssertionError(f"the stream did not fail; read {got!r}")


async def c_big_up(ctx: ClientContext) -> dict[str, Any]:
    return await upload(ctx.streams, 8 * MiB)


async def c_big_down(ctx: ClientContext) -> dict[str, Any]:
    return await download(ctx.streams, 8 * MiB)


async def c_many(ctx: ClientContext) -> dict[str, Any]:
    sizes = [int.from_bytes(os.urandom(4), "big") % 300001 for _ in range(40)]
    jobs = [upload(ctx.streams, n) if i % 2 == 0 else download(ctx.streams, n) for i, n in enumerate(sizes)]
    await asyncio.gather(*jobs)
    return {"streams": len(jobs)}


async def c_base64(ctx: ClientContext) -> None:
    # The Python client was created with ss(sio, force_base64=True) for this scenario.
    await upload(ctx.streams, MiB)
    await binary_echo(ctx.streams)


async def c_reverse(ctx: ClientContext) -> None:
    size = MiB
    data = os.urandom(size)
    writers: list[asyncio.Task[None]] = []

    async def on_upload(n: int) -> IOStream:
        assert n == size
        stream = create_stream()
        writers.append(asyncio.ensure_future(write_bytes(stream, data)))
        return stream

    async def on_sha(stream: IOStream) -> tuple[str, int]:
        return await hash_stream(stream)

    ctx.streams.on("upload", on_upload)
    ctx.streams.on("sha", on_sha)
    report = await ctx.streams.call("reverse", {"size": size}, timeout=TIMEOUT)
    await _wait(asyncio.gather(*writers))
    assert report["uploadSha"] == sha256(data), "server hashed what the client uploaded"
    assert report["uploadBytes"] == size
    assert report["clientSha"] == report["sentSha"], "client hashed what the server sent"
    assert report["clientBytes"] == size


async def c_drop(ctx: ClientContext) -> dict[str, Any]:
    up = create_stream()
    down = await ctx.streams.call("drop", up, timeout=TIMEOUT)
    assert isinstance(down, IOStream)
    up_error, down_error = await _wait(asyncio.gather(write_until_error(up), read_until_error(down)))
    return {"up": up_error, "down": down_error}


CLIENT_SCENARIOS: dict[str, Callable[[ClientContext], Awaitable[Any]]] = {
    "file": c_file,
    "flowing": c_flowing,
    "paused": c_paused,
    "binary": c_binary,
    "object": c_object,
    "echo-list": c_echo_list,
    "echo-dict": c_echo_dict,
    "sendback": c_sendback,
    "multi": c_multi,
    "ack": c_ack,
    "ack-list": c_ack_list,
    "ack-dict": c_ack_dict,
    "client-error": c_client_error,
    "server-error": c_server_error,
    "big-up": c_big_up,
    "big-down": c_big_down,
    "many": c_many,
    "base64": c_base64,
    "reverse": c_reverse,
    "drop": c_drop,
}
