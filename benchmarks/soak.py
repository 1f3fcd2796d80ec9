"""Soak test: many clients stream, abort and reconnect against one sio_stream server for a long
time; the server's memory must stay flat and no stream may be left open.

    python benchmarks/soak.py [--duration 3600] [--clients 8] [--sample 5] [--tolerance-mb 30]

The server runs in a child process (this script with ``--serve``), so its RSS (``/proc``) is
the server's alone. Each client loops: connect, run a few random operations (uploads and
downloads of random sizes up to ``--max-size``, some destroyed mid-stream by either side, some
cut by an abrupt disconnect), disconnect. Every ``--sample`` seconds the server's RSS and open
stream/connection counts are printed.

Hostile phase (``--hostile N``, default 2): N more clients, for the whole run, speak the wire
protocol raw: each connects, opens streams (half object mode) to a handler that reads one chunk
and then nothing, answers every read with a 900 kB string or chunk, holds its connection for a
random few seconds, then leaves and starts again. The server runs with small budgets
(``--process-budget-mb``, default 48; 16 MiB per connection), and the soak fails if its
accounted memory (held + reserved, sampled) ever exceeds the process budget, or is not back
to zero once every client has left. Exit status 1 when, after the warm-up (``--warmup``,
default a quarter of the run, at most 120 s), the RSS at the end exceeds the highest warm-up
sample by more than ``--tolerance-mb``, or when the server still holds streams, connections
or sio_stream tasks once every client has left. Not run in CI in its long form;
tests/test_soak_short.py runs it for a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import socketio
from aiohttp import web

import sio_stream
from sio_stream import IOStream, StreamError, create_stream

BLOCK = 64 * 1024
MiB = 1024 * 1024
HOSTILE_CONNECTION_BUDGET = 16 * MiB
HOSTILE_OBJECT = "h" * 900_000
HOSTILE_CHUNK = b"h" * 900_000


# -- the server (child process) -------------------------------------------------------------------
async def serve(process_budget: int) -> None:
    logging.getLogger("sio_stream").setLevel(logging.ERROR)  # aborted streams are expected here
    sio = socketio.AsyncServer(async_mode="aiohttp")
    sio_stream.set_process_limit(process_budget)
    # Cut connections are kept for a client that comes back (session resume) 3 s, not the
    # default 30: the check that nothing is left open runs a few seconds after the clients left.
    streams = sio_stream.ss(sio, max_buffered=HOSTILE_CONNECTION_BUDGET, resume_timeout=3)
    producers: set[asyncio.Task[Any]] = set()

    @streams.on("slow")
    async def slow(sid: str, stream: IOStream) -> None:
        # The hostile clients' target: one chunk read, then nothing until the stream goes away.
        with contextlib.suppress(StreamError):
            await stream.receive()
        while not stream.closed:  # noqa: ASYNC110 (polls the stream's state; no event to await)
            await asyncio.sleep(0.2)

    @streams.on("upload")
    async def upload(sid: str, stream: IOStream, abort_after: int | None) -> int:
        got = 0
        async for chunk in stream:
            got += len(chunk)
            if abort_after is not None and got >= abort_after:
                stream.destroy("server aborted the upload")
                return -1
        return got

    async def produce(stream: IOStream, size: int, abort_after: int | None) -> None:
        with contextlib.suppress(StreamError):
            sent = 0
            while sent < size:
                if abort_after is not None and sent >= abort_after:
                    stream.destroy("server aborted the download")
                    return
                block = min(BLOCK, size - sent)
                await stream.write(os.urandom(16) * (block // 16) + b"x" * (block % 16))
                sent += block
            await stream.end()

    @streams.on("download")
    async def download(sid: str, size: int, abort_after: int | None) -> IOStream:
        stream = create_stream()
        task = asyncio.ensure_future(produce(stream, size, abort_after))
        producers.add(task)
        task.add_done_callback(producers.discard)
        return stream

    @sio.on("stats")
    async def stats(sid: str) -> dict[str, int]:
        tasks = [t for t in asyncio.all_tasks() if "sio_stream" in t.get_name()]
        gc.collect()  # streams dropped unread give their bytes back when collected
        account = streams.statistics().process
        return {
            "budget_used": account.held + account.reserved,
            "budget_limit": account.limit,
            "streams": streams.stream_count(),
            "connections": streams.connection_count,
            "tasks": len(tasks),
            "producers": len(producers),
        }

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"URL http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await sio.shutdown()
    await runner.cleanup()


# -- the clients ----------------------------------------------------------------------------------
class Totals:
    def __init__(self) -> None:
        self.ops = 0
        self.ok = 0
        self.aborted = 0
        self.cut = 0
        self.bytes = 0
        self.errors: list[str] = []
        self.stale_packets = 0
        self.hostile_writes = 0


async def _write(stream: IOStream, size: int, abort_after: int | None) -> None:
    sent = 0
    while sent < size:
        if abort_after is not None and sent >= abort_after:
            stream.destroy("client aborted the upload")
            return
        block = min(BLOCK, size - sent)
        await stream.write(b"u" * block)
        sent += block
    await stream.end()


last_op = ""


async def one_operation(
    client: socketio.AsyncClient, rng: random.Random, totals: Totals, max_size: int
) -> bool:
    """One random operation; False when it cut the connection (the caller reconnects)."""
    streams = sio_stream.ss(client)
    size = rng.randrange(0, max_size)
    kind = rng.choice(["upload", "download"])
    roll = rng.random()
    abort_after = rng.randrange(0, max(1, size)) if size else None
    client_abort = roll < 0.1 and abort_after is not None
    server_abort = 0.1 <= roll < 0.2 and abort_after is not None
    cut = 0.2 <= roll < 0.25
    global last_op
    last_op = f"{kind} {size} client_abort={client_abort} server_abort={server_abort} cut={cut}"
    totals.ops += 1
    try:
        if kind == "upload":
            stream = create_stream()
            call = asyncio.ensure_future(
                streams.call("upload", stream, abort_after if server_abort else None, timeout=60)
            )
            writer = asyncio.ensure_future(_write(stream, size, abort_after if client_abort else None))
            if cut:
                await asyncio.sleep(rng.random() * 0.05)
                await client.eio.disconnect(abort=True)
            outcome = await asyncio.gather(call, writer, return_exceptions=True)
            for value in outcome:
                if isinstance(value, BaseException):
                    raise value
            result = outcome[0]
            if not (client_abort or server_abort or cut) and result != size:
                totals.errors.append(f"upload of {size} bytes: the server got {result}")
        else:
            stream = await streams.call("download", size, abort_after if server_abort else None, timeout=60)
            if cut:
                reader = asyncio.ensure_future(stream.read())
                await asyncio.sleep(rng.random() * 0.05)
                await client.eio.disconnect(abort=True)
                await reader
            elif client_abort:
                got = 0
                while got < (abort_after or 0):
                    chunk = await stream.read(BLOCK)
                    if not chunk:
                        break
                    got += len(chunk)
                stream.destroy("client aborted the download")
            else:
                data = await stream.read()
                if not server_abort and len(data) != size:
                    totals.errors.append(f"download of {size} bytes: got {len(data)}")
        totals.ok += 1
        totals.bytes += size
    except StreamError:
        if client_abort or server_abort or cut:
            totals.aborted += 1
        else:
            raise
    if cut:
        totals.cut += 1
        return False
    return True


async def client_loop(url: str, seed: int, deadline: float, totals: Totals, max_size: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        client = socketio.AsyncClient(reconnection=False)
        sio_stream.ss(client)
        try:
            await client.connect(url, transports=["websocket"])
            for _ in range(rng.randrange(1, 8)):
                if time.monotonic() >= deadline or not await one_operation(client, rng, totals, max_size):
                    break
            socket = sio_stream.ss(client)
            for _ in range(200):  # the last stream may wait for its end's ack
                if not socket.stream_count():
                    break
                await asyncio.sleep(0.01)
            for connection in socket._connections.values():
                for core in connection.streams.values():
                    state = f"{core.id} read={core.read_state.value} write={core.write_state.value}"
                    totals.errors.append(f"client left a stream open: {state} after {last_op}")
        except Exception as exc:  # reported: the soak fails
            totals.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()


async def hostile_loop(url: str, seed: int, deadline: float, totals: Totals) -> None:
    """A raw client flooding a handler that never reads (see the module docstring), again and
    again until ``deadline``."""
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        await hostile_connection(url, rng, deadline, totals)


async def hostile_connection(url: str, rng: random.Random, deadline: float, totals: Totals) -> None:
    client = socketio.AsyncClient(reconnection=False)
    objects: set[str] = set()
    stopped = False

    async def on_read(stream_id: str, *args: Any) -> None:
        if stopped:
            return
        chunk: Any = (HOSTILE_OBJECT, "utf8") if stream_id in objects else (HOSTILE_CHUNK, "buffer")
        with contextlib.suppress(Exception):  # the connection may be leaving
            await client.emit("$stream-write", (stream_id, *chunk), callback=lambda *a: None)
            totals.hostile_writes += 1

    client.on("$stream-read", on_read)
    try:
        await client.connect(url, transports=["websocket"])
        for i in range(rng.randrange(2, 12)):
            stream_id = str(uuid.uuid4())
            placeholder: dict[str, Any] = {"$stream": stream_id}
            if i % 2 == 0:
                objects.add(stream_id)
                placeholder["options"] = {"objectMode": True}
            await client.emit("$stream", ("slow", placeholder))
        await asyncio.sleep(min(rng.uniform(0.5, 4.0), max(0.0, deadline - time.monotonic())))
    except Exception as exc:  # reported: the soak fails
        totals.errors.append(f"hostile client: {type(exc).__name__}: {exc}")
    finally:
        stopped = True
        with contextlib.suppress(Exception):
            await client.disconnect()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def count_stale_packets(totals: Totals) -> Any:
    """Loop exception handler: python-socketio's client drops its half-received binary packet
    when its transport is cut, and the tasks it had already started for that connection's last
    messages then fail to decode them (ValueError or TypeError in ``_handle_eio_message``).
    That is python-socketio's, harmless (the connection is gone): count it; report anything else."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        task = context.get("future")
        exc = context.get("exception")
        name = getattr(getattr(task, "get_coro", lambda: None)(), "__qualname__", "")
        if isinstance(exc, (ValueError, TypeError)) and name.endswith("_handle_eio_message"):
            totals.stale_packets += 1
            return
        totals.errors.append(f"unhandled: {context.get('message')}: {exc!r}")
        loop.default_exception_handler(context)

    return handler


