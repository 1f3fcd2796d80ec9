"""Server shutdown while streams are active: a server process (tests/shutdown_server.py) runs
``await sio.shutdown()`` and ``runner.cleanup()`` with uploads and downloads in flight. Every
stream fails with ConnectionAbortedStreamError on both ends, both registries end empty, no
sio_stream task is left, and the server process exits by itself with code 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import socketio

import sio_stream
from sio_stream import ConnectionAbortedStreamError, IOStream, create_stream
from tests.support import wait_for

pytestmark = pytest.mark.anyio

SCRIPT = Path(__file__).with_name("shutdown_server.py")
ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 3


async def _write_forever(stream: IOStream, moved: dict[str, int]) -> None:
    while True:
        await stream.write(b"c" * 65536)
        moved[stream.id] = moved.get(stream.id, 0) + 65536


async def _read_forever(stream: IOStream, moved: dict[str, int]) -> None:
    async for chunk in stream:
        moved[stream.id] = moved.get(stream.id, 0) + len(chunk)


@pytest.mark.parametrize(
    ("arguments", "within"),
    [
        # The recommended shutdown: an on_shutdown hook disconnects the clients first; the
        # streams fail at once (measured: ~10 ms), and runner.cleanup() still spends ~5 s in
        # aiohttp closing the websockets (measured) before the process exits.
        (["--disconnect-on-shutdown"], 20.0),
        # sio.shutdown() + runner.cleanup() alone: aiohttp ends the websockets after its
        # shutdown_timeout (+ ~5 s, measured), and the streams fail then, just as cleanly.
        (["--shutdown-timeout", "1"], 20.0),
    ],
    ids=["disconnect-on-shutdown", "cleanup-only"],
)
async def test_server_shutdown_fails_every_stream_on_both_ends_and_the_process_exits(
    arguments: list[str], within: float
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(ROOT),
    )
    clients: list[socketio.AsyncClient] = []
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("URL "), line
        url = line.split()[1]

        transfers: list[asyncio.Future[None]] = []
        client_streams: list[IOStream] = []
        moved: dict[str, int] = {}
        for _ in range(CLIENTS):
            client = socketio.AsyncClient(reconnection=False)
            # Without resume: a server that goes away without disconnecting its clients would
            # otherwise leave their streams suspended for resume_timeout (30 s), waiting for it.
            streams = sio_stream.ss(client, resume_timeout=0)
            await client.connect(url, transports=["websocket"])
            clients.append(client)
            for _ in range(2):
                up = create_stream()
                await streams.emit("upload", up)
                transfers.append(asyncio.ensure_future(_write_forever(up, moved)))
                down = await streams.call("download", timeout=10)
                transfers.append(asyncio.ensure_future(_read_forever(down, moved)))
                client_streams += [up, down]
        expected = len(client_streams)
        # Every stream is moving data before the shutdown starts.
        await wait_for(lambda: sum(sio_stream.ss(c).stream_count() for c in clients) == expected)
        await wait_for(lambda: all(moved.get(s.id, 0) >= 1024 * 1024 for s in client_streams))

        process.send_signal(signal.SIGTERM)
        t0 = asyncio.get_running_loop().time()  # the process must be gone within `within` s
        results = await asyncio.wait_for(asyncio.gather(*transfers, return_exceptions=True), 20)
        assert all(isinstance(r, ConnectionAbortedStreamError) for r in results), results
        assert all(isinstance(s.error, ConnectionAbortedStreamError) for s in client_streams)
        assert all(sio_stream.ss(c).stream_count() == 0 for c in clients)

        output = (await asyncio.wait_for(process.stdout.read(), 20)).decode()
        code = await asyncio.wait_for(process.wait(), 20)
        result_lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
        assert result_lines, output
        result = json.loads(result_lines[-1].removeprefix("RESULT "))
        assert result["opened"] == expected, result
        assert result["outcomes"] == ["ConnectionAbortedStreamError"] * expected, result
        assert result["stream_count"] == 0 and result["connection_count"] == 0, result
        assert result["tasks"] == [], result
        assert code == 0, output
        assert asyncio.get_running_loop().time() - t0 < within
        await wait_for(lambda: not any(c.connected for c in clients))
        assert not [t for t in asyncio.all_tasks() if "sio_stream" in t.get_name()]
    finally:
        for client in clients:
            if client.connected:
                await client.disconnect()
        if process.returncode is None:
            process.kill()
            await process.wait()
