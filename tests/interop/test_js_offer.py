"""Our JavaScript client (js/sio-stream.js, in Node) as a reader that offers initial credit
(negotiated ``initial-credit``), over a real Socket.IO connection: a download from the Python
server takes the offer and arrives intact; a writer that breaks the offer's rules (a credit
that was not offered, a final size other than what it sent) fails its stream only, with a
``$stream-error`` or an ``{"integrity"}`` answer, and the connection carries on. The rule-breaking
writer is a python-socketio server that speaks the wire by hand (sio_stream's writer keeps the
rules)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import socketio
from _node import NODE_DIR, NodeTools, json_line_client

import sio_stream
from sio_stream import IOStream, create_stream
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
SCRIPT = NODE_DIR / "offer_client.mjs"
#: The client's default offer (DEFAULT_INITIAL_CREDIT in js/sio-stream.js) in its 256 KiB chunks.
OFFERED_CREDITS = 64
#: Generous: two busy cores shared with other test runs.
TIMEOUT = 120.0


def payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


@contextlib.asynccontextmanager
async def sio_stream_server(sent: list[IOStream]) -> AsyncIterator[tuple[str, sio_stream.StreamSocket]]:
    """A Python server whose ``download(size)`` answers a stream of ``payload(size)`` (each kept
    in ``sent``); ss() with its defaults: taking an offer needs no option."""
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(sio)
    tasks: set[asyncio.Task[None]] = set()

    async def produce(stream: IOStream, data: bytes) -> None:
        for at in range(0, len(data), MiB):
            await stream.write(data[at : at + MiB])
        await stream.end()

    @streams.on("download")
    async def download(sid: str, size: int) -> IOStream:
        stream = create_stream()
        sent.append(stream)
        task = asyncio.ensure_future(produce(stream, payload(size)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return stream

    runner, url = await start_server(sio)
    try:
        yield url, streams
    finally:
        for task in list(tasks):
            task.cancel()
        await sio.shutdown()
        await runner.cleanup()


@pytest.mark.parametrize("offer", [True, False], ids=["offered", "initialCredit-0"])
async def test_a_download_takes_the_offer_and_arrives_intact(node_tools: NodeTools, offer: bool) -> None:
    size = 24 * MiB  # beyond the 16 MiB offer: the stream goes on with credit given back
    sent: list[IOStream] = []
    config: dict[str, Any] = {"download": size}
    config["initialCredit"] = 16 * MiB if offer else 0
    async with sio_stream_server(sent) as (url, streams):
        async with json_line_client(node_tools, SCRIPT, {"url": url, **config}, TIMEOUT) as line:
            result = await line()
            assert "error" not in result or result["error"] is None, result
            assert result["received"] == size
            assert result["sha256"] == hashlib.sha256(payload(size)).hexdigest()
            # The server's writer took the whole offer (its state), and our reader was primed with it.
            (stream,) = sent
            taken = OFFERED_CREDITS if offer else 0
            assert stream._core.initial_credit == taken
            assert (result["primed"], result["offersTaken"]) == (taken, int(offer))
        await wait_for(lambda: not any(c.core.streams for c in streams._connections.values()), TIMEOUT)


class HandWriter:
    """A python-socketio server that writes streams to its client by hand: it answers the
    client's hello with the features an offer needs, keeps the offer, and on the client's
    ``play`` runs ``scenario(self, sid)``."""

    FEATURES = ("batch-read", "read-size", "initial-credit", "unacked-write")

    def __init__(self, scenario: Callable[[HandWriter, str], Awaitable[None]]) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp")
        self.offers: list[Any] = []
        self.errors: dict[str, str] = {}
        self.ids: dict[str, str] = {}
        self.answers: dict[str, asyncio.Future[tuple[Any, ...]]] = {}
        self.failures: list[BaseException] = []

        @self.sio.on("$stream-hello")
        async def hello(sid: str, info: Any) -> None:
            self.offers.append(info.get("initial"))
            await self.sio.emit("$stream-hello", {"version": 1, "features": list(self.FEATURES)}, to=sid)

        @self.sio.on("$stream-error")
        async def error(sid: str, stream_id: str, message: str) -> None:
            self.errors[stream_id] = message

        @self.sio.on("play")
        async def play(sid: str) -> None:
            try:
                await scenario(self, sid)
            except BaseException as exc:  # reported by the test, not lost in a handler task
                self.failures.append(exc)
                raise

    async def get(self, sid: str, name: str, credit: Any) -> str:
        """Send a new stream called ``name`` whose placeholder claims ``credit``; its id."""
        stream_id = self.ids[name] = str(uuid.uuid4())
        await self.sio.emit("$stream", ("get", {"$stream": stream_id, "credit": credit}, name), to=sid)
        return stream_id

    async def write(self, sid: str, stream_id: str, data: bytes) -> None:
        await self.sio.emit("$stream-write", (stream_id, data, "buffer"), to=sid)

    async def end(self, sid: str, stream_id: str, size: int) -> tuple[Any, ...]:
        """End ``stream_id`` saying its final size is ``size``: the client's answer."""
        answer = self.answers[stream_id] = asyncio.get_running_loop().create_future()
        await self.sio.emit(
            "$stream-end", (stream_id, {"size": size}), to=sid, callback=lambda *a: answer.set_result(a)
        )
        return await asyncio.wait_for(answer, TIMEOUT)


