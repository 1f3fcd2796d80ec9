"""A small sio_stream server for tests/test_shutdown.py: shut down while streams are active.

It prints ``URL <url>`` once listening. Clients start uploads (``upload``: the server reads
forever) and downloads (``download``: the server writes forever). On SIGTERM it runs the
shutdown an aiohttp application runs (``await sio.shutdown()``, then ``runner.cleanup()``).
``runner.cleanup()`` alone ends open websockets only after aiohttp's ``shutdown_timeout`` (60 s
by default; ``--shutdown-timeout``); with ``--disconnect-on-shutdown`` an ``app.on_shutdown``
hook disconnects every client first, as aiohttp recommends for websockets. It then checks
that every server-side stream failed with ConnectionAbortedStreamError, that the registry is
empty and that no sio_stream task is left; it prints ``RESULT <json>`` and returns, so the
process exits by itself (code 0 when every check passed, 1 otherwise).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

import socketio
from aiohttp import web

import sio_stream
from sio_stream import ConnectionAbortedStreamError, IOStream, StreamError, create_stream


async def main(argv: list[str]) -> int:
    disconnect_first = "--disconnect-on-shutdown" in argv
    shutdown_timeout = 60.0
    if "--shutdown-timeout" in argv:
        shutdown_timeout = float(argv[argv.index("--shutdown-timeout") + 1])
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(sio)
    outcomes: list[str] = []  # per server-side stream: the class name of its error
    handlers: set[asyncio.Task[Any]] = set()

    def record(exc: StreamError) -> None:
        outcomes.append(type(exc).__name__)

    @streams.on("upload")
    async def upload(sid: str, stream: IOStream) -> None:
        try:
            async for _chunk in stream:
                pass
            outcomes.append("ended")
        except StreamError as exc:
            record(exc)

    async def produce(stream: IOStream) -> None:
        try:
            while True:
                await stream.write(b"s" * 65536)
        except StreamError as exc:
            record(exc)

    @streams.on("download")
    async def download(sid: str) -> IOStream:
        stream = create_stream()
        task = asyncio.ensure_future(produce(stream))
        handlers.add(task)
        task.add_done_callback(handlers.discard)
        return stream

    app = web.Application()
    sio.attach(app)

    async def disconnect_everyone(app: web.Application) -> None:
        # Engine.IO level: closes each client's transport (sio.disconnect(sid) would leave
        # namespace by namespace, racing the clients' binary packets in flight).
        await sio.eio.disconnect()

    if disconnect_first:
        app.on_shutdown.append(disconnect_everyone)
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"URL http://127.0.0.1:{port}", flush=True)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    opened = streams.stream_count()

    await sio.shutdown()
    await runner.cleanup()
    # The producers and handlers see their streams fail as soon as the connections are gone.
    if handlers:
        await asyncio.wait(handlers, timeout=10)
    for _ in range(100):  # let handler tasks python-socketio started finish recording
        if len(outcomes) >= opened:
            break
        await asyncio.sleep(0.01)
    leftover = sorted(t.get_name() for t in asyncio.all_tasks() if "sio_stream" in t.get_name())
    result = {
        "opened": opened,
        "outcomes": outcomes,
        "stream_count": streams.stream_count(),
        "connection_count": streams.connection_count,
        "tasks": leftover,
    }
    print("RESULT " + json.dumps(result), flush=True)
    aborted = ConnectionAbortedStreamError.__name__
    ok = (
        opened > 0
        and len(outcomes) == opened
        and all(o == aborted for o in outcomes)
        and result["stream_count"] == 0
        and result["connection_count"] == 0
        and not leftover
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
