"""The real JavaScript client (node/client.js, socket.io-client 4 + socket.io-stream) against a
python-socketio AsyncServer where sio_stream plays the server role of every scenario."""

from __future__ import annotations

import asyncio
import signal

import pytest
from _node import (
    NODE_DIR,
    SCENARIOS,
    TIMEOUT,
    credit_profiles,
    is_base64_chunk,
    parse_trace,
    run_client,
    wait_until,
)
from _roles import DROP_AFTER, leftover_streams

from sio_stream import ConnectionAbortedStreamError

pytestmark = pytest.mark.anyio


def registry_empties(server):
    """A ``before_exit`` check: while the JavaScript client is still connected, every stream of
    the finished scenario has left the Python server's registry (nothing is left behind)."""

    async def check(result):
        await wait_until(lambda: server.streams.stream_count() == 0, lambda: leftover_streams(server.streams))

    return check


async def test_scenario_list_is_complete(node_tools):
    proc = await asyncio.create_subprocess_exec(
        node_tools.node,
        "client.js",
        "--scenarios",
        cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert tuple(out.decode().split()) == SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_python_server(node_tools, js_pkg, python_server, scenario):
    server = await python_server()
    trace = scenario == "base64"
    check = registry_empties(server) if scenario != "drop" else None
    run = await run_client(node_tools, server.url, scenario, js_pkg, trace=trace, before_exit=check)
    assert run.ok, run.describe()
    assert not server.role.failures, server.role.failures

    if scenario == "base64":
        # client.js set ss.forceBase64: its chunks were base64 text, which Python decoded.
        writes = [
            e for e in parse_trace(run.stderr, "client") if e.event == "$stream-write" and not e.incoming
        ]
        assert writes and all(is_base64_chunk(e) for e in writes), writes[:3]
    if scenario == "drop":
        await asyncio.wait_for(server.role.drop_done.wait(), TIMEOUT)
        dropped = server.role.dropped
        assert dropped["disconnected_after"] >= DROP_AFTER
        for name in ("up", "down"):
            assert isinstance(dropped[name], ConnectionAbortedStreamError), (name, dropped[name])
            assert dropped[name].message == "Connection aborted"
        assert run.result["up"] == run.result["down"] == "Connection aborted"
        assert server.streams.stream_count() == 0


@pytest.mark.parametrize("scenario", ["binary", "file", "big-down", "many"])
async def test_python_force_base64_to_js_reader(node_tools, js_pkg, python_server, scenario):
    """ss(sio, force_base64=True): the JavaScript readers get base64 text chunks and decode them."""
    server = await python_server(force_base64=True)
    run = await run_client(
        node_tools, server.url, scenario, js_pkg, trace=True, before_exit=registry_empties(server)
    )
    assert run.ok, run.describe()
    received = [e for e in parse_trace(run.stderr, "client") if e.event == "$stream-write" and e.incoming]
    assert received, "no chunk reached the JavaScript reader"
    assert all(is_base64_chunk(e) for e in received), received[:3]


async def test_js_writer_to_python_reader_with_several_reads_outstanding(node_tools, js_pkg, python_server):
    """A Python reader with a window of 4 keeps two reads outstanding toward the JavaScript
    writer (one being written, one pending: all it remembers; more would be forgotten credit
    holding memory reservations) and grants the next as each chunk arrives; 8 MiB arrive
    intact, with partial ``read()`` calls on the Python side."""
    window = 4
    server = await python_server(window=window, read_size=4093)
    run = await run_client(node_tools, server.url, "big-up", js_pkg, trace=True)
    assert run.ok, run.describe()
    profiles = credit_profiles(parse_trace(run.stderr, "client"), node_reads=False)
    (profile,) = [p for p in profiles.values() if p.writes > 0]
    assert profile.min_outstanding >= 0, "the JavaScript writer wrote without a read"
    assert profile.max_outstanding <= 2, f"Python granted reads the writer cannot use: {profile}"
    assert profile.reads == profile.writes, profile


async def test_python_writer_to_js_reader_one_read_at_a_time(node_tools, js_pkg, python_server):
    """The JavaScript reader keeps one read outstanding; the Python writer answers each read with
    exactly one chunk (never writing ahead of its credit) and 8 MiB arrive intact."""
    server = await python_server()
    run = await run_client(node_tools, server.url, "big-down", js_pkg, trace=True)
    assert run.ok, run.describe()
    profiles = credit_profiles(parse_trace(run.stderr, "client"), node_reads=True)
    (profile,) = [p for p in profiles.values() if p.writes > 0]
    assert profile.min_outstanding >= 0, f"Python wrote without credit: {profile}"
    assert profile.max_outstanding == 1, profile
    assert profile.writes == profile.reads, profile


async def test_js_client_killed_mid_transfer(node_tools, js_pkg, python_server):
    """The Node client process dies mid-transfer (no Socket.IO disconnect): the Python server's
    streams fail with "Connection aborted" and leave its registry."""
    server = await python_server()
    processes = []

    async def kill(sid):
        for proc in processes:
            proc.kill()

    server.role.drop_action = kill
    run = await run_client(node_tools, server.url, "drop", js_pkg, started=processes.append)
    assert run.returncode == -signal.SIGKILL, run.describe()
    await asyncio.wait_for(server.role.drop_done.wait(), TIMEOUT)
    for name in ("up", "down"):
        error = server.role.dropped[name]
        assert isinstance(error, ConnectionAbortedStreamError), (name, error)
        assert error.message == "Connection aborted"
    assert server.streams.stream_count() == 0
    assert not server.role.failures, server.role.failures
