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

Second line, the same clients of the **far node** of a cluster: two nodes of this script
(``--serve --redis``) joined by a redis-server of their own; the stalled clients connect to B,
and node A writes their downloads (a client of A asks it to), so every chunk reaches B from A
over Redis. Reported: B's peak RSS above idle. Target: the same, plus the window of frames A may
have on their way to B (4 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path
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
#: What node A may have on its way to B over Redis (``DEFAULT_MAX_IN_FLIGHT`` in cluster/_node.py).
IN_FLIGHT = 4 * MiB
ROOT = Path(__file__).resolve().parent.parent
#: Seconds the server's RSS must stay flat before the peak is taken (a benchmark, not a test).
FLAT = 3.0


async def serve(redis_url: str | None = None) -> None:
    """The server (a cluster node with ``redis_url``): print its port, then serve until stdin
    closes."""
    from aiohttp import web

    import sio_stream
    from sio_stream.cluster import cluster_for

    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=2_000_000, client_manager=manager)
    streams = sio_stream.ss(sio)
    tasks: set[asyncio.Task[None]] = set()

    @streams.on("download")
    async def download(sid: str, size: int) -> Any:
        stream = sio_stream.create_stream()
        start(stream, size)
        return stream

    @streams.on("download-to")
    async def download_to(sid: str, target: str, size: int) -> bool:
        """Send client ``target`` (of another node) a download as a "file" event."""
        node = cluster_for(sio)
        assert node is not None
        for _ in range(1000):  # the other node announces its client within a heartbeat or so
            if node.remote_node("/", target) is not None:
                break
            await asyncio.sleep(0.01)
        stream = sio_stream.create_stream()
        streams.emit("file", stream, to=target)
        start(stream, size)
        return True

    def start(stream: Any, size: int) -> None:
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

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    node = cluster_for(sio) if redis_url else None
    if node is not None:
        await node.ready()
    print(f"LISTENING {runner.addresses[0][1]}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if node is not None:
        await node.close()
    await runner.cleanup()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def attack(
    port: int, pid: int, conns: int, streams: int, credit: int, writer_port: int | None = None
) -> tuple[int, int]:
    """Stall ``conns`` connections of ``streams`` downloads each; (idle, peak) RSS in KiB. With
    ``writer_port``, the server on it (another node) writes the downloads."""
    idle = rss_kib(pid)
    clients: list[socketio.AsyncClient] = []
    try:
        async with stall_relay(port) as relay:
            ids: list[tuple[socketio.AsyncClient, str]] = []
            asker: socketio.AsyncClient | None = None
            if writer_port is not None:
                asker = socketio.AsyncClient(reconnection=False)
                await asker.connect(f"http://127.0.0.1:{writer_port}", transports=["websocket"])
                clients.append(asker)
            for _ in range(conns):
                client = socketio.AsyncClient(reconnection=False)
                client.on("$stream-write", lambda *args: None)
                announced: asyncio.Queue[str] = asyncio.Queue()
                client.on(
                    "$stream",
                    lambda event, placeholder, *rest, q=announced: q.put_nowait(placeholder["$stream"]),
                )
                await client.connect(relay.url, transports=["websocket"])
                clients.append(client)
                for _ in range(streams):
                    if asker is None:
                        placeholder = await client.call("$stream", ("download", credit), timeout=30)
                        ids.append((client, placeholder["$stream"]))
                    else:  # the other node sends it the download as a "file" event
                        await asker.call("$stream", ("download-to", client.get_sid(), credit), timeout=30)
                        ids.append((client, await asyncio.wait_for(announced.get(), 30)))
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


@contextlib.contextmanager
def server(redis_url: str | None = None) -> Any:
    """A server process of this script; yields (process, port)."""
    command = [PYTHON, __file__, "--serve"] + ([redis_url] if redis_url else [])
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc, int(proc.stdout.readline().split()[1])
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # our own child: it stops when its stdin closes
        proc.wait(timeout=30)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.redis_support import redis_server

    mode = mode_of(args)
    report = Report("stalled", mode)
    conns, streams, credit_mib = SETUP[mode]
    conns, streams, credit_mib = args.conns or conns, args.streams or streams, args.credit or credit_mib
    credit = credit_mib * MiB
    with server() as (proc, port):
        idle, peak = asyncio.run(attack(port, proc.pid, conns, streams, credit))
    with redis_server() as redis_url, server(redis_url) as (_a, a_port), server(redis_url) as (b, b_port):
        far_idle, far_peak = asyncio.run(attack(b_port, b.pid, conns, streams, credit, writer_port=a_port))
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
    held = (far_peak - far_idle) * 1024
    target += IN_FLIGHT
    report.line(
        f"far node's peak RSS above idle, {conns} stalled conns x {streams}",
        held / MiB,
        "MiB",
        {"credit granted": ratio(held, granted)},
        f"<= {target // MiB} MiB",
        held <= target,
        note=f"the other node writes; credit granted {granted // MiB} MiB, idle {far_idle // 1024} MiB",
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
        asyncio.run(serve(sys.argv[2] if len(sys.argv) > 2 else None))
    else:
        run(parser().parse_args())
