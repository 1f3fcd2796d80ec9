"""Where a long link's time goes: one stream's read window and bytes per round trip, traced.

    python benchmarks/ramp.py [--rtt 150] [--rate 100M] [--mib 48] [--direct] [--samples FILE]

A diagnostic beside ``links.py``: a server (this script, its own process) behind the link
emulator (``link.py``), and a client here, move two uploads and a download of ``--mib`` on one
connection. The reading side (the server uploading, the client downloading) samples its stream
every few milliseconds: bytes read, the window's size and current extent (chunks) and the
credit outstanding. The second upload shows what a later stream of the connection pays (it
opens at the window the first reached). Printed per transfer: its seconds and MB/s, when the
first byte came and when the window stopped growing (from the reader's start), the largest
window against the cap, then one row per round trip: MB read in it and the window at its end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import link as link_emulator
import socketio
from _harness import DEFAULT_CHUNK, PYTHON, MiB, _process, link
from peer import MAX_MESSAGE, _spawn, pieces

import sio_stream
from sio_stream import create_stream
from sio_stream.core._config import DEFAULT_MAX_WINDOW

#: Seconds between samples of the reader's window.
SAMPLE = 0.005


class Trace:
    """Samples of one reading stream: (seconds since start, bytes read, window size, current
    window, credits outstanding), all windows in chunks."""

    def __init__(self, stream: Any) -> None:
        self.core = stream._core  # a diagnostic: the core's window is not public API
        self.start = time.perf_counter()
        self.read = 0
        self.samples: list[tuple[float, int, int, int, int]] = []
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE)

    def sample(self) -> None:
        window = self.core.window
        if window is not None:
            now = time.perf_counter() - self.start
            self.samples.append((now, self.read, window.size, window.current, window.outstanding))

    async def consume(self, stream: Any) -> int:
        async for data in stream:
            self.read += len(data)
        self.sample()
        self._task.cancel()
        return self.read


# -- server -------------------------------------------------------------------------------------------
async def serve() -> None:
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=MAX_MESSAGE)
    app = web.Application()
    sio.attach(app)
    streams = sio_stream.ss(sio)
    sio.on("ping", lambda sid: True)

    @streams.on("upload")
    async def upload(sid: str, stream: Any) -> list[Any]:
        trace = Trace(stream)
        await trace.consume(stream)
        return trace.samples

    @streams.on("download")
    async def download(sid: str, size: int) -> Any:
        stream = create_stream()

        async def feed() -> None:
            for piece in pieces(size, DEFAULT_CHUNK):
                await stream.write(piece)
            await stream.end()

        _spawn(feed())
        return stream

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"LISTENING {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _spawn(_stop_at_eof(reader, stop))
    await stop.wait()
    await runner.cleanup()


async def _stop_at_eof(reader: asyncio.StreamReader, stop: asyncio.Event) -> None:
    await reader.read()
    stop.set()


# -- client -------------------------------------------------------------------------------------------
async def transfers(url: str, size: int) -> dict[str, tuple[float, list[Any]]]:
    next(pieces(1, DEFAULT_CHUNK))  # the payload pool, before anything is timed
    sio = socketio.AsyncClient()
    streams = sio_stream.ss(sio)
    await sio.connect(url, transports=["websocket"])
    await sio.call("ping", timeout=30)  # the hello exchange ends before anything is timed
    out: dict[str, tuple[float, list[Any]]] = {}

    for name in ("upload", "upload again"):  # the second opens at the window the first reached
        start = time.perf_counter()
        stream = create_stream()
        ack = asyncio.ensure_future(streams.call("upload", stream, timeout=None))
        for piece in pieces(size, DEFAULT_CHUNK):
            await stream.write(piece)
        await stream.end()
        samples = await ack
        out[name] = (time.perf_counter() - start, samples)

    start = time.perf_counter()
    down = await streams.call("download", size, timeout=None)
    trace = Trace(down)
    await trace.consume(down)
    out["download"] = (time.perf_counter() - start, trace.samples)
    await sio.disconnect()
    return out


def report(direction: str, size: int, seconds: float, samples: list[Any], rtt: float) -> None:
    rtt = max(rtt, 0.01)  # rows of at least 10 ms (a link without delay)
    first = next((s[0] for s in samples if s[1] > 0), float("nan"))
    top = max(s[2] for s in samples)
    settled = next(s[0] for s in samples if s[2] == top)
    cap = DEFAULT_MAX_WINDOW // DEFAULT_CHUNK
    print(
        f"{direction}: {size / MiB:g} MiB in {seconds:.3f} s = {size / seconds / 1e6:.1f} MB/s; "
        f"reader's start -> first byte {first * 1000:.0f} ms, window at its largest ({top} chunks, "
        f"cap {cap}: {'met' if top <= cap else 'UNMET'}) {settled * 1000:.0f} ms, largest credit "
        f"outstanding {max(s[4] for s in samples)} chunks"
    )
    edge, last_read, i = rtt, 0, 0
    while i < len(samples):
        row = None
        while i < len(samples) and samples[i][0] <= edge:
            row = samples[i]
            i += 1
        if row is not None:
            print(
                f"  {edge * 1000:6.0f} ms  {(row[1] - last_read) / 1e6:6.1f} MB in the round trip  "
                f"window {row[2]:3d} (open {row[3]:3d}, outstanding {row[4]:3d}) chunks"
            )
            last_read = row[1]
        edge += rtt


def main() -> None:
    if sys.argv[1:2] == ["server"]:
        asyncio.run(serve())
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rtt", type=float, default=150.0, help="round trip, ms (default 150)")
    parser.add_argument("--rate", default="100M", help="bytes/s per direction (default 100M)")
    parser.add_argument("--mib", type=int, default=48, help="MiB per transfer (default 48)")
    parser.add_argument("--direct", action="store_true", help="loopback, no link emulator (rows of 10 ms)")
    parser.add_argument("--samples", type=Path, default=None, help="write every sample to this JSON file")
    args = parser.parse_args()
    size = args.mib * MiB
    with _process([PYTHON, __file__, "server"], "ramp server") as (_, port):
        if args.direct:
            results = asyncio.run(transfers(f"http://127.0.0.1:{port}", size))
        else:
            with link(port, rate=link_emulator.parse_size(args.rate), rtt_ms=args.rtt) as link_port:
                results = asyncio.run(transfers(f"http://127.0.0.1:{link_port}", size))
    for direction, (seconds, samples) in results.items():
        report(direction, size, seconds, samples, 0.0 if args.direct else args.rtt / 1000)
    print(json.dumps({d: round(s, 3) for d, (s, _) in results.items()}))
    if args.samples:
        args.samples.write_text(json.dumps({d: samples for d, (_, samples) in results.items()}))


if __name__ == "__main__":
    main()
