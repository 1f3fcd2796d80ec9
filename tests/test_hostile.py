"""A hostile peer: a raw python-socketio client (no sio_stream) sends malformed stream events.

Every case checks the same contract: the offending stream or event fails with a clear error
(an error ack or a ``$stream-error`` to that peer), nothing raises out of a handler (no
"Task exception was never retrieved", no traceback logged), an honest client on the same
server still gets its stream through byte-identical, and the registry returns to empty.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

import sio_stream
from sio_stream import StreamError, create_stream
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

NAMESPACES = ["/", "/other"]


@dataclass
class Raw:
    """The hostile client and what the server sent it, per namespace."""

    sio: socketio.AsyncClient
    errors: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {n: [] for n in NAMESPACES})
    reads: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {n: [] for n in NAMESPACES})
    writes: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {n: [] for n in NAMESPACES})
    ends: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {n: [] for n in NAMESPACES})

    async def send(self, event: str, *args: Any, namespace: str = "/") -> None:
        await self.sio.emit(event, args if args else None, namespace=namespace)

    async def call(self, event: str, *args: Any, namespace: str = "/") -> Any:
        return await self.sio.call(event, args if args else None, namespace=namespace, timeout=10)

    def error_for(self, stream_id: Any, namespace: str = "/") -> str | None:
        for args in self.errors[namespace]:
            if args and args[0] == stream_id:
                return str(args[1]) if len(args) > 1 else ""
        return None

    async def wait_error(self, stream_id: Any, namespace: str = "/") -> str:
        await wait_for(lambda: self.error_for(stream_id, namespace) is not None, timeout=5)
        message = self.error_for(stream_id, namespace)
        assert message
        return message

    def reads_for(self, stream_id: str, namespace: str = "/") -> int:
        return sum(1 for args in self.reads[namespace] if args and args[0] == stream_id)

    async def open_upload(self, options: Any = None, namespace: str = "/", event: str = "upload") -> str:
        """Send a stream to the server's reading handler; return its id once it asked for data."""
        stream_id = str(uuid.uuid4())
        placeholder: dict[str, Any] = {"$stream": stream_id}
        if options is not None:
            placeholder["options"] = options
        await self.send("$stream", event, placeholder, namespace=namespace)
        await wait_for(lambda: self.reads_for(stream_id, namespace) > 0, timeout=5)
        return stream_id


@dataclass
class Arena:
    server: socketio.AsyncServer
    url: str
    raw: Raw
    honest: socketio.AsyncClient
    handler_errors: list[BaseException]
    loop_errors: list[dict[str, Any]]
    tasks: set[asyncio.Task[Any]]

    def streams(self, namespace: str = "/") -> sio_stream.StreamSocket:
        return sio_stream.ss(self.server, namespace)

    def stream_count(self) -> int:
        return sum(self.streams(n).stream_count() for n in NAMESPACES)

    async def honest_roundtrip(self, size: int = 300_000) -> None:
        """An honest client's upload, concurrent with the hostile traffic, arrives intact."""
        data = os.urandom(size)
        stream = create_stream()
        call = asyncio.ensure_future(sio_stream.ss(self.honest).call("upload", stream, timeout=10))
        await stream.end(data)
        assert await call == hashlib.sha256(data).hexdigest()


