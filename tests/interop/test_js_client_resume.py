"""Our JavaScript client (js/sio-stream.js) in Node resumes its session after a dropped
connection, against the Python server, through ``benchmarks/link.py``'s cutting relay: an
upload, a download and an object stream at once, cut three times, arrive intact with no error
reaching either application; a server that forgot the session (its ``resume_timeout`` passed)
refuses it and the streams fail as on a plain drop; a deliberate ``disconnect()`` fails them at
once. (npm socket.io-stream peers send no hello: the other interop tests keep their drop.)"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio
from _node import NODE_DIR, NodeTools, json_line_client

import sio_stream
from benchmarks.link import Link
from sio_stream import ConnectionAbortedStreamError, IOStream, StreamError, create_stream
from tests.support import start_server, wait_for
from tests.test_session_resume import tolerate_socketio_cut_races

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
SCRIPT = NODE_DIR / "resume_client.mjs"
#: Generous: two busy cores shared with other test runs.
TIMEOUT = 120.0


@dataclass
class Server:
    streams: sio_stream.StreamSocket
    link: Link
    uploads: list[Any] = field(default_factory=list)  # (size, sha256) or the error
    objects: list[Any] = field(default_factory=list)  # (count, in order) or the error
    up_received: int = 0
    down_written: int = 0
    producers: set[asyncio.Task[Any]] = field(default_factory=set)


@contextlib.asynccontextmanager
async def serving(*, resume_timeout: float = 30, rate: float | None = None) -> AsyncIterator[Server]:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(sio, resume_timeout=resume_timeout)
    runner, url = await start_server(sio)
    try:
        with tolerate_socketio_cut_races():
            async with Link(int(url.rsplit(":", 1)[1]), rate=rate, rtt=0.01) as link:
                server = Server(streams, link)

                @streams.on("upload")
                async def upload(sid: str, stream: IOStream) -> None:
                    digest, size = hashlib.sha256(), 0
                    try:
                        async for chunk in stream:
                            digest.update(chunk)
                            size += len(chunk)
                            server.up_received += len(chunk)
                    except StreamError as exc:
                        server.uploads.append(exc)
                        return
                    server.uploads.append((size, digest.hexdigest()))

                @streams.on("objects")
                async def objects(sid: str, stream: IOStream) -> None:
                    seen: list[Any] = []
                    try:
                        async for value in stream:
                            seen.append(value)
                    except StreamError as exc:
                        server.objects.append(exc)
                        return
                    expected = [{"n": i, "pad": "x" * (i % 200)} for i in range(len(seen))]
                    server.objects.append((len(seen), seen == expected))

                async def produce(stream: IOStream, data: bytes) -> None:
                    with contextlib.suppress(StreamError):
                        for i in range(0, len(data), 64 * 1024):
                            await stream.write(data[i : i + 64 * 1024])
                            server.down_written += len(data[i : i + 64 * 1024])
                        await stream.end()

                @streams.on("download")
                async def download(sid: str, size: int) -> tuple[IOStream, str]:
                    stream = create_stream()
                    data = os.urandom(size)
                    task = asyncio.ensure_future(produce(stream, data))
                    server.producers.add(task)
                    task.add_done_callback(server.producers.discard)
                    return stream, hashlib.sha256(data).hexdigest()

                yield server
                for task in list(server.producers):
                    task.cancel()
    finally:
        await sio.shutdown()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def node_client(tools: NodeTools, config: dict[str, Any]) -> AsyncIterator[Any]:
    """Run resume_client.mjs; yields ``lines()``: an async function returning its next JSON line."""
    async with json_line_client(tools, SCRIPT, config, TIMEOUT) as line:
        yield line


async def test_upload_download_and_objects_survive_three_cuts(node_tools: NodeTools) -> None:
    size, count = 24 * MiB, 3000
    async with serving(rate=40e6) as server:
        config = {"url": server.link.url, "up": size, "down": size, "objects": count}
        async with node_client(node_tools, config) as line:
            ready = await line()
            assert "resume" in ready["features"], ready
            for cut in range(1, 4):
                # Mid-transfer, each cut once the previous one resumed (a cut during a resume
                # is another case): 1/4, 1/2 and 3/4 of the bytes of both directions moved.
                await wait_for(
                    lambda cut=cut: (
                        server.up_received + server.down_written >= cut * size // 2
                        and server.streams.statistics().resumes == cut - 1
                        and server.streams.statistics().suspended == 0
                    ),
                    TIMEOUT,
                )
                assert server.link.cut() == 1
            result = await line()
        assert result["errors"] == [], result
        assert len(result["drops"]) == 3, result
        assert result["up"] == {"sent": size, "sha256": result["up"]["sha256"]}
        assert result["down"]["received"] == size
        assert result["down"]["sha256"] == result["down"]["expected"]
        assert result["objects"] == {"sent": count}
        await wait_for(lambda: bool(server.uploads and server.objects), TIMEOUT)
        assert server.uploads == [(size, result["up"]["sha256"])]
        assert server.objects == [(count, True)]
        stats = result["statistics"]
        assert stats["resumes"] == 3 and server.streams.statistics().resumes == 3
        assert stats["retained"] == 0 and not stats["suspended"]
        # What the client sent again is what the server had not received at each cut: at most
        # the reader's window (16 MiB grown, 2 MiB at first) per cut.
        assert stats["resent"] <= 3 * 16 * MiB, stats
        print(f"resent by the JavaScript client over 3 cuts: {stats['resent']} bytes")
        await wait_for(lambda: server.streams.stream_count() == 0, TIMEOUT)


@pytest.mark.slow
async def test_four_uploads_and_four_downloads_of_48_mib_with_a_cut_every_3_s(node_tools: NodeTools) -> None:
    # Issue 21's target, for the JavaScript client: 4 x 48 MiB each way at once on one client
    # (and an object stream), through a 40 MB/s link that aborts the connection every 3 s.
    size, streams, count = 48 * MiB, 4, 3000
    async with serving(rate=40e6) as server:
        config = {
            "url": server.link.url,
            "up": size,
            "down": size,
            "parallel": streams,
            "objects": count,
            "announceStart": True,
        }
        async with node_client(node_tools, config) as line:
            await line()
            assert (await line()) == {"started": True}
            result_line = asyncio.ensure_future(line())
            while not result_line.done():
                # The cadence of the cuts (as the link's cut_every), not a synchronisation.
                await asyncio.wait([result_line], timeout=3)
                if not result_line.done():
                    server.link.cut()
            result = result_line.result()
        cuts = server.link.cuts
        stats = result["statistics"]
        print(
            f"4 x 48 MiB up and down with a cut every 3 s: {result['seconds']:.1f} s, {cuts} cuts, "
            f"{stats['resumes']} resumes, {stats['resent']} bytes resent by the client"
        )
        assert result["errors"] == [], result["errors"]
        # Every drop the client saw was resumed, but one it may be suspended in when it prints:
        # the link is cut on a timer, also after the transfers ended (resumes == cuts failed
        # with 4 cuts and 3 resumes).
        drops = len(result["drops"])
        assert cuts >= 2 and drops <= cuts
        assert stats["resumes"] == drops - (1 if stats["suspended"] else 0), (drops, stats)
        assert all(d["received"] == size and d["sha256"] == d["expected"] for d in result["down"])
        await wait_for(lambda: len(server.uploads) == streams and bool(server.objects), TIMEOUT)
        assert sorted(server.uploads) == sorted((size, up["sha256"]) for up in result["up"])
        assert server.objects == [(count, True)]
        # Re-sent per cut: at most one window (16 MiB grown) per upload.
        assert stats["resent"] <= cuts * streams * 16 * MiB


@pytest.mark.parametrize("case", ["refused", "plain"])
async def test_a_refused_resume_fails_the_streams_as_a_plain_drop(node_tools: NodeTools, case: str) -> None:
    # "refused": the server keeps the session 0.3 s and the client comes back after 2 s; "plain":
    # the client does not resume at all (resumeTimeoutMs 0), today's drop.
    async with serving(resume_timeout=0.3, rate=4e6) as server:
        config = {
            "url": server.link.url,
            "up": 16 * MiB,
            "reconnectionDelay": 2000,
            "resumeTimeoutMs": 30_000 if case == "refused" else 0,
        }
        async with node_client(node_tools, config) as line:
            ready = await line()
            assert ("resume" in ready["features"]) == (case == "refused")
            await wait_for(lambda: server.up_received >= MiB, TIMEOUT)
            assert server.link.cut() == 1
            result = await line()
        assert result["up"] is None
        (error,) = result["errors"]
        assert error["message"] == "Connection aborted", error
        assert error["name"] == ("ResumeRefusedError" if case == "refused" else "StreamError")
        assert result["statistics"]["resumes"] == 0
        await wait_for(lambda: bool(server.uploads), TIMEOUT)
        assert isinstance(server.uploads[0], ConnectionAbortedStreamError)


async def test_a_deliberate_disconnect_fails_the_streams_at_once(node_tools: NodeTools) -> None:
    async with serving(resume_timeout=60) as server:
        config = {"url": server.link.url, "up": 64 * MiB, "disconnectAfter": MiB}
        async with node_client(node_tools, config) as line:
            await line()
            result = await line()
            # Not kept for the 60 s of resume_timeout: the server's handler fails now.
            await wait_for(lambda: bool(server.uploads), 20)
        (error,) = result["errors"]
        assert error["message"] == "Connection aborted" and error["name"] == "StreamError", error
        assert result["drops"] == ["io client disconnect"]
        assert isinstance(server.uploads[0], ConnectionAbortedStreamError)
        assert server.streams.statistics().suspended == 0


async def test_a_disconnect_while_the_transport_is_down_fails_the_streams_at_once(
    node_tools: NodeTools,
) -> None:
    # socket.io-client emits no 'disconnect' for a socket that is not connected: the client
    # must still fail its suspended streams now, not after its 30 s resumeTimeoutMs.
    async with serving(rate=4e6) as server:
        config = {"url": server.link.url, "up": 16 * MiB, "disconnectWhileDown": True}
        async with node_client(node_tools, config) as line:
            await line()
            await wait_for(lambda: server.up_received >= MiB, TIMEOUT)
            assert server.link.cut() == 1
            result = await asyncio.wait_for(line(), 20)
        (error,) = result["errors"]
        assert error["message"] == "Connection aborted", error
        assert result["statistics"]["resumes"] == 0 and not result["statistics"]["suspended"]