@contextlib.asynccontextmanager
async def hand_writer(
    scenario: Callable[[HandWriter, str], Awaitable[None]],
) -> AsyncIterator[tuple[HandWriter, str]]:
    writer = HandWriter(scenario)
    runner, url = await start_server(writer.sio)
    try:
        yield writer, url
    finally:
        await writer.sio.shutdown()
        await runner.cleanup()


async def test_a_credit_that_was_not_offered_fails_its_stream_only(node_tools: NodeTools) -> None:
    async def scenario(w: HandWriter, sid: str) -> None:
        bad = await w.get(sid, "bad", 10_000)  # more than offered
        await wait_for(lambda: bad in w.errors, TIMEOUT)
        good = await w.get(sid, "good", 2)
        await w.write(sid, good, b"a" * 1000)
        await w.write(sid, good, b"b" * 500)
        assert await w.end(sid, good, 1500) == ()
        await w.get(sid, "again", 1)  # the offer was taken: one per connection

    async with hand_writer(scenario) as (writer, url):
        config = {"url": url, "initialCredit": 16 * MiB, "expect": ["bad", "good", "again"]}
        async with json_line_client(node_tools, SCRIPT, config, TIMEOUT) as line:
            result = await line()
            assert "error" not in result, result
            results = result["results"]
            assert writer.offers == [{"credits": OFFERED_CREDITS, "size": 256 * 1024}]
            assert "bad initial credit 10000 (offered 64)" in results["bad"]["error"]
            good = results["good"]
            assert (good["bytes"], good["primed"], good.get("error")) == (1500, 2, None)
            assert good["sha256"] == hashlib.sha256(b"a" * 1000 + b"b" * 500).hexdigest()
            assert "initial credit that was not offered" in results["again"]["error"]
            await wait_for(lambda: writer.ids["again"] in writer.errors, TIMEOUT)
            assert "bad initial credit" in writer.errors[writer.ids["bad"]]
            assert writer.ids["good"] not in writer.errors
            assert not writer.failures, writer.failures
            # The connection stayed up through both failures.
            assert len(writer.sio.manager.rooms["/"][None]) == 1


async def test_a_final_size_other_than_what_arrived_fails_with_integrity_error(node_tools: NodeTools) -> None:
    answers: list[tuple[Any, ...]] = []

    async def scenario(w: HandWriter, sid: str) -> None:
        short = await w.get(sid, "short", 2)
        await w.write(sid, short, b"x" * 1000)
        answers.append(await w.end(sid, short, 2000))  # one write "lost"

    async with hand_writer(scenario) as (writer, url):
        config = {"url": url, "initialCredit": 16 * MiB, "expect": ["short"]}
        async with json_line_client(node_tools, SCRIPT, config, TIMEOUT) as line:
            result = await line()
            assert "error" not in result, result
            short = result["results"]["short"]
            assert short["errorName"] == "IntegrityError", short
            assert "ended at 1000 bytes of its final size 2000" in short["error"]
            await wait_for(lambda: bool(answers) or bool(writer.failures), TIMEOUT)
            assert not writer.failures, writer.failures
            ((answer,),) = answers
            assert "ended at 1000 bytes of its final size 2000" in answer["integrity"]
            # The writer learns it from the end's answer (unacked-write), not a $stream-error.
            assert writer.errors == {}