def _register(server: socketio.AsyncServer, arena_errors: list[BaseException], tasks: set[Any]) -> None:
    for namespace in NAMESPACES:
        streams = sio_stream.ss(server, namespace)

        @streams.on("upload")
        async def upload(sid: str, stream: sio_stream.IOStream, *rest: Any) -> str:
            try:
                data = await stream.read()
            except StreamError as exc:
                arena_errors.append(exc)
                return f"failed: {exc}"
            if stream.object_mode:
                return "objects"
            return hashlib.sha256(data).hexdigest()

        @streams.on("objects")
        async def objects(sid: str, stream: sio_stream.IOStream) -> list[Any]:
            got: list[Any] = []
            try:
                async for item in stream:
                    got.append(item)
            except StreamError as exc:
                arena_errors.append(exc)
            return got

        @streams.on("hold")
        async def hold(sid: str, stream: sio_stream.IOStream) -> None:
            # Take one byte, then hold every chunk without consuming it (a stalled reader).
            await stream.receive(1)
            while not stream.closed:  # noqa: ASYNC110 (polls the core's state, no event to await)
                await asyncio.sleep(0.01)

        @streams.on("download")
        async def download(sid: str, size: Any) -> sio_stream.IOStream:
            stream = create_stream()

            async def produce() -> None:
                try:
                    await stream.end(b"d" * int(size))
                except StreamError as exc:
                    arena_errors.append(exc)

            task = asyncio.ensure_future(produce())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            return stream


@pytest.fixture
async def arena(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Arena]:
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    server = socketio.AsyncServer(async_mode="aiohttp")
    handler_errors: list[BaseException] = []
    tasks: set[asyncio.Task[Any]] = set()
    _register(server, handler_errors, tasks)
    runner, url = await start_server(server)
    raw_sio = socketio.AsyncClient()
    raw = Raw(raw_sio)
    for namespace in NAMESPACES:
        for event, record in (
            ("$stream-error", raw.errors),
            ("$stream-read", raw.reads),
            ("$stream-write", raw.writes),
            ("$stream-end", raw.ends),
        ):

            def make(target: dict[str, list[tuple[Any, ...]]], ns: str) -> Callable[..., None]:
                def handler(*args: Any) -> None:
                    target[ns].append(args)

                return handler

            raw_sio.on(event, make(record, namespace), namespace=namespace)
    honest = socketio.AsyncClient()
    sio_stream.ss(honest)
    await raw_sio.connect(url, transports=["websocket"], namespaces=NAMESPACES)
    await honest.connect(url, transports=["websocket"])
    arena = Arena(server, url, raw, honest, handler_errors, loop_errors, tasks)
    try:
        yield arena
        # The server still serves after the hostile traffic, and nothing leaked out of it.
        await arena.honest_roundtrip()
        if raw_sio.connected:
            await raw_sio.disconnect()
        await wait_for(lambda: arena.stream_count() == 0, timeout=5)
        await wait_for(lambda: not tasks, timeout=5)
        gc.collect()
        await asyncio.sleep(0)
        assert loop_errors == []
        bad = [
            r
            for r in caplog.records
            if r.exc_info or r.levelno >= logging.ERROR or "never retrieved" in r.getMessage()
        ]
        assert bad == [], [r.getMessage() for r in bad]
    finally:
        loop.set_exception_handler(previous_handler)
        for client in (raw_sio, honest):
            if client.connected:
                await client.disconnect()
        await server.shutdown()
        await runner.cleanup()


# -- the cases -----------------------------------------------------------------------------------

BAD_IDS: list[Any] = [None, 0, 1.5, True, [], ["x"], {}, {"a": 1}, "", "no-such-stream"]


async def test_wrong_argument_counts_and_id_types_for_every_event(arena: Arena) -> None:
    raw = arena.raw
    honest = asyncio.ensure_future(arena.honest_roundtrip())
    for event in ("$stream", "$stream-read", "$stream-end", "$stream-error", "$stream-hello"):
        await raw.send(event)
        for bad in BAD_IDS:
            await raw.send(event, bad)
            await raw.send(event, bad, bad, bad, bad, bad, bad)
    # A write always gets an ack; an unknown or malformed id is refused in it.
    assert await raw.call("$stream-write") == "invalid stream id: None"
    for bad in BAD_IDS:
        answer = await raw.call("$stream-write", bad, b"x", "buffer")
        assert isinstance(answer, str) and answer.startswith("invalid stream id")
        answer = await raw.call("$stream-write", bad, b"x", "buffer", 1, 2, 3)
        assert isinstance(answer, str) and answer.startswith("invalid stream id")
    await honest
    assert arena.stream_count() == 0


