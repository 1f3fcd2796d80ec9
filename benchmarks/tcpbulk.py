"""Raw TCP bulk transfers and a ping-pong: the baseline of ``links.py``, the check of ``link.py``.

    python benchmarks/tcpbulk.py server
    python benchmarks/tcpbulk.py client HOST:PORT JOBS_JSON

The server (127.0.0.1, any free port) prints ``LISTENING <port>`` and serves until SIGTERM or
until its stdin closes. One request per connection, a line and then bytes:

* ``UP <n>``: the client sends ``n`` bytes, the server reads them all and answers ``OK <n>``;
* ``DOWN <n>``: the server sends ``n`` bytes, then closes;
* ``ECHO``: the server echoes every byte until the client closes.

The client runs jobs (``{"op": "upload" | "download", "size": n}`` or ``{"op": "ping",
"count": k}``) and prints one JSON line each: ``bytes`` and ``seconds`` (from before connecting
to the last byte or the server's answer, as an application would time a transfer), and for a
ping the round-trip times. What a plain TCP application gets from a link: no framing, no acks
but TCP's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

MiB = 1024 * 1024
_PIECE = 256 * 1024
_pool: list[bytes] = []


def _pieces(size: int) -> list[bytes]:
    """``size`` bytes of a random 8 MiB pool, as 256 KiB pieces (views of a cached pool)."""
    if not _pool:
        blob = os.urandom(8 * MiB)
        _pool.extend(blob[i : i + _PIECE] for i in range(0, len(blob), _PIECE))
    out = []
    left, i = size, 0
    while left > 0:
        piece = _pool[i % len(_pool)][:left]
        out.append(piece)
        left -= len(piece)
        i += 1
    return out


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        words = (await reader.readline()).split()
        if words[:1] == [b"UP"]:
            want, got = int(words[1]), 0
            while got < want:
                data = await reader.read(MiB)
                if not data:
                    break
                got += len(data)
            writer.write(b"OK %d\n" % got)
            await writer.drain()
        elif words[:1] == [b"DOWN"]:
            for piece in _pieces(int(words[1])):
                writer.write(piece)
                await writer.drain()
        elif words[:1] == [b"ECHO"]:
            while data := await reader.read(MiB):
                writer.write(data)
                await writer.drain()
    except ConnectionError:
        pass  # the client went away (or a link cut it): nothing to answer
    finally:
        writer.close()


async def serve(host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Start the server; ``server.sockets[0].getsockname()[1]`` is its port."""
    return await asyncio.start_server(_handle, host, port)


async def upload(host: str, port: int, size: int) -> float:
    """Send ``size`` bytes; seconds until the server confirmed it read them all."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"UP %d\n" % size)
        for piece in _pieces(size):
            writer.write(piece)
            await writer.drain()
        answer = await reader.readline()
        if answer != b"OK %d\n" % size:
            raise RuntimeError(f"upload: the server answered {answer!r}")
        return time.perf_counter() - start
    finally:
        writer.close()


async def download(host: str, port: int, size: int) -> float:
    """Receive ``size`` bytes; seconds until the last one arrived."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"DOWN %d\n" % size)
        got = 0
        while got < size:
            data = await reader.read(MiB)
            if not data:
                raise RuntimeError(f"download: {got} of {size} bytes")
            got += len(data)
        return time.perf_counter() - start
    finally:
        writer.close()


async def ping(host: str, port: int, count: int, size: int = 64) -> list[float]:
    """``count`` round trips of ``size`` bytes on one connection; the seconds of each."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"ECHO\n")
        message = b"x" * size
        times = []
        for _ in range(count):
            start = time.perf_counter()
            writer.write(message)
            await reader.readexactly(size)
            times.append(time.perf_counter() - start)
        return times
    finally:
        writer.close()


async def run_jobs(host: str, port: int, jobs: list[dict[str, Any]]) -> None:
    _pieces(1)  # the random pool, before anything is timed
    for job in jobs:
        op = job["op"]
        out: dict[str, Any] = {"op": op}
        if op == "upload":
            out.update(bytes=job["size"], seconds=await upload(host, port, job["size"]))
        elif op == "download":
            out.update(bytes=job["size"], seconds=await download(host, port, job["size"]))
        elif op == "ping":
            rtts = await ping(host, port, job["count"])
            out.update(bytes=0, seconds=sum(rtts), rtts=rtts)
        else:
            raise ValueError(f"unknown op {op!r}")
        print(json.dumps(out), flush=True)


async def _serve_until_stopped() -> None:
    from link import until_stopped  # run as a script: benchmarks/ is on the path

    server = await serve()
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    await until_stopped()
    server.close()


def main() -> None:
    role = sys.argv[1]
    if role == "server":
        asyncio.run(_serve_until_stopped())
    elif role == "client":
        host, _, port = sys.argv[2].rpartition(":")
        asyncio.run(run_jobs(host or "127.0.0.1", int(port), json.loads(sys.argv[3])))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
