"""Session resume under a link that keeps cutting: issue 21's targets, each beside an uncut
baseline measured in the same run.

    python benchmarks/resume.py [--only parallel,small,bulk,vanish] [--size-mib 48]
                                [--bulk-mib 1024] [--clients 1000] [--quick]

The sio_stream server runs in a child process (this script with ``--serve``): its memory and
CPU are its own. The client side (an ``AsyncClient``) and ``benchmarks/link.py``'s relay run
here. Scenarios, one line each:

* ``parallel``: 4 uploads and 4 downloads of ``--size-mib`` at once on one client, through a
  link of 40 MB/s and 10 ms RTT that aborts every connection every 3 s; then the same uncut.
* ``small``: 100 concurrent small byte streams (half up, half down) and 100 object streams,
  through the same link cutting every ``--small-cut-every`` seconds.
* ``bulk``: one upload and one download of ``--bulk-mib`` at once, on an unlimited link, cut
  every 2 s, against the same uncut: the time ratio, the reconnection delays (from each drop to
  its resume, measured on the client) and the bytes sent again per cut and per stream, beside
  the stream window (``statistics().resent``).
* ``vanish``: ``--clients`` clients start an upload each and vanish (their link is cut and
  closed, they do not reconnect): the server's accounted memory while it keeps their sessions
  (within the process budget) and once ``--resume-timeout`` has passed (all released).

Every stream's bytes are checked with SHA-256; an error reaching the application counts as a
failure. Exit status 1 when a scenario misses its target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import socketio
from aiohttp import web

import sio_stream
from benchmarks.link import Link
from sio_stream import IOStream, StreamError, create_stream

MiB = 1024 * 1024
PIECE = 256 * 1024
BLOCK = random.Random(21).randbytes(MiB)


def content(seed: int, size: int) -> Any:
    """Deterministic pieces of ``size`` bytes (a rotated random block: cheap, not compressible)."""
    offset = (seed * 7919) % len(BLOCK)
    block = BLOCK[offset:] + BLOCK[:offset]
    for start in range(0, size, PIECE):
        piece = start % len(block)
        chunk = (block + block)[piece : piece + min(PIECE, size - start)]
        yield chunk


def digest_of(seed: int, size: int) -> str:
    h = hashlib.sha256()
    for chunk in content(seed, size):
        h.update(chunk)
    return h.hexdigest()


# -- the server (child process) ---------------------------------------------------------------------
def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


async def serve(resume_timeout: float) -> None:
    logging.getLogger("sio_stream").setLevel(logging.ERROR)
    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=16 * MiB)
    streams = sio_stream.ss(sio, resume_timeout=resume_timeout)
    background: set[asyncio.Task[Any]] = set()

    @streams.on("upload")
    async def upload(sid: str, stream: IOStream) -> dict[str, Any]:
        h, size = hashlib.sha256(), 0
        async for chunk in stream:
            h.update(chunk)
            size += len(chunk)
        return {"size": size, "sha": h.hexdigest()}

    @streams.on("hold")
    async def hold(sid: str, stream: IOStream) -> None:
        await stream.receive()  # reads one chunk, then holds the rest (a client that vanishes)
        await asyncio.Event().wait()

    async def produce(stream: IOStream, seed: int, size: int) -> None:
        with_error = None
        try:
            for chunk in content(seed, size):
                await stream.write(chunk)
            await stream.end()
        except StreamError as exc:
            with_error = exc
        if with_error is not None:
            print(f"ERROR download: {with_error}", file=sys.stderr, flush=True)

    @streams.on("download")
    async def download(sid: str, seed: int, size: int) -> IOStream:
        stream = create_stream()
        task = asyncio.ensure_future(produce(stream, seed, size))
        background.add(task)
        task.add_done_callback(background.discard)
        return stream

    @streams.on("objects")
    async def objects(sid: str, stream: IOStream) -> dict[str, Any]:
        count, total = 0, 0
        async for value in stream:
            if value.get("n") != count:
                return {"error": f"object {count} arrived as {value.get('n')}"}
            count += 1
            total += len(value.get("pad", ""))
        return {"count": count, "total": total}

    @sio.on("stats")
    async def stats(sid: str) -> dict[str, Any]:
        s = streams.statistics()
        budget = sio_stream.process_budget()
        return {
            "streams": s.streams,
            "suspended": s.suspended,
            "held": budget.held,
            "reserved": budget.reserved,
            "retained": budget.retained,
            "limit": budget.limit,
            "resumes": s.resumes,
            "rss_kib": rss_kib(),
        }

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"LISTENING {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: done.done() or done.set_result(None))
    await done


class Server:
    def __init__(self, resume_timeout: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--resume-timeout", str(resume_timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"the server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the client side ---------------------------------------------------------------------------------
class Drops(logging.Handler):
    """Times each drop to its resume on the client, from sio_stream's log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.since: float | None = None
        self.delays: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "dropped; its session waits" in text and self.since is None:
            self.since = time.monotonic()
        elif "session resumed" in text and self.since is not None:
            self.delays.append(time.monotonic() - self.since)
            self.since = None


