"""Quiet streams beside busy ones: the same workload on a connection with and without quiet pairs.

    python benchmarks/quiet.py [--pairs 100] [--quick | --smoke] [--repeat N]

One client connection to an aiohttp server (both in this process, on 127.0.0.1). The server is
socket.io-stream's echo server: ``echo`` pipes every stream it gets into a new one sent back,
``sendBack`` pipes a duplex stream into itself. Quiet: ``--pairs`` echo pairs nobody writes to,
with both ends reading (live feeds, microphones, uploads waiting for their user). Workload: a
duplex stream that echoes 1 MiB, 50 concurrent uploads of 1 MiB and a 32 MiB download, all at
once. Baseline: the same workload on a fresh connection with no quiet pair, measured in the same
run, alternating. Target (issue 20): >= 0.9x the baseline's rate. Before the floors and slow
start, two quiet pairs froze the workload for good.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable
from typing import Any

import socketio
from _harness import MiB, Report, common_args, median, mode_of, ratio
from aiohttp import web

from sio_stream import IOStream, create_stream, ss

UPLOADS = {"full": 50, "quick": 50, "smoke": 5}
UPLOAD_SIZE = {"full": 1 * MiB, "quick": 1 * MiB, "smoke": 64 * 1024}
DOWNLOAD_SIZE = {"full": 32 * MiB, "quick": 32 * MiB, "smoke": 1 * MiB}
DUPLEX_SIZE = {"full": 1 * MiB, "quick": 1 * MiB, "smoke": 64 * 1024}
PAIRS = {"full": 100, "quick": 100, "smoke": 10}
REPEATS = {"full": 5, "quick": 3, "smoke": 1}
TARGET = 0.9


async def pump(source: IOStream, destination: IOStream) -> None:
    async for chunk in source:
        await destination.write(chunk)
    await destination.end()


class EchoServer:
    def __init__(self, download: bytes) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=4 * MiB)
        self.streams = ss(self.sio)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.download = download
        streams = self.streams

        @streams.on("echo")
        async def echo(sid: str, sources: list[IOStream]) -> None:
            outs = [create_stream() for _ in sources]
            for src, dst in zip(sources, outs, strict=True):
                self.spawn(pump(src, dst))
            await streams.emit("echo", outs, to=sid)

        @streams.on("sendBack")
        async def send_back(sid: str, stream: IOStream) -> None:
            self.spawn(pump(stream, stream))

        @streams.on("upload")
        async def upload(sid: str, stream: IOStream) -> int:
            size = 0
            async for chunk in stream:
                size += len(chunk)
            return size

        @streams.on("download")
        async def on_download(sid: str, stream: IOStream) -> None:
            self.spawn(stream.end(self.download))

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def start(self) -> str:
        app = web.Application()
        self.sio.attach(app)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await self.sio.shutdown()
        await self.runner.cleanup()


async def open_quiet(client_streams: Any, count: int) -> tuple[list[IOStream], list[asyncio.Task[bytes]]]:
    """``count`` quiet echo pairs: their writers, and the tasks reading the echoed ends."""
    loop = asyncio.get_running_loop()
    echoed: asyncio.Future[list[IOStream]] = loop.create_future()
    client_streams.on("echo", lambda streams: echoed.set_result(streams))
    sources = [create_stream() for _ in range(count)]
    await client_streams.emit("echo", sources)
    backs = await asyncio.wait_for(echoed, 60)
    # Every echoed end reads: its window is open, nothing arrives.
    return sources, [asyncio.ensure_future(back.read()) for back in backs]


async def workload(client_streams: Any, mode: str, download: bytes) -> float:
    """Seconds for the duplex echo, the uploads and the download, all started together."""
    upload = os.urandom(UPLOAD_SIZE[mode])
    duplex_data = os.urandom(DUPLEX_SIZE[mode])

    async def one_upload() -> None:
        stream = create_stream()
        async with asyncio.TaskGroup() as group:
            reply = group.create_task(client_streams.call("upload", stream))
            await stream.end(upload)
        assert reply.result() == len(upload)

    async def duplex() -> None:
        stream = create_stream(allow_half_open=True)
        await client_streams.emit("sendBack", stream)
        async with asyncio.TaskGroup() as group:
            back = group.create_task(stream.read())
            await stream.end(duplex_data)
        assert back.result() == duplex_data

    async def one_download() -> None:
        stream = create_stream()
        await client_streams.emit("download", stream)
        assert await stream.read() == download

    start = time.perf_counter()
    async with asyncio.timeout(300):
        await asyncio.gather(duplex(), one_download(), *(one_upload() for _ in range(UPLOADS[mode])))
    return time.perf_counter() - start


async def measure(mode: str, pairs: int, url: str, download: bytes) -> float:
    client = socketio.AsyncClient()
    client_streams = ss(client)
    await client.connect(url, transports=["websocket"])
    try:
        sources, readers = await open_quiet(client_streams, pairs) if pairs else ([], [])
        seconds = await workload(client_streams, mode, download)
        for source in sources:  # the quiet pairs still work: each ends, empty, on both sides
            await source.end()
        assert await asyncio.wait_for(asyncio.gather(*readers), 60) == [b""] * len(readers)
        return seconds
    finally:
        await client.disconnect()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("quiet", mode)
    pairs = args.pairs or PAIRS[mode]
    download = os.urandom(DOWNLOAD_SIZE[mode])
    total = UPLOADS[mode] * UPLOAD_SIZE[mode] + DOWNLOAD_SIZE[mode] + 2 * DUPLEX_SIZE[mode]
    server = EchoServer(download)
    url = await server.start()
    times: dict[int, list[float]] = {0: [], pairs: []}
    try:
        await measure(mode, 0, url, download)  # warm-up
        for _ in range(args.repeat or REPEATS[mode]):
            for count in (0, pairs):
                times[count].append(await measure(mode, count, url, download))
    finally:
        await server.stop()
    base = total / median(times[0]) / 1e6
    rate = total / median(times[pairs]) / 1e6
    report.line("workload, no quiet pair (the baseline)", base, "MB/s")
    met = ratio(rate, base) >= TARGET
    report.line(
        f"workload beside {pairs} quiet echo pairs",
        rate,
        "MB/s",
        {"no quiet pair": ratio(rate, base)},
        target=f">={TARGET}x",
        met=met,
    )
    return report.finish(args.json)


def run(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(main(args))


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, default=None, help="quiet echo pairs (default 100)")
    return p


if __name__ == "__main__":
    run(parser().parse_args())
