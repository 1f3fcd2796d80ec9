"""A python-socketio AsyncClient (websocket transport) where sio_stream plays the client role of
every scenario, against the real JavaScript server (node/server.js, socket.io 4 + socket.io-stream)."""

from __future__ import annotations

import asyncio
import json

import pytest
from _node import SCENARIOS, TIMEOUT, credit_profiles, is_base64_chunk, parse_trace, wait_until
from _roles import CLIENT_SCENARIOS, ClientContext, download, leftover_streams

from sio_stream import ConnectionAbortedStreamError

pytestmark = pytest.mark.anyio


def test_every_scenario_has_a_python_client():
    assert tuple(CLIENT_SCENARIOS) == SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_node_server(node_server, python_client, js_pkg, scenario):
    base64 = scenario == "base64"
    node = await node_server(js_pkg, trace=base64)
    sio, streams = await python_client(node.url, force_base64=base64)
    details = await asyncio.wait_for(CLIENT_SCENARIOS[scenario](ClientContext(sio, streams)), TIMEOUT * 2)

    if scenario == "drop":
        for name in ("up", "down"):
            assert isinstance(details[name], ConnectionAbortedStreamError), (name, details[name])
            assert details[name].message == "Connection aborted"
        line = await node.wait_line("DROPPED ")
        assert json.loads(line.split(" ", 1)[1]) == {"up": "Connection aborted", "down": "Connection aborted"}
    # Every stream ended, failed or was aborted: nothing may stay registered.
    await wait_until(lambda: streams.stream_count() == 0, lambda: leftover_streams(streams))
    if base64:
        # ss(sio, force_base64=True): the JavaScript reader got base64 text and decoded it.
        writes = [e for e in parse_trace(node.stderr, "server") if e.event == "$stream-write" and e.incoming]
        assert writes and all(is_base64_chunk(e) for e in writes), writes[:3]
    if sio.connected:
        await sio.disconnect()
    await node.stop()
    node.check_no_uncaught()


@pytest.mark.parametrize("scenario", ["binary", "big-down", "reverse", "many"])
async def test_js_force_base64_to_python_reader(node_server, python_client, js_pkg, scenario):
    """server.js with ss.forceBase64 = true: Python readers decode its base64 text chunks."""
    node = await node_server(js_pkg, base64=True, trace=True)
    sio, streams = await python_client(node.url)
    await asyncio.wait_for(CLIENT_SCENARIOS[scenario](ClientContext(sio, streams)), TIMEOUT * 2)
    await wait_until(lambda: streams.stream_count() == 0, lambda: leftover_streams(streams))
    sent = [e for e in parse_trace(node.stderr, "server") if e.event == "$stream-write" and not e.incoming]
    assert sent and all(is_base64_chunk(e) for e in sent), sent[:3]
    await sio.disconnect()
    await node.stop()
    node.check_no_uncaught()


async def test_js_writer_to_python_reader_with_several_reads_outstanding(node_server, python_client, js_pkg):
    window = 4
    node = await node_server(js_pkg, trace=True)
    sio, streams = await python_client(node.url, window=window)
    # Python's own view of its reads outstanding, on every loop turn: the JavaScript writer's
    # view (below) sees two at once only when the second read arrives before it answered the
    # first, which on a busy machine it may never do.
    seen = [0]

    async def sample() -> None:
        while True:
            for connection in streams._connections.values():
                for core in connection.core.streams.values():
                    if core.window is not None:
                        seen[0] = max(seen[0], core.window.outstanding)
            await asyncio.sleep(0)

    sampler = asyncio.ensure_future(sample())
    try:
        await asyncio.wait_for(download(streams, 8 * 1024 * 1024), TIMEOUT)
    finally:
        sampler.cancel()
    profiles = credit_profiles(parse_trace(node.stderr, "server"), node_reads=False)
    (profile,) = [p for p in profiles.values() if p.writes > 0]
    assert profile.min_outstanding >= 0, "the JavaScript writer wrote without a read"
    assert seen[0] >= 2, f"Python never had several reads outstanding: {seen[0]}, {profile}"
    assert profile.max_outstanding <= window, f"Python granted more than its window: {profile}"
    await sio.disconnect()
    await node.stop()
    node.check_no_uncaught()


async def test_python_writer_to_js_reader_one_read_at_a_time(node_server, python_client, js_pkg):
    node = await node_server(js_pkg, trace=True)
    sio, streams = await python_client(node.url)
    await asyncio.wait_for(CLIENT_SCENARIOS["big-up"](ClientContext(sio, streams)), TIMEOUT)
    profiles = credit_profiles(parse_trace(node.stderr, "server"), node_reads=True)
    (profile,) = [p for p in profiles.values() if p.writes > 0]
    assert profile.min_outstanding >= 0, f"Python wrote without credit: {profile}"
    assert profile.max_outstanding == 1, profile
    assert profile.writes == profile.reads, profile
    await sio.disconnect()
    await node.stop()
    node.check_no_uncaught()
