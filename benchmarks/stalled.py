"""Issue 20's writer side: hostile readers grant a server's writers all the credit they want and
stop reading their sockets. What does the server hold?

    python benchmarks/stalled.py [--quick | --smoke] [--conns N] [--streams S] [--credit MiB]

The server (this script with ``--serve``, its own process, default budgets) answers a
``download`` event with a stream it writes fresh bytes into (as a file or a generator does, so
that what it queues shows in its RSS). Raw python-socketio clients connect through a relay
(``stall_relay.py``) and open ``--streams`` downloads each, then the relay stops reading from the
server and each client grants every stream ``--credit`` MiB of credit, one read per chunk as a
JavaScript reader sends them. Reported: the server's peak RSS above its idle RSS, against the
credit granted (the baseline measured in the same run: what the writers queued for the
transport before they waited for it, ``tests/test_hostile_reader.py``). Target: at most 8 MiB per
stalled connection (``MAX_UNSENT`` twice) plus the streams' high-water marks and 16 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from typing import Any

import socketio
from _harness import PYTHON, MiB, Report, common_args, mode_of, ratio
from stall_relay import stall_relay

CHUNK = 512 * 1024
#: (connections, streams each, MiB of credit per stream) by mode.
SETUP = {"full": (8, 8, 32), "quick": (4, 4, 32), "smoke": (2, 2, 8)}
PER_CONNECTION = 8 * MiB
HIGH_WATER = 256 * 1024  # create_stream()'s default: what a writer buffers before it waits
OVERHEAD = 16 * MiB
#: Seconds the server's RSS must stay flat before the peak is taken (a benchmark, not a test).
FLAT = 3.0


async def serve() -> None:
    """The server: print its port, then serve until stdin closes."""
    from aiohttp import web

    import sio_stream

    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=2_000_000)
    streams = sio_stream.ss(sio)
    tasks: set[asyncio.Task[None]] = set()

    @streams.on("download")
    async def download(sid: str, size: int) -> Any:
        stream = sio_stream.create_stream()

        async def produce() -> None:
            sent = 0
            try:
                while sent < size:
                    await stream.write(bytes([sent // CHUNK % 256]) * CHUNK)  # fresh memory
                    sent += CHUNK
                await stream.end()
            except sio_stream.StreamError:
                pass  # the reader went away

        task = asyncio.ensure_future(produce())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return stream

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"LISTENING {runner.addresses[0][1]}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def attack(port: int, pid: int, conns: int, streams: int, credit: int) -> tuple[int, int]:
    """Stall ``conns`` connections of ``streams`` downloads each; (idle, peak) RSS in KiB."""
    idle = rss_kib(pid)
    clients: list[socketio.AsyncClient] = []
    try:
        async with stall_relay(port) as relay:
            ids: list[tuple[socketio.AsyncClient, str]] = []
            for _ in range(conns):
                client = socketio.AsyncClient(reconnection=False)
                client.on("$stream-write", lambda *args: None)
                await client.connect(relay.url, transports=["websocket"])
                clients.append(client)
                for _ in range(streams):
                    placeholder = await client.call("$stream", ("download", credit), timeout=30)
                    ids.append((client, placeholder["$stream"]))
            relay.stop_downstream()
            for client, stream_id in ids:
                for _ in range(credit // CHUNK):
                    await client.emit("$stream-read", (stream_id, CHUNK))
            peak = idle
            flat_since = started = time.monotonic()
            while time.monotonic() - flat_since < FLAT and time.monotonic() - started < 120:
                await asyncio.sleep(0.2)
                now = rss_kib(pid)
                if now > peak + 1024:
                    flat_since = time.monotonic()
                peak = max(peak, now)
    finally:
        # The relay closed the connections (the stalled backlog is dropped, never decoded).
        for client in clients:
            if client.connected:
                await client.disconnect()
    return idle, peak


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("stalled", mode)
    conns, streams, credit_mib = SETUP[mode]
    conns, streams, credit_mib = args.conns or conns, args.streams or streams, args.credit or credit_mib
    credit = credit_mib * MiB
    proc = subprocess.Popen(
        [PYTHON, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        idle, peak = asyncio.run(attack(port, proc.pid, conns, streams, credit))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # our own child: it stops when its stdin closes
        proc.wait(timeout=30)
    granted = conns * streams * credit
    held = (peak - idle) * 1024
    target = conns * PER_CONNECTION + conns * streams * HIGH_WATER + OVERHEAD
    report.line(
        f"server peak RSS above idle, {conns} stalled conns x {streams} streams",
        held / MiB,
        "MiB",
        {"credit granted": ratio(held, granted)},
        f"<= {target // MiB} MiB",
        held <= target,
        note=f"credit granted {granted // MiB} MiB ({credit_mib} MiB per stream), idle {idle // 1024} MiB",
    )
    return report.finish(args.json)


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--conns", type=int, default=None, help="stalled connections (default by mode)")
    p.add_argument("--streams", type=int, default=None, help="streams per stalled connection")
    p.add_argument("--credit", type=int, default=None, help="MiB of credit granted per stream")
    return p


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(serve())
    else:
        run(parser().parse_args())