async def test_ids_of_another_connection_or_namespace_are_unknown(arena: Arena) -> None:
    raw = arena.raw
    # An honest upload in flight: its id is known to the server on another connection.
    stream = create_stream()
    call = asyncio.ensure_future(sio_stream.ss(arena.honest).call("upload", stream, timeout=10))
    await stream.write(b"a" * 1000)
    await wait_for(lambda: arena.stream_count() == 1)
    for namespace in NAMESPACES:
        answer = await raw.call("$stream-write", stream.id, b"evil", "buffer", namespace=namespace)
        assert answer == f"invalid stream id: {stream.id}"
        await raw.send("$stream-end", stream.id, namespace=namespace)
        await raw.send("$stream-error", stream.id, "evil", namespace=namespace)
        await raw.send("$stream-read", stream.id, 16, namespace=namespace)
    # A raw stream in "/" is unknown in "/other" on the same socket.
    own = await raw.open_upload()
    answer = await raw.call("$stream-write", own, b"x", "buffer", namespace="/other")
    assert answer == f"invalid stream id: {own}"
    await stream.end(b"b" * 1000)
    assert await call == hashlib.sha256(b"a" * 1000 + b"b" * 1000).hexdigest()
    assert await raw.call("$stream-write", own, b"ok", "buffer") is None
    await raw.send("$stream-end", own)
    await wait_for(lambda: arena.stream_count() == 0)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("not an object", "bad stream options"),
        ([1, 2], "bad stream options"),
        ({"highWaterMark": "big"}, "highWaterMark"),
        ({"highWaterMark": -1}, "highWaterMark"),
        ({"highWaterMark": 10**99}, None),
        ({"highWaterMark": 1e308}, None),
        ({"objectMode": "yes"}, "objectMode"),
        ({"allowHalfOpen": 1}, "allowHalfOpen"),
        ({"encoding": 5}, "encoding"),
        # A peer's odd encoding name is carried, not used: its stream works (create_stream refuses it).
        ({"encoding": "klingon"}, None),
        ({"encoding": "UTF-16LE", "objectMode": False}, None),
        ({"whatever": {"deep": [1, 2, 3]}, "x": None}, None),
    ],
)
async def test_placeholder_options(arena: Arena, options: Any, expected: str | None) -> None:
    raw = arena.raw
    stream_id = str(uuid.uuid4())
    await raw.send("$stream", "upload", {"$stream": stream_id, "options": options})
    if expected is None:
        # Accepted: the server reads it like any other stream.
        await wait_for(lambda: raw.reads_for(stream_id) > 0, timeout=5)
        assert await raw.call("$stream-write", stream_id, b"hi", "buffer") is None
        await raw.send("$stream-end", stream_id)
    else:
        assert expected in await raw.wait_error(stream_id)
    await wait_for(lambda: arena.stream_count() == 0)


async def test_unknown_event_and_bad_event_names_refuse_their_streams(arena: Arena) -> None:
    raw = arena.raw
    ids = [str(uuid.uuid4()) for _ in range(3)]
    await raw.send("$stream", "no-such-event", {"$stream": ids[0]}, [{"x": {"$stream": ids[1]}}])
    for stream_id in ids[:2]:
        assert "no handler" in await raw.wait_error(stream_id)
    await raw.send("$stream", 42, {"$stream": ids[2]})
    assert "bad event name" in await raw.wait_error(ids[2])
    await raw.send("$stream", None)
    await arena.honest_roundtrip()
    await wait_for(lambda: arena.stream_count() == 0)


