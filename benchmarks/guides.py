"""A user's program, written from the guides: files up and down against the in-memory stream.

    python benchmarks/guides.py [--size MiB] [--quick | --smoke] [--repeat N]

Two servers as the guides teach them, each in its own process: ``aiohttp`` (``sio.attach(app)``,
docs/guides/uploads.md and downloads.md) and ``asgi`` (FastAPI under uvicorn with
``ws_per_message_deflate=False``, docs/guides/asgi.md). Their handlers are the guides':
``upload`` stores with ``receive_file()`` and answers the stream's digest (``hashed-upload``:
the guide before, which hashed a sha256 of its own beside it), ``download`` starts
``send_file()`` with ``start_writer()``. Beside them, on the same servers, the README's
in-memory stream (``async for chunk in stream`` on one side, ``write()`` of pieces of the default
chunk size on the other). Each transfer is a fresh client process that connects and transfers at once, as a
script does (``call(..., writer=send_file(...))`` up, ``receive_file()`` down). Median of the
rounds; targets: files >= 0.8x the in-memory stream on the same server, and >= 0.8x the files
table of the README (``README_FILES``, MB/s up / down).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import PYTHON, MiB, Report, _process, common_args, make_file, median, mode_of, ratio, size_label

from sio_stream.core._config import DEFAULT_MAX_CHUNK

SIZES = {"full": 200 * MiB, "quick": 64 * MiB, "smoke": 4 * MiB}
REPEATS = {"full": 3, "quick": 3, "smoke": 1}
TARGET = 0.8
#: The README's files table (send_file -> receive_file, verified), MB/s upload / download.
README_FILES = {"upload": 565.0, "download": 578.0}
#: The in-memory stream's writes: one wire chunk at the library's default max_chunk.
PIECE = DEFAULT_MAX_CHUNK


# -- the servers, as the guides write them ----------------------------------------------------------
def serve(kind: str, directory: str) -> None:
    import socketio

    from sio_stream import create_stream, receive_file, send_file, ss, start_writer

    sio = socketio.AsyncServer(async_mode="aiohttp" if kind == "aiohttp" else "asgi")
    streams = ss(sio)
    root = Path(directory)

    @streams.on("upload")
    async def upload(sid: str, stream: Any, meta: dict[str, Any]) -> dict[str, Any]:
        target = root / Path(meta["name"]).name
        size = await receive_file(stream, target, max_bytes=1 << 40, size=meta.get("size"))
        return {"size": size, "digest": stream.digest}

    @streams.on("upload-hashed")
    async def upload_hashed(sid: str, stream: Any, meta: dict[str, Any]) -> dict[str, Any]:
        # The uploads guide before issue 24: a sha256 of its own beside the stream's digest.
        digest = hashlib.sha256()
        target = root / Path(meta["name"]).name
        size = await receive_file(stream, target, max_bytes=1 << 40, size=meta.get("size"), hasher=digest)
        return {"size": size, "sha256": digest.hexdigest()}

    @streams.on("download")
    async def download(sid: str, stream: Any, name: str) -> dict[str, Any]:
        start_writer(send_file(stream, root / Path(name).name))
        return {"size": (root / Path(name).name).stat().st_size}

    @streams.on("sink")
    async def sink(sid: str, stream: Any, meta: dict[str, Any]) -> dict[str, Any]:
        size = 0
        async for chunk in stream:
            size += len(chunk)
        return {"size": size}

    @streams.on("source")
    async def source(sid: str, size: int) -> Any:
        stream = create_stream()

        async def feed() -> None:
            piece = os.urandom(PIECE)
            for _ in range(size // PIECE):
                await stream.write(piece)
            await stream.end()

        start_writer(feed())
        return stream

    async def main() -> None:
        if kind == "aiohttp":
            from aiohttp import web

            app = web.Application()
            sio.attach(app)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            stop = runner.cleanup
        else:
            import uvicorn
            from fastapi import FastAPI

            app = socketio.ASGIApp(sio, other_asgi_app=FastAPI())
            config = uvicorn.Config(
                app, host="127.0.0.1", port=0, log_level="warning", ws_per_message_deflate=False
            )
            server = uvicorn.Server(config)
            serving = asyncio.ensure_future(server.serve())
            while not server.started:  # noqa: ASYNC110 (uvicorn has no event for it)
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]

            async def stop() -> None:
                server.should_exit = True
                await serving

        print(f"LISTENING {port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await stop()

    asyncio.run(main())


# -- the client, as a script would do it -------------------------------------------------------------
def client(url: str, op: str, path: str, size: int) -> None:
    import socketio

    from sio_stream import create_stream, receive_file, send_file, ss

    async def main() -> dict[str, Any]:
        sio = socketio.AsyncClient()
        streams = ss(sio)
        await sio.connect(url, transports=["websocket"])
        started = time.perf_counter()
        if op in ("file-upload", "hashed-upload"):
            stream = create_stream()
            meta = {"name": "up.bin", "size": size}
            event = "upload" if op == "file-upload" else "upload-hashed"
            reply = await streams.call(event, stream, meta, writer=send_file(stream, path))
            assert reply["size"] == size, reply
        elif op == "file-download":
            stream = create_stream()
            meta = await streams.call("download", stream, Path(path).name)
            assert await receive_file(stream, path + ".down", size=meta["size"]) == size
        elif op == "memory-upload":
            stream = create_stream()

            async def write() -> None:
                piece = os.urandom(PIECE)
                for _ in range(size // PIECE):
                    await stream.write(piece)
                await stream.end()

            reply = await streams.call("sink", stream, {}, writer=write())
            assert reply["size"] == size, reply
        else:
            stream = await streams.call("source", size)
            got = 0
            async for chunk in stream:
                got += len(chunk)
            assert got == size
        seconds = time.perf_counter() - started
        digest = getattr(stream, "digest", None)
        await sio.disconnect()
        return {"seconds": seconds, "digest": digest is not None}

    print(json.dumps(asyncio.run(main())), flush=True)


def run_one(url: str, op: str, path: Path, size: int) -> dict[str, Any]:
    done = subprocess.run(
        [PYTHON, __file__, "--client", url, op, str(path), str(size)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"client {op} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.splitlines()[-1]))


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("guides", mode)
    size = (args.size * MiB if args.size else SIZES[mode]) // PIECE * PIECE
    repeats = args.repeat or REPEATS[mode]
    report.note(f"{size_label(size)} per transfer, a fresh client process each, median of {repeats} rounds")
    tmp = Path(tempfile.mkdtemp(prefix="sio-stream-guides-"))
    rates: dict[str, list[float]] = {}
    digests: dict[str, list[bool]] = {}
    try:
        served = tmp / "served"
        served.mkdir()
        src = served / "src.bin"
        make_file(src, size)
        ops = ["memory-upload", "file-upload", "hashed-upload", "memory-download", "file-download"]
        for kind in ("aiohttp", "asgi"):
            with _process([PYTHON, __file__, "--serve", kind, str(served)], f"{kind} server") as (_, port):
                url = f"http://127.0.0.1:{port}"
                run_one(url, "memory-upload", src, 4 * MiB)  # warm-up
                for _ in range(repeats):
                    for op in ops:
                        os.sync()
                        result = run_one(url, op, src, size)
                        rates.setdefault(f"{kind} {op}", []).append(size / result["seconds"] / 1e6)
                        digests.setdefault(f"{kind} {op}", []).append(result["digest"])
                        for leftover in (served / "up.bin", Path(str(src) + ".down")):
                            leftover.unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name, values in rates.items():
        kind, op = name.split()
        direction = op.split("-")[1]
        value = median(values)
        ratios: dict[str, float] = {}
        target = met = None
        if not op.startswith("memory"):
            memory = median(rates[f"{kind} memory-{direction}"])
            ratios["in-memory"] = ratio(value, memory)
            ratios["README table"] = ratio(value, README_FILES[direction])
            target = f">={TARGET:g}x in-memory and README"
            met = min(ratios.values()) >= TARGET
            verified = sum(digests[name])
            name += f" (digest checked in {verified} of {len(values)})"
        report.line(
            f"{name} {size_label(size)}", value, "MB/s", ratios, target, met, runs=[round(v) for v in values]
        )
    return report.finish(args.json)


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=None, help="MiB per transfer (default 200; quick 64)")
    p.add_argument("--serve", nargs=2, default=None, help=argparse.SUPPRESS)
    p.add_argument("--client", nargs=4, default=None, help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    parsed = parser().parse_args()
    if parsed.serve:
        serve(*parsed.serve)
    elif parsed.client:
        url, op, path, size = parsed.client
        client(url, op, path, int(size))
    else:
        run(parsed)