async def client_for(url: str) -> tuple[socketio.AsyncClient, sio_stream.StreamSocket]:
    client = socketio.AsyncClient(reconnection_delay=0.2, reconnection_delay_max=0.5)
    streams = sio_stream.ss(client)
    await client.connect(url, transports=["websocket"])
    return client, streams


async def upload(streams: sio_stream.StreamSocket, seed: int, size: int) -> bool:
    stream = create_stream()
    writing = asyncio.ensure_future(_write(stream, seed, size))
    answer = await streams.call("upload", stream, timeout=120)
    await writing
    return bool(answer == {"size": size, "sha": digest_of(seed, size)})


async def _write(stream: IOStream, seed: int, size: int) -> None:
    for chunk in content(seed, size):
        await stream.write(chunk)
    await stream.end()


async def download(streams: sio_stream.StreamSocket, seed: int, size: int) -> bool:
    stream = await streams.call("download", seed, size, timeout=120)
    h, got = hashlib.sha256(), 0
    async for chunk in stream:
        h.update(chunk)
        got += len(chunk)
    return got == size and h.hexdigest() == digest_of(seed, size)


async def objects(streams: sio_stream.StreamSocket, count: int) -> bool:
    stream = create_stream(object_mode=True)
    answer = asyncio.ensure_future(streams.call("objects", stream, timeout=120))
    total = 0
    for n in range(count):
        pad = "x" * (n % 300)
        total += len(pad)
        await stream.write({"n": n, "pad": pad})
    await stream.end()
    return bool(await answer == {"count": count, "total": total})


