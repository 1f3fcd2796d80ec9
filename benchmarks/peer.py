"""The Python peer of the benchmarks: one process plays the server or the client role.

    python benchmarks/peer.py server [--configs 8:262144,...]
    python benchmarks/peer.py client URL JOBS_JSON

The server (aiohttp + python-socketio, 127.0.0.1, any free port) prints ``LISTENING <port>``
and serves until SIGTERM or until its stdin closes. It serves both contestants side by side:

* sio_stream events (``ss(sio, ns)`` on ``/`` with the library defaults, and on ``/w<window>c<chunk>``
  for each ``--configs`` entry, used by the sweep): ``upload``, ``download``, ``objects``,
  ``file-upload``, ``file-download`` (blocking file I/O inline), ``lib-file-upload``,
  ``lib-file-download`` (the library's ``receive_file`` / ``send_file``);
* the raw python-socketio baseline on ``/``: ``raw-chunk`` (binary, acked), ``raw-end``,
  ``raw-download`` (the server emits acked ``raw-chunk`` events with a fixed number in flight),
  ``raw-obj`` (small JSON, not acked), ``raw-obj-end``, ``raw-file-upload``;
* ``bench-stats`` (CPU seconds, VmRSS, VmHWM of the server process) and ``bench-reset-peak``.

The client runs a list of jobs (JSON) and prints one JSON line per job: bytes, seconds and the
CPU / memory figures of both processes. Client and server are always separate processes.
"""

# Blocking open()/read()/write() of page-cached files inside coroutines is deliberate: it is what
# a simple application does, and it keeps aiofiles' thread hops out of the figures.
# ruff: noqa: ASYNC230

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import socketio

import sio_stream
from sio_stream import create_stream

MiB = 1024 * 1024
_POOL_SIZE = 8 * MiB
_CLK_TCK = os.sysconf("SC_CLK_TCK")
# Python-side message limit: above every chunk size the sweep tries (sio_stream caps chunks at 4 MiB).
MAX_MESSAGE = 16 * MiB


