"""Our JavaScript client (js/sio-stream.js) in Node against the Python server, through
``benchmarks/link.py``'s cutting relay: a stream whose carrying event is lost in a drop, with
the reads its reader sent behind it (the case test_session_rereads.py covers for the Python
client). The client emits ``fetch`` with a fresh stream that it reads and the server writes
into; the cut loses the event and the reads; after the resume the event goes again, the reader
asks again for its window, and the download completes, handled once."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
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

SCRIPT = NODE_DIR / "rereads_client.mjs"
#: Generous: two busy cores shared with other test runs.
TIMEOUT = 120.0
#: A long delay line (1 s each way): the cut right after the client says it emitted always
#: catches the event and the reads still in the link (the test checks it was not late).
RTT = 2.0


@contextlib.asynccontextmanager
async def node_client(tools: NodeTools, url: str) -> AsyncIterator[Any]:
    """Run rereads_client.mjs; yields ``line()``: its next JSON line."""
    async with json_line_client(tools, SCRIPT, {"url": url}, TIMEOUT) as line:
        yield line


async def test_a_js_download_whose_event_is_lost_in_a_drop_completes_after_the_resume(
    node_tools: NodeTools,
) -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(sio)
    runner, url = await start_server(sio)
    data = os.urandom(1024 * 1024)
    runs: list[str] = []

    @streams.on("fetch")
    async def fetch(sid: str, name: str, stream: IOStream) -> None:
        runs.append(name)
        await stream.end(data)

    try:
        with tolerate_socketio_cut_races():
            async with Link(int(url.rsplit(":", 1)[1]), rtt=RTT) as link:
                async with node_client(node_tools, link.url) as line:
                    ready = await line()
                    assert "resume" in ready["features"], ready
                    emitted = await line()
                    assert emitted == {"emitted": True, "reads": 1}, emitted  # a read behind the event
                    assert link.statistics().up.in_flight > 0  # the event and the read, in the link
                    assert link.cut() == 1
                    assert runs == [], "the test is late: the event arrived before the cut"
                    result = await line()
                assert result["errors"] == [], result["errors"]
                assert result["size"] == len(data)
                assert result["sha256"] == hashlib.sha256(data).hexdigest()
                assert runs == ["a"]  # handled once
                assert result["statistics"]["resumes"] == 1
                assert result["statistics"]["eventsResent"] == 1
                assert result["streamCount"] == 0
                await wait_for(lambda: streams.stream_count() == 0, TIMEOUT)
    finally:
        await sio.shutdown()
        await runner.cleanup()