async def run_all(jobs: list[Any]) -> tuple[int, list[str]]:
    """Run ``jobs`` at once: how many came out intact, and the errors that reached us."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return sum(1 for r in results if r is True), errors


async def through_link(
    server: Server, jobs: Any, *, rate: float | None, cut_every: float | None
) -> dict[str, Any]:
    drops = Drops()
    logging.getLogger("sio_stream").addHandler(drops)
    logging.getLogger("sio_stream").setLevel(logging.INFO)
    try:
        async with Link(server.port, rate=rate, rtt=0.01, cut_every=cut_every) as link:
            client, streams = await client_for(link.url)
            try:
                start = time.monotonic()
                intact, errors = await run_all(jobs(streams))
                seconds = time.monotonic() - start
                stats = streams.statistics()
                cuts = link.cuts
            finally:
                await client.disconnect()
    finally:
        logging.getLogger("sio_stream").removeHandler(drops)
    return {
        "intact": intact,
        "errors": errors,
        "seconds": seconds,
        "cuts": cuts,
        "resumes": stats.resumes,
        "resent": stats.resent,
        "delays": drops.delays,
    }


def show(name: str, total: int, cut: dict[str, Any], uncut: dict[str, Any] | None) -> bool:
    ok = cut["intact"] == total and not cut["errors"]
    line = (
        f"{name}: {cut['intact']}/{total} intact, {len(cut['errors'])} errors, {cut['cuts']} cuts, "
        f"{cut['resumes']} resumes, {cut['seconds']:.1f} s"
    )
    if uncut is not None:
        line += f" (uncut {uncut['seconds']:.1f} s: {cut['seconds'] / uncut['seconds']:.2f}x)"
    print(line, flush=True)
    for error in cut["errors"][:5]:
        print(f"  error: {error}", flush=True)
    return ok


async def alternate(
    server: Server, jobs: Any, rate: float | None, cut_every: float, repeat: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Uncut and cut runs, alternated ``repeat`` times (the machine is shared: its load moves
    under a single pair); the uncut run of median time, and the cut run whose time is the
    median of the ratios (every cut run must come out intact: the worst is kept otherwise)."""
    pairs = []
    for _ in range(repeat):
        uncut = await through_link(server, jobs, rate=rate, cut_every=None)
        cut = await through_link(server, jobs, rate=rate, cut_every=cut_every)
        pairs.append((uncut, cut))
    failed = [cut for _uncut, cut in pairs if cut["errors"] or cut["intact"] < len(jobs_of(jobs))]
    pairs.sort(key=lambda pair: pair[1]["seconds"] / pair[0]["seconds"])
    uncut, cut = pairs[len(pairs) // 2]
    return uncut, failed[0] if failed else cut


def jobs_of(jobs: Any) -> list[Any]:
    """The job count of ``jobs`` (without running them: the coroutines are closed)."""
    made = jobs(None)
    for job in made:
        job.close()
    return made


async def parallel(server: Server, size: int, repeat: int) -> bool:
    def jobs(streams: sio_stream.StreamSocket) -> list[Any]:
        return [upload(streams, i, size) for i in range(4)] + [
            download(streams, 10 + i, size) for i in range(4)
        ]

    uncut, cut = await alternate(server, jobs, 40e6, 3.0, repeat)
    return show(f"parallel 4 up + 4 down x {size // MiB} MiB, 40 MB/s, cut every 3 s", 8, cut, uncut)


async def small(server: Server, size: int, cut_every: float) -> bool:
    def jobs(streams: sio_stream.StreamSocket) -> list[Any]:
        byte_jobs = [upload(streams, i, size) for i in range(50)] + [
            download(streams, 100 + i, size) for i in range(50)
        ]
        return byte_jobs + [objects(streams, 3000) for _ in range(100)]

    cut = await through_link(server, jobs, rate=40e6, cut_every=cut_every)
    return show(
        f"small 100 byte streams x {size // 1024} KiB + 100 object streams x 3000, cut every {cut_every} s",
        200,
        cut,
        None,
    )


async def bulk(server: Server, size: int, repeat: int) -> bool:
    def jobs(streams: sio_stream.StreamSocket) -> list[Any]:
        return [upload(streams, 1, size), download(streams, 2, size)]

    uncut, cut = await alternate(server, jobs, None, 2.0, repeat)
    ok = show(f"bulk 1 up + 1 down x {size // MiB} MiB, cut every 2 s", 2, cut, uncut)
    delays = sum(cut["delays"])
    budget = 1.3 * uncut["seconds"] + delays
    cuts = max(1, cut["cuts"])
    per_cut = cut["resent"] / cuts / 2  # two streams, each with its own window
    window = sio_stream.core._core.DEFAULT_MAX_WINDOW  # a grown window; it starts at 8 x 256 KiB
    print(
        f"  time {cut['seconds']:.1f} s vs 1.3 x uncut + reconnection delays = {budget:.1f} s "
        f"({len(cut['delays'])} delays, {delays:.2f} s in all); resent {cut['resent'] / MiB:.1f} MiB in all, "
        f"{per_cut / MiB:.2f} MiB per cut per stream (window: at most {window // MiB} MiB)",
        flush=True,
    )
    return ok and cut["seconds"] <= budget and per_cut <= window


async def _write_quietly(stream: IOStream, data: bytes) -> None:
    with contextlib.suppress(StreamError):  # the client vanishes: its side fails at once
        await stream.write(data)


async def poll(control: socketio.AsyncClient, done: Any, limit: float) -> dict[str, Any]:
    """The server's statistics once ``done(stats)`` holds (or after ``limit`` seconds): a
    progress wait on another process, sampled every 0.2 s."""
    deadline = time.monotonic() + limit
    while True:
        stats: dict[str, Any] = await control.call("stats", timeout=120)
        if done(stats) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.2)


