"""Our JavaScript client (js/sio-stream.js) in Node against the Python server, through
``benchmarks/link.py``'s cutting relay: application events and their answers exactly once
across resumes (the second part of negotiated ``resume``). A ``call()`` whose answer is pending
at a cut gets it after the resume, and events carrying streams, on the wire at the cuts, are
each handled once and answered once."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio
from _node import NODE_DIR, NodeTools, json_line_client

import sio_stream
from benchmarks.link import Link
from sio_stream import IOStream
from tests.support import start_server, wait_for
from tests.test_session_resume import tolerate_socketio_cut_races

pytestmark = pytest.mark.anyio

KiB = 1024
SCRIPT = NODE_DIR / "events_client.mjs"
#: Generous: two busy cores shared with other test runs.
TIMEOUT = 120.0


@dataclass
class Server:
    streams: sio_stream.StreamSocket
    link: Link
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    slow_started: list[int] = field(default_factory=list)
    puts_handled: collections.Counter[int] = field(default_factory=collections.Counter)
    puts_done: list[tuple[int, int, str]] = field(default_factory=list)
    client_sids: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def serving(*, rate: float | None = None, rtt: float = 0.01) -> AsyncIterator[Server]:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(sio)
    runner, url = await start_server(sio)
    try:
        with tolerate_socketio_cut_races():
            async with Link(int(url.rsplit(":", 1)[1]), rate=rate, rtt=rtt) as link:
                server = Server(streams, link)

                @streams.on("slow")
                async def slow(sid: str, n: int) -> int:
                    server.slow_started.append(n)
                    await server.gate.wait()
                    return n * 2

                @streams.on("ready")
                async def ready(sid: str) -> None:
                    server.client_sids.append(sid)

                @streams.on("put")
                async def put(sid: str, stream: IOStream, meta: dict[str, Any]) -> dict[str, Any]:
                    n = meta["n"]
                    server.puts_handled[n] += 1
                    digest, size = hashlib.sha256(), 0
                    async for chunk in stream:
                        digest.update(chunk)
                        size += len(chunk)
                    server.puts_done.append((n, size, digest.hexdigest()))
                    return {"n": n, "size": size, "sha256": digest.hexdigest()}

                yield server
    finally:
        await sio.shutdown()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def node_client(tools: NodeTools, config: dict[str, Any]) -> AsyncIterator[Any]:
    """Run events_client.mjs; yields ``line()``: its next JSON line."""
    async with json_line_client(tools, SCRIPT, config, TIMEOUT) as line:
        yield line


def resumed(server: Server, count: int) -> bool:
    stats = server.streams.statistics()
    return stats.resumes == count and stats.suspended == 0


async def test_a_call_pending_at_a_cut_is_answered_after_the_resume(node_tools: NodeTools) -> None:
    async with serving() as server:
        async with node_client(node_tools, {"url": server.link.url, "slow": 3}) as line:
            ready = await line()
            assert "resume" in ready["features"], ready
            await wait_for(lambda: len(server.slow_started) == 3, TIMEOUT)
            assert server.link.cut() == 1
            await wait_for(lambda: resumed(server, 1), TIMEOUT)
            server.gate.set()  # the handlers answer on the resumed session
            result = await line()
        assert result["errors"] == [], result
        assert result["slow"] == [[0], [2], [4]]
        assert sorted(server.slow_started) == [0, 1, 2], "each handled once"
        assert result["statistics"]["resumes"] == 1


async def test_events_with_streams_are_handled_and_answered_once_across_cuts(node_tools: NodeTools) -> None:
    puts, size = 40, 96 * KiB
    # 4 MB/s: the 3.75 MiB of uploads take about a second, with events, their streams and
    # their answers in flight at each cut.
    async with serving(rate=4e6) as server:
        config = {"url": server.link.url, "puts": puts, "putSize": size, "parallel": 4}
        async with node_client(node_tools, config) as line:
            await line()
            for cut, handled in enumerate((6, 16, 26), start=1):
                await wait_for(
                    lambda handled=handled, cut=cut: (
                        len(server.puts_handled) >= handled and resumed(server, cut - 1)
                    ),
                    TIMEOUT,
                )
                assert server.link.cut() == 1
            result = await line()
        assert result["errors"] == [], result["errors"]
        stats = result["statistics"]
        assert stats["resumes"] == 3
        print(
            f"{puts} puts, 3 cuts: {stats['eventsResent']} events sent again by the client, "
            f"{stats['resent']} bytes resent, {stats['unconfirmedEvents']} events unconfirmed at the end"
        )
        assert server.puts_handled == dict.fromkeys(range(puts), 1), "every event handled exactly once"
        assert sorted(n for n, _size, _sha in server.puts_done) == list(range(puts))
        replies = {p["reply"]["n"]: p for p in result["puts"]}
        assert sorted(replies) == list(range(puts)), "every call answered once"
        for n, put in replies.items():
            assert put["reply"] == {"n": n, "size": size, "sha256": put["sha256"]}
        await wait_for(lambda: server.streams.stream_count() == 0, TIMEOUT)


async def test_events_on_the_wire_at_the_cut_are_sent_again_and_handled_once(node_tools: NodeTools) -> None:
    # A round trip of 2 s: the burst of events the client emits is still in the link (1 s one
    # way) when the test cuts it, as soon as the client says it emitted them.
    burst, size = 5, 8 * KiB
    async with serving(rtt=2.0) as server:
        config = {"url": server.link.url, "burst": burst, "putSize": size}
        async with node_client(node_tools, config) as line:
            await line()
            assert (await line()) == {"emitted": burst}
            assert server.link.cut() == 1
            assert not server.puts_handled, "the test is late: the events arrived before the cut"
            result = await line()
        assert result["errors"] == [], result["errors"]
        stats = result["statistics"]
        assert stats["resumes"] == 1
        assert stats["eventsResent"] == burst, stats
        assert server.puts_handled == dict.fromkeys(range(burst), 1)
        replies = sorted((p["reply"]["n"], p["reply"]["sha256"] == p["sha256"]) for p in result["puts"])
        assert replies == [(n, True) for n in range(burst)]


async def test_the_answer_of_a_js_handler_pending_at_a_cut_reaches_the_servers_call(
    node_tools: NodeTools,
) -> None:
    async with serving() as server:
        async with node_client(node_tools, {"url": server.link.url, "serve": True}) as line:
            await line()
            await wait_for(lambda: bool(server.client_sids), TIMEOUT)
            call = asyncio.ensure_future(
                server.streams.call("double", 21, to=server.client_sids[0], timeout=None)
            )
            try:
                assert (await line()) == {"handling": 21}
                assert server.link.cut() == 1
                # The client's handler answers after the resume: its answer goes as a reply.
                assert await asyncio.wait_for(call, TIMEOUT) == 42
                result = await line()
            finally:
                call.cancel()
        assert server.streams.statistics().resumes == 1
        assert result["errors"] == [] and result["statistics"]["repliesSent"] == 1, result