# -- process figures (from /proc, no psutil) -----------------------------------------------------
def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process, in seconds (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def main_thread_cpu_seconds() -> float:
    """utime + stime of this process's main thread (the event loop), without its worker threads."""
    pid = os.getpid()
    return cpu_seconds(f"{pid}/task/{pid}")


def memory_kib(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def reset_peak(pid: int | str = "self") -> None:
    """Reset a process's VmHWM to its current RSS (Linux: ``echo 5 > /proc/PID/clear_refs``)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def stats() -> dict[str, Any]:
    mem = memory_kib()
    return {
        "cpu": cpu_seconds(),
        "loop_cpu": main_thread_cpu_seconds(),
        "rss_kib": mem["VmRSS"],
        "hwm_kib": mem["VmHWM"],
        "pid": os.getpid(),
    }


# -- payloads ---------------------------------------------------------------------------------------
_pools: dict[int, list[bytes]] = {}


def pieces(size: int, chunk: int) -> Iterator[bytes]:
    """``size`` bytes as ``chunk``-sized bytes objects, cycled from a random pool (no copying)."""
    pool = _pools.get(chunk)
    if pool is None:
        blob = os.urandom(_POOL_SIZE)
        pool = _pools[chunk] = [blob[i : i + chunk] for i in range(0, _POOL_SIZE - chunk + 1, chunk)]
    sent = 0
    i = 0
    while sent < size:
        piece = pool[i % len(pool)]
        i += 1
        if sent + len(piece) > size:
            piece = piece[: size - sent]
        sent += len(piece)
        yield piece


def parse_configs(text: str) -> list[tuple[int, int]]:
    out = []
    for item in filter(None, text.split(",")):
        window, chunk = item.split(":")
        out.append((int(window), int(chunk)))
    return out


def initial_credit_option() -> dict[str, Any]:
    """``ss(initial_credit=)`` from SIO_BENCH_INITIAL_CREDIT (bytes; ``links.py
    --initial-credit``; 0: off), for both roles; nothing when unset (the library's default)."""
    value = os.environ.get("SIO_BENCH_INITIAL_CREDIT")
    options: dict[str, Any] = {"initial_credit": int(value)} if value else {}
    # SIO_BENCH_RESUME_TIMEOUT (seconds; 0: off) compares what resume's retained replays cost.
    if os.environ.get("SIO_BENCH_RESUME_TIMEOUT"):
        options["resume_timeout"] = float(os.environ["SIO_BENCH_RESUME_TIMEOUT"])
    return options


def namespace_for(window: int | None, chunk: int | None) -> str:
    return "/" if window is None and chunk is None else f"/w{window}c{chunk}"


# -- server -------------------------------------------------------------------------------------------
_tasks: set[asyncio.Task[Any]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _serve_streams(sio: socketio.AsyncServer, namespace: str, window: int | None, chunk: int | None) -> None:
    # SIO_BENCH_CONNECTION_WINDOW (bytes) lets a sweep compare connection windows in one run.
    extra: dict[str, Any] = {}
    if os.environ.get("SIO_BENCH_CONNECTION_WINDOW"):
        extra["connection_window"] = int(os.environ["SIO_BENCH_CONNECTION_WINDOW"])
    if os.environ.get("SIO_BENCH_MAX_BUFFERED"):
        extra["max_buffered"] = int(os.environ["SIO_BENCH_MAX_BUFFERED"])
    if os.environ.get("SIO_BENCH_PROCESS_LIMIT"):
        sio_stream.set_process_limit(int(os.environ["SIO_BENCH_PROCESS_LIMIT"]))
    extra.update(initial_credit_option())
    streams = sio_stream.ss(sio, namespace, window=window, max_chunk=chunk, **extra)

    @streams.on("upload")
    async def upload(sid: str, stream: Any, meta: Any) -> int:
        n = 0
        async for data in stream:
            n += len(data)
        return n

    @streams.on("download")
    async def download(sid: str, meta: dict[str, Any]) -> Any:
        stream = create_stream()

        async def feed() -> None:
            for piece in pieces(meta["size"], meta["write"]):
                await stream.write(piece)
            await stream.end()

        _spawn(feed())
        return stream

    @streams.on("slow")
    async def slow(sid: str, stream: Any) -> None:
        # A handler that reads one chunk and then nothing (benchmarks/hostile.py floods it).
        await stream.receive()
        while not stream.closed:  # noqa: ASYNC110 (polls the stream state; no event to await)
            await asyncio.sleep(1)

    @streams.on("objects")
    async def objects(sid: str, stream: Any) -> int:
        n = 0
        async for _ in stream:
            n += 1
        return n

    @streams.on("file-upload")
    async def file_upload(sid: str, stream: Any, meta: dict[str, Any]) -> int:
        n = 0
        with open(meta["path"], "wb") as f:  # page-cache writes: cheap enough to do inline
            async for data in stream:
                f.write(data)
                n += len(data)
        return n

    @streams.on("file-download")
    async def file_download(sid: str, meta: dict[str, Any]) -> Any:
        stream = create_stream()

        async def feed() -> None:
            with open(meta["path"], "rb") as f:
                while data := f.read(meta["write"]):
                    await stream.write(data)
            await stream.end()

        _spawn(feed())
        return stream

    @streams.on("lib-file-upload")
    async def lib_file_upload(sid: str, stream: Any, meta: dict[str, Any]) -> int:
        return await sio_stream.receive_file(stream, meta["path"], size=meta.get("size"))

    @streams.on("lib-file-download")
    async def lib_file_download(sid: str, meta: dict[str, Any]) -> Any:
        stream = create_stream()
        _spawn(sio_stream.send_file(stream, meta["path"], digest=meta.get("digest", "auto")))
        return stream


def _serve_raw(sio: socketio.AsyncServer) -> None:
    received: dict[str, int] = {}
    files: dict[str, Any] = {}
    objects: dict[str, int] = {}

    @sio.on("raw-chunk")
    def raw_chunk(sid: str, data: bytes) -> None:
        received[sid] = received.get(sid, 0) + len(data)
        f = files.get(sid)
        if f is not None:
            f.write(data)

    @sio.on("raw-end")
    def raw_end(sid: str) -> int:
        f = files.pop(sid, None)
        if f is not None:
            f.close()
        return received.pop(sid, 0)

    @sio.on("raw-file-upload")
    def raw_file_upload(sid: str, meta: dict[str, Any]) -> bool:
        files[sid] = open(meta["path"], "wb")  # noqa: SIM115 (closed by raw-end)
        return True

    @sio.on("raw-download")
    async def raw_download(sid: str, meta: dict[str, Any]) -> bool:
        async def run() -> None:
            window = meta["window"]
            credit = asyncio.Semaphore(window)

            def acked(*_: Any) -> None:
                credit.release()

            if "path" in meta:
                with open(meta["path"], "rb") as f:
                    while data := f.read(meta["write"]):
                        await credit.acquire()
                        await sio.emit("raw-chunk", data, to=sid, callback=acked)
            else:
                for piece in pieces(meta["size"], meta["write"]):
                    await credit.acquire()
                    await sio.emit("raw-chunk", piece, to=sid, callback=acked)
            for _ in range(window):
                await credit.acquire()
            await sio.emit("raw-done", to=sid)

        _spawn(run())
        return True

    @sio.on("raw-obj")
    def raw_obj(sid: str, obj: Any) -> None:
        objects[sid] = objects.get(sid, 0) + 1

    @sio.on("raw-obj-end")
    def raw_obj_end(sid: str) -> int:
        return objects.pop(sid, 0)

    @sio.on("bench-stats")
    def bench_stats(sid: str) -> dict[str, Any]:
        return stats()

    @sio.on("bench-reset-peak")
    def bench_reset_peak(sid: str) -> dict[str, Any]:
        reset_peak()
        return stats()


async def _raw_websocket(request: Any) -> Any:
    """``/raw-ws?op=upload|download&size=N&write=W``: a bare aiohttp WebSocket moving the bytes
    in ``W``-byte binary messages, no Socket.IO (the transport under every stream). Upload: the
    server reads ``N`` bytes and answers ``OK``; download: it sends them and closes."""
    from aiohttp import WSMsgType, web

    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, compress=False)
    await ws.prepare(request)
    size, write = int(request.query["size"]), int(request.query["write"])
    if request.query["op"] == "upload":
        got = 0
        while got < size:
            msg = await ws.receive()
            if msg.type is not WSMsgType.BINARY:
                break
            got += len(msg.data)
        await ws.send_str(f"OK {got}")
    else:
        for piece in pieces(size, write):
            await ws.send_bytes(piece)
    await ws.close()
    return ws


async def raw_websocket(url: str, op: str, size: int, write: int) -> int:
    """The client side of ``/raw-ws``: the bytes moved."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        query = f"op={op}&size={size}&write={write}"
        async with session.ws_connect(f"{url}/raw-ws?{query}", max_msg_size=MAX_MESSAGE) as ws:
            if op == "upload":
                for piece in pieces(size, write):
                    await ws.send_bytes(piece)
                reply = await ws.receive_str()
                return int(reply.split()[1])
            got = 0
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    break
                got += len(msg.data)
            return got


async def serve(configs: list[tuple[int, int]]) -> None:
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=MAX_MESSAGE)
    app = web.Application()
    sio.attach(app)
    _serve_streams(sio, "/", None, None)
    for window, chunk in configs:
        _serve_streams(sio, namespace_for(window, chunk), window, chunk)
    _serve_raw(sio)
    app.router.add_get("/raw-ws", _raw_websocket)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"LISTENING {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if not sys.stdin.isatty():
        # Stop when the harness closes our stdin (or dies).
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def watch_stdin() -> None:
            await reader.read()
            stop.set()

        _spawn(watch_stdin())
    await stop.wait()
    await runner.cleanup()


# -- client -------------------------------------------------------------------------------------------
class Client:
    """One AsyncClient connected to the benchmark server, with its StreamSocket for a namespace."""

    def __init__(self, url: str, namespace: str, window: int | None, chunk: int | None) -> None:
        self.url = url
        self.namespace = namespace
        self.sio = socketio.AsyncClient()
        self.streams = sio_stream.ss(
            self.sio, namespace, window=window, max_chunk=chunk, **initial_credit_option()
        )
        self.raw_received = 0
        self.raw_done = asyncio.Event()

        @self.sio.on("raw-chunk")
        def raw_chunk(data: bytes) -> None:
            self.raw_received += len(data)
            if self.sink is not None:
                self.sink.write(data)

        @self.sio.on("raw-done")
        def raw_done() -> None:
            self.raw_done.set()

        self.sink: Any = None

    async def connect(self) -> None:
        namespaces = [self.namespace] if self.namespace == "/" else ["/", self.namespace]
        await self.sio.connect(self.url, transports=["websocket"], namespaces=namespaces)
        # Let the $stream-hello exchange finish before anything is timed.
        await self.sio.call("bench-stats", timeout=30)

    async def server_stats(self) -> dict[str, Any]:
        return await self.sio.call("bench-stats", timeout=60)

    async def reset_server_peak(self) -> dict[str, Any]:
        return await self.sio.call("bench-reset-peak", timeout=60)

    # sio_stream -------------------------------------------------------------------------------------
    async def sio_upload(self, size: int, write: int) -> int:
        stream = create_stream()
        ack = asyncio.ensure_future(
            self.streams.call("upload", stream, {"size": size}, to=None, timeout=None)
        )
        for piece in pieces(size, write):
            await stream.write(piece)
        await stream.end()
        return await ack

    async def sio_download(self, size: int, write: int) -> int:
        stream = await self.streams.call("download", {"size": size, "write": write}, timeout=None)
        n = 0
        async for data in stream:
            n += len(data)
        return n

    async def sio_objects(self, count: int, message: Any) -> int:
        stream = create_stream(object_mode=True)
        ack = asyncio.ensure_future(self.streams.call("objects", stream, timeout=None))
        for _ in range(count):
            await stream.write(message)
        await stream.end()
        return await ack

    async def sio_file_upload(self, src: str, dst: str, write: int) -> int:
        stream = create_stream()
        ack = asyncio.ensure_future(self.streams.call("file-upload", stream, {"path": dst}, timeout=None))
        with open(src, "rb") as f:
            while data := f.read(write):
                await stream.write(data)
        await stream.end()
        return await ack

    async def sio_file_download(self, src: str, dst: str, write: int) -> int:
        stream = await self.streams.call("file-download", {"path": src, "write": write}, timeout=None)
        n = 0
        with open(dst, "wb") as f:
            async for data in stream:
                f.write(data)
                n += len(data)
        return n

    async def lib_file_upload(self, src: str, dst: str, digest: str | None = "auto") -> int:
        stream = create_stream()
        size = os.stat(src).st_size
        ack = asyncio.ensure_future(
            self.streams.call("lib-file-upload", stream, {"path": dst, "size": size}, timeout=None)
        )
        await sio_stream.send_file(stream, src, digest=digest)
        return await ack

    async def lib_file_download(self, src: str, dst: str, digest: str | None = "auto") -> int:
        meta = {"path": src, "digest": digest}
        stream = await self.streams.call("lib-file-download", meta, timeout=None)
        return await sio_stream.receive_file(stream, dst)

    # raw python-socketio ------------------------------------------------------------------------
    async def raw_upload(self, size: int, write: int, window: int, src: str | None = None) -> int:
        credit = asyncio.Semaphore(window)

        def acked(*_: Any) -> None:
            credit.release()

        if src is not None:
            with open(src, "rb") as f:
                while data := f.read(write):
                    await credit.acquire()
                    await self.sio.emit("raw-chunk", data, callback=acked)
        else:
            for piece in pieces(size, write):
                await credit.acquire()
                await self.sio.emit("raw-chunk", piece, callback=acked)
        for _ in range(window):
            await credit.acquire()
        return await self.sio.call("raw-end", timeout=None)

    async def raw_download(self, meta: dict[str, Any], dst: str | None = None) -> int:
        self.raw_received = 0
        self.raw_done.clear()
        self.sink = open(dst, "wb") if dst else None  # noqa: SIM115
        try:
            await self.sio.call("raw-download", meta, timeout=None)
            await self.raw_done.wait()
        finally:
            if self.sink is not None:
                self.sink.close()
                self.sink = None
        return self.raw_received

    async def raw_objects(self, count: int, message: Any) -> int:
        for _ in range(count):
            await self.sio.emit("raw-obj", message)
        return await self.sio.call("raw-obj-end", timeout=None)


async def run_job(client: Client, job: dict[str, Any], url: str) -> dict[str, Any]:
    op = job["op"]
    impl = job["impl"]
    size = job.get("size", 0)
    write = job.get("write", 256 * 1024)
    window = job.get("window", 8)
    out: dict[str, Any] = {"op": op, "impl": impl}
    if job.get("reset_peak"):
        reset_peak()
        out["server_idle"] = await client.reset_server_peak()
        out["client_idle"] = stats()
    server_before = await client.server_stats()
    cpu_before = cpu_seconds()
    loop_before = main_thread_cpu_seconds()
    start = time.perf_counter()
    if impl == "raw-ws" and op in ("upload", "download"):
        n = await raw_websocket(url, op, size, write)
    elif op == "upload":
        n = await (
            client.sio_upload(size, write) if impl == "sio" else client.raw_upload(size, write, window)
        )
    elif op == "download":
        if impl == "sio":
            n = await client.sio_download(size, write)
        else:
            n = await client.raw_download({"size": size, "write": write, "window": window})
    elif op == "file-upload":
        if impl == "sio":
            n = await client.sio_file_upload(job["src"], job["dst"], write)
        else:
            await client.sio.call("raw-file-upload", {"path": job["dst"]})
            n = await client.raw_upload(0, write, window, src=job["src"])
    elif op == "file-download":
        if impl == "sio":
            n = await client.sio_file_download(job["src"], job["dst"], write)
        else:
            n = await client.raw_download({"path": job["src"], "write": write, "window": window}, job["dst"])
    elif op == "lib-file-upload":
        n = await client.lib_file_upload(job["src"], job["dst"], job.get("digest", "auto"))
    elif op == "lib-file-download":
        n = await client.lib_file_download(job["src"], job["dst"], job.get("digest", "auto"))
    elif op == "objects":
        count, message = job["count"], job["message"]
        n = await (
            client.sio_objects(count, message) if impl == "sio" else client.raw_objects(count, message)
        )
    elif op == "multi":
        # ``streams`` uploads at once on this one connection, ``size`` bytes each (downloads
        # with ``"download": true``).
        async def one() -> tuple[float, float, int]:
            t0 = time.perf_counter()
            if job.get("download"):
                got = await client.sio_download(size, write)
            else:
                got = await client.sio_upload(size, write)
            return t0, time.perf_counter(), got

        results = await asyncio.gather(*(one() for _ in range(job["streams"])))
        n = sum(r[2] for r in results)
        out["per_stream_mb_s"] = [size / (r[1] - r[0]) / 1e6 for r in results]
    elif op == "beside":
        # ``bulk`` uploads of ``size`` bytes on this connection; once they are flowing, one upload
        # of ``small`` bytes, timed on its own (``bulk`` 0: the same small upload alone).
        bulk = [asyncio.ensure_future(client.sio_upload(size, write)) for _ in range(job["bulk"])]
        if bulk:
            await asyncio.sleep(job.get("settle", 0.5))  # a benchmark, not a test: let windows fill
        t0 = time.perf_counter()
        small = await client.sio_upload(job["small"], write)
        out["small_seconds"] = time.perf_counter() - t0
        n = small + sum(await asyncio.gather(*bulk))
    elif op == "clients":
        n, per = await run_clients(url, job)
        out["per_stream_mb_s"] = per
    else:
        raise ValueError(f"unknown op {op!r}")
    seconds = time.perf_counter() - start
    cpu_after = cpu_seconds()
    loop_after = main_thread_cpu_seconds()
    server_after = await client.server_stats()
    out.update(
        bytes=n,
        seconds=seconds,
        client_cpu=cpu_after - cpu_before,
        server_cpu=server_after["cpu"] - server_before["cpu"],
        client_loop_cpu=loop_after - loop_before,
        server_loop_cpu=server_after["loop_cpu"] - server_before["loop_cpu"],
        client_mem=memory_kib(),
        server_mem={"VmRSS": server_after["rss_kib"], "VmHWM": server_after["hwm_kib"]},
    )
    return out


async def run_clients(url: str, job: dict[str, Any]) -> tuple[int, list[float]]:
    """``clients`` AsyncClients (in this process) uploading ``size`` bytes each, all at once."""
    clients = [Client(url, "/", None, None) for _ in range(job["clients"])]
    # Client() registers on sio_stream.ss for each new AsyncClient: all use the defaults.
    await asyncio.gather(*(c.connect() for c in clients))
    size, write, impl = job["size"], job.get("write", 256 * 1024), job["impl"]

    async def one(c: Client) -> tuple[float, float, int]:
        t0 = time.perf_counter()
        if impl == "sio":
            got = await c.sio_upload(size, write)
        else:
            got = await c.raw_upload(size, write, job.get("window", 8))
        return t0, time.perf_counter(), got

    try:
        results = await asyncio.gather(*(one(c) for c in clients))
    finally:
        await asyncio.gather(*(c.sio.disconnect() for c in clients))
    return sum(r[2] for r in results), [size / (r[1] - r[0]) / 1e6 for r in results]


async def client_main(url: str, jobs: list[dict[str, Any]]) -> None:
    # Build the payload pools before anything is timed (8 MiB of os.urandom per chunk size).
    for job in jobs:
        next(pieces(1, job.get("write", 256 * 1024)))
    clients: dict[str, Client] = {}
    for job in jobs:
        window, chunk = job.get("ns_window"), job.get("ns_chunk")
        ns = namespace_for(window, chunk)
        client = clients.get(ns)
        if client is None:
            client = clients[ns] = Client(url, ns, window, chunk)
            await client.connect()
        result = await run_job(client, job, url)
        print(json.dumps(result), flush=True)
    for client in clients.values():
        await client.sio.disconnect()


def main() -> None:
    role = sys.argv[1]
    if role == "server":
        configs = parse_configs(sys.argv[sys.argv.index("--configs") + 1]) if "--configs" in sys.argv else []
        asyncio.run(serve(configs))
    elif role == "client":
        asyncio.run(client_main(sys.argv[2], json.loads(sys.argv[3])))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