async def vanish(server: Server, clients: int, resume_timeout: float) -> bool:
    control = socketio.AsyncClient()
    await control.connect(server.url, transports=["websocket"])
    before = await control.call("stats")
    link = Link(server.port)
    await link.start()
    gone: list[socketio.AsyncClient] = []
    writes: list[asyncio.Future[None]] = []
    for i in range(clients):
        client = socketio.AsyncClient(reconnection=False)
        streams = sio_stream.ss(client)
        await client.connect(link.url, transports=["websocket"])
        stream = create_stream()
        await streams.emit("hold", stream)
        # Mid-transfer: one chunk read, more held; beyond the process budget's fair share the
        # server grants no credit, so the write may wait (it is not awaited).
        writes.append(asyncio.ensure_future(_write_quietly(stream, bytes([i % 256]) * (PIECE * 3))))
        gone.append(client)
    await poll(control, lambda s: s["streams"] >= clients, 60)
    await link.aclose()  # every client vanishes at once: no disconnect, and no way back
    start = time.monotonic()
    held = await poll(control, lambda s: s["suspended"] >= clients, 30)
    suspended = time.monotonic() - start  # the last drop seen by then: the last expiry is due
    peak = held["held"] + held["reserved"] + held["retained"]
    within = peak <= held["limit"]
    after = await poll(control, lambda s: not s["suspended"], resume_timeout + 60)
    released = time.monotonic() - start
    left = after["held"] + after["reserved"] + after["retained"]
    await control.disconnect()
    for write in writes:
        write.cancel()
    await asyncio.gather(*writes, return_exceptions=True)
    for client in gone:
        await client.disconnect()
    clean = after["streams"] == 0 and after["suspended"] == 0 and left == 0
    rss = (before["rss_kib"] // 1024, held["rss_kib"] // 1024, after["rss_kib"] // 1024)
    print(
        f"vanish {clients} clients: {held['suspended']} sessions kept, accounted {peak / MiB:.1f} MiB of "
        f"{held['limit'] // MiB} MiB (server RSS {rss[0]} -> {rss[1]} MiB), all suspended within "
        f"{suspended:.1f} s of the cut; released after {released:.1f} s (resume_timeout {resume_timeout} s, "
        f"so {released - resume_timeout - suspended:.1f} to {released - resume_timeout:.1f} s late): "
        f"streams {after['streams']}, "
        f"accounted {left} B, RSS {rss[2]} MiB",
        flush=True,
    )
    return within and clean and released <= resume_timeout + 10


async def main(args: argparse.Namespace) -> int:
    only = set(args.only.split(","))
    ok = True
    server = Server(args.resume_timeout)
    try:
        if "parallel" in only:
            ok &= await parallel(server, args.size_mib * MiB, args.repeat)
        if "small" in only:
            ok &= await small(server, args.small_kib * 1024, args.small_cut_every)
        if "bulk" in only:
            ok &= await bulk(server, args.bulk_mib * MiB, args.repeat)
        if "vanish" in only:
            ok &= await vanish(server, args.clients, args.resume_timeout)
    finally:
        server.close()
    return 0 if ok else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--only", default="parallel,small,bulk,vanish")
    p.add_argument("--size-mib", type=int, default=48)
    p.add_argument("--small-kib", type=int, default=512)
    p.add_argument("--small-cut-every", type=float, default=1.0)
    p.add_argument("--bulk-mib", type=int, default=1024)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--resume-timeout", type=float, default=10.0)
    p.add_argument("--repeat", type=int, default=3, help="uncut/cut pairs for parallel and bulk (median)")
    p.add_argument("--quick", action="store_true", help="smaller sizes: 8 MiB, 128 MiB bulk, 100 clients")
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    if arguments.serve:
        asyncio.run(serve(arguments.resume_timeout))
    else:
        if arguments.quick:
            arguments.size_mib, arguments.bulk_mib, arguments.clients = 8, 128, 100
        sys.exit(asyncio.run(main(arguments)))