async def soak(args: argparse.Namespace) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        "--process-budget-mb",
        str(args.process_budget_mb),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    url = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().split()[1]
    monitor = socketio.AsyncClient(reconnection=False)
    await monitor.connect(url, transports=["websocket"])
    started = time.monotonic()
    deadline = started + args.duration
    warmup = args.warmup if args.warmup is not None else min(120.0, args.duration / 4)
    totals = Totals()
    asyncio.get_running_loop().set_exception_handler(count_stale_packets(totals))
    samples: list[tuple[float, float, dict[str, int]]] = []

    async def sample() -> None:
        stats = await monitor.call("stats", timeout=30)
        elapsed = time.monotonic() - started
        rss = rss_mb(process.pid)
        samples.append((elapsed, rss, stats))
        print(
            f"t={elapsed:7.1f}s rss={rss:7.1f} MB streams={stats['streams']:4d} "
            f"connections={stats['connections']:3d} tasks={stats['tasks']:3d} "
            f"ops={totals.ops:6d} aborted={totals.aborted:5d} cut={totals.cut:4d} "
            f"moved={totals.bytes / MiB:9.1f} MiB budget={stats['budget_used'] / MiB:5.1f} MiB "
            f"hostile-writes={totals.hostile_writes}",
            flush=True,
        )

    async def sampler() -> None:
        while True:
            await sample()
            await asyncio.sleep(args.sample)

    print(f"soak: {args.clients} clients for {args.duration:.0f} s (warm-up {warmup:.0f} s) against {url}")
    sampling = asyncio.ensure_future(sampler())
    try:
        await asyncio.gather(
            *(client_loop(url, args.seed + i, deadline, totals, args.max_size) for i in range(args.clients)),
            *(hostile_loop(url, args.seed + 1000 + i, deadline, totals) for i in range(args.hostile)),
        )
    finally:
        sampling.cancel()
    # Every client has left: the server must drop everything (give it a few seconds).
    for _ in range(100):
        stats = await monitor.call("stats", timeout=30)
        if (
            stats["streams"] == 0
            and stats["connections"] <= 1
            and stats["tasks"] == 0
            and stats["budget_used"] == 0
        ):
            break
        await asyncio.sleep(0.1)
    await sample()
    await monitor.disconnect()
    process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(process.wait(), 30)

    failures = list(dict.fromkeys(totals.errors))[:20]
    final = samples[-1][2]
    if final["streams"] or final["tasks"] or final["producers"] or final["connections"] > 1:
        failures.append(f"left open on the server after every client left: {final}")
    if final["budget_used"]:
        failures.append(f"memory still accounted after every client left: {final['budget_used']} bytes")
    over = [stats for _, _, stats in samples if stats["budget_used"] > stats["budget_limit"]]
    if over:
        failures.append(f"accounted memory above the process budget: {over[0]}")
    if args.hostile and not totals.hostile_writes:
        failures.append("the hostile clients never got to write")
    warm = [rss for t, rss, _ in samples if t <= warmup] or [samples[0][1]]
    after = [rss for t, rss, _ in samples if t > warmup]
    baseline = max(warm)
    end_rss = statistics.median(after[-3:]) if after else samples[-1][1]
    growth = end_rss - baseline
    print(
        f"rss: warm-up peak {baseline:.1f} MB, end {end_rss:.1f} MB, growth {growth:+.1f} MB "
        f"(tolerance {args.tolerance_mb:.0f} MB); {totals.ops} operations, {totals.ok} complete, "
        f"{totals.aborted} aborted, {totals.cut} connections cut, {totals.bytes / MiB:.1f} MiB; "
        f"{totals.stale_packets} stale python-socketio packets after cuts"
    )
    if growth > args.tolerance_mb:
        failures.append(f"server RSS grew by {growth:.1f} MB after the warm-up")
    if code != 0:
        failures.append(f"the server exited with code {code}")
    if totals.ops == 0:
        failures.append("no operation ran")
    for failure in failures:
        print(f"FAIL: {failure}")
    print("soak: " + ("FAILED" if failures else "OK"))
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds of load (default 3600)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples (default 5)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of warm-up (default duration/4)")
    parser.add_argument("--tolerance-mb", type=float, default=30.0, help="allowed RSS growth (default 30)")
    parser.add_argument("--max-size", type=int, default=2 * MiB, help="largest transfer (default 2 MiB)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hostile", type=int, default=2, help="hostile raw clients (default 2)")
    parser.add_argument(
        "--process-budget-mb", type=int, default=48, help="the server's process budget (default 48)"
    )
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.process_budget_mb * MiB))
        return 0
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