async def test_deep_and_huge_argument_trees(arena: Arena) -> None:
    raw = arena.raw
    deep: Any = {"$stream": str(uuid.uuid4())}
    for _ in range(200):
        deep = [deep]
    await raw.send("$stream", "upload", deep)
    wide = [{"k": list(range(50))} for _ in range(2000)]
    stream_id = str(uuid.uuid4())
    await raw.send("$stream", "upload", {"$stream": stream_id}, wide)
    await wait_for(lambda: raw.reads_for(stream_id) > 0, timeout=5)
    await raw.send("$stream-end", stream_id)
    await arena.honest_roundtrip()
    await wait_for(lambda: arena.stream_count() == 0)


@pytest.mark.parametrize(
    ("chunk", "encoding", "expected"),
    [
        ({"an": "object"}, "buffer", "cannot carry a dict chunk"),
        ([1, 2, 3], "buffer", "cannot carry a list chunk"),
        (12, None, "cannot carry a int chunk"),
        (None, None, "cannot carry a NoneType chunk"),
        ("not base64!!", "base64", "invalid base64"),
        ("\u00e9t\u00e9", "base64", "invalid base64"),
        ("abc", "klingon", "unsupported chunk encoding"),
        ("zz", "hex", "invalid hex"),
        ("\u0100", "latin1", "not encodable"),
    ],
)
async def test_wrong_chunks_fail_the_stream(arena: Arena, chunk: Any, encoding: Any, expected: str) -> None:
    raw = arena.raw
    stream_id = await raw.open_upload()
    answer = await raw.call("$stream-write", stream_id, chunk, encoding)
    assert isinstance(answer, str) and expected in answer
    assert expected in await raw.wait_error(stream_id)
    await wait_for(lambda: arena.stream_count() == 0)
    assert any(expected in str(e) for e in arena.handler_errors)


async def test_null_chunk_in_object_mode_is_refused(arena: Arena) -> None:
    raw = arena.raw
    stream_id = await raw.open_upload({"objectMode": True}, event="objects")
    assert await raw.call("$stream-write", stream_id, {"ok": 1}, "utf8") is None
    answer = await raw.call("$stream-write", stream_id, None, "utf8")
    assert isinstance(answer, str) and "null" in answer
    await raw.wait_error(stream_id)
    await wait_for(lambda: arena.stream_count() == 0)


async def test_writes_beyond_credit_after_end_and_end_error_for_ended_streams(arena: Arena) -> None:
    raw = arena.raw
    stream_id = await raw.open_upload({"allowHalfOpen": True})
    # A plain peer: one read per credit; the window opens with one (its floor).
    await wait_for(lambda: raw.reads_for(stream_id) == 1)
    assert await raw.call("$stream-write", stream_id, b"1", "buffer") is None
    await raw.send("$stream-end", stream_id)
    await raw.send("$stream-end", stream_id)
    answer = await raw.call("$stream-write", stream_id, b"late", "buffer")
    assert isinstance(answer, str) and ("after end" in answer or "invalid stream id" in answer)
    await raw.send("$stream-error", stream_id, "too late")
    await raw.send("$stream-end", stream_id)
    # Credit: a window grows only as its reader consumes; a reader that holds what it got
    # (nothing consumed) has one credit, and refuses a second chunk.
    flood = await raw.open_upload(event="hold")
    await wait_for(lambda: raw.reads_for(flood) == 1)
    answers = [await raw.call("$stream-write", flood, b"xx", "buffer") for _ in range(2)]
    assert answers[0] is None
    assert isinstance(answers[1], str) and "credit" in answers[1]
    assert "credit" in await raw.wait_error(flood)
    await wait_for(lambda: arena.stream_count() == 0)


async def test_duplicate_decoded_id(arena: Arena) -> None:
    raw = arena.raw
    stream_id = await raw.open_upload()
    await raw.send("$stream", "upload", {"$stream": stream_id})
    assert "Decoded stream already exists" in await raw.wait_error(stream_id)
    # The first stream with that id is untouched.
    assert await raw.call("$stream-write", stream_id, b"abc", "buffer") is None
    await raw.send("$stream-end", stream_id)
    await wait_for(lambda: arena.stream_count() == 0)


@pytest.mark.parametrize("hello", [False, True])
async def test_reads_with_odd_sizes_and_counts(arena: Arena, hello: bool) -> None:
    raw = arena.raw
    if hello:
        await raw.send("$stream-hello", {"version": 1, "features": ["batch-read", 7, None]})
    stream_id = await raw.call("$stream", "download", 1000)
    assert isinstance(stream_id, dict)
    sid = stream_id["$stream"]
    for size in (-1, 0, 10**99, "abc", None, [1], 1.5):
        await raw.send("$stream-read", sid, size)
    await wait_for(lambda: any(args[0] == sid for args in raw.ends["/"]) or bool(raw.errors["/"]), timeout=5)
    got = b"".join(args[1] for args in raw.writes["/"] if args[0] == sid)
    assert got == b"d" * 1000
    await wait_for(lambda: arena.stream_count() == 0)
    # Bad counts from a peer that announced batch reads fail the stream.
    if hello:
        # (A count of 0 is a claim: "I received the stream", granting nothing.)
        for count in (-5, "x", 2.5, [2]):
            other = await raw.call("$stream", "download", 10)
            await raw.send("$stream-read", other["$stream"], 16, count)
            assert "bad read count" in await raw.wait_error(other["$stream"])
        # Credit beyond the writer's limit (max_credit chunks toward a peer without
        # credit-limit) is a protocol error too: it would let the stream queue that much.
        huge = await raw.call("$stream", "download", 100)
        await raw.send("$stream-read", huge["$stream"], 16, 10**99)
        assert "credit beyond the limit" in await raw.wait_error(huge["$stream"])
        within = await raw.call("$stream", "download", 100)
        await raw.send("$stream-read", within["$stream"], 16, 1024)
        await wait_for(lambda: any(args[0] == within["$stream"] for args in raw.ends["/"]), timeout=5)
    await wait_for(lambda: arena.stream_count() == 0)


async def test_hostile_hello_payloads(arena: Arena) -> None:
    raw = arena.raw
    for info in (None, 1, "x", [], {"features": "batch-read"}, {"features": [[], {}, 1]}, {"version": "z"}):
        await raw.send("$stream-hello", info)
    stream_id = await raw.open_upload()
    assert await raw.call("$stream-write", stream_id, b"ok", "buffer") is None
    await raw.send("$stream-end", stream_id)
    await wait_for(lambda: arena.stream_count() == 0)


async def test_disconnect_with_hostile_streams_open_leaves_nothing(arena: Arena) -> None:
    raw = arena.raw
    for _ in range(5):
        await raw.open_upload()
    await raw.open_upload(namespace="/other")
    await raw.call("$stream", "download", 10_000_000)
    await wait_for(lambda: arena.stream_count() == 7)
    await raw.sio.disconnect()
    await wait_for(lambda: arena.stream_count() == 0)


HostileCase = Callable[[Arena], Awaitable[None]]


async def test_handler_returning_a_stream_after_the_peer_left(arena: Arena) -> None:
    raw = arena.raw
    returned: list[sio_stream.IOStream] = []
    left = asyncio.Event()
    entered = asyncio.Event()

    @arena.streams().on("late")
    async def late(sid: str) -> sio_stream.IOStream:
        entered.set()
        await left.wait()
        stream = create_stream()
        returned.append(stream)
        return stream

    await raw.sio.emit("$stream", ("late",), callback=lambda *args: None)
    await asyncio.wait_for(entered.wait(), 10)
    await raw.sio.disconnect()
    await wait_for(lambda: arena.streams().connection_count == 1)  # only the honest client
    left.set()
    await wait_for(lambda: bool(returned))
    await wait_for(lambda: returned[0].error is not None)
    assert "Connection aborted" in str(returned[0].error)
    assert arena.streams().connection_count == 1
