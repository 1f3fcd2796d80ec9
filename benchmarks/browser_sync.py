"""Our JavaScript client in headless Chromium against a Flask-SocketIO server (``tests/sync_peer.py``
in a child process, threading, eventlet or gevent), with ``ss()``'s default (compression off,
except on gevent: see ``sio_stream/_compression.py``) and with ``ss(websocket_compression=True)``
(what every one of these servers negotiates with a browser by itself), in turns: an upload (the
peer's ``sha`` handler) and a download (its ``download`` handler) of ``--size`` bytes each, timed
in the page. A transfer that fails is reported with the phase and the reason the browser gave,
and counted::

    python benchmarks/browser_sync.py [--size 32M] [--repeat 3] [--mode threading eventlet gevent]

Needs Debian's chromium. The page is the peer's blank document (an address Chromium can place),
with socket.io-client's and our client's modules served from ``sio_stream/web/``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from sio_stream.cli._common import parse_size

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.sync_support import sync_peer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WEB = REPO / "sio_stream" / "web"

ROUND_TRIP = """async (size) => {
  const { io } = await import('/socket.io.esm.min.js');
  const { StreamSocket, createStream, sendBlob } = await import('/sio-stream.js');
  const socket = io(location.origin, { transports: ['websocket'] });
  const streams = new StreamSocket(socket);
  await new Promise((r) => socket.once('connect', r));
  let phase = 'negotiate';
  let why = null;
  socket.on('disconnect', (reason, details) => {
    why = `${phase}: ${reason} (${JSON.stringify(details && (details.description || details))})`;
  });
  try {
    await streams.negotiated();
    const extensions = socket.io.engine.transport.ws.extensions;
    // 256 KiB of random bytes, repeated: deflate's 32 KiB window finds nothing to compress.
    const block = new Uint8Array(256 * 1024);
    for (let i = 0; i < block.length; i += 65536) crypto.getRandomValues(block.subarray(i, i + 65536));
    const blob = new Blob(Array(Math.ceil(size / block.length)).fill(block)).slice(0, size);
    phase = 'upload';
    let t = performance.now();
    const up = createStream();
    const reply = streams.call('sha', up);
    await sendBlob(up, blob);
    const [, stored] = await reply;
    const upload = (performance.now() - t) / 1000;
    if (stored !== size) throw new Error(`stored ${stored}`);
    phase = 'download';
    t = performance.now();
    const [down] = await streams.call('download', { size });
    let got = 0;
    const reader = down.readable.getReader();
    for (;;) { const { done, value } = await reader.read(); if (done) break; got += value.byteLength; }
    const download = (performance.now() - t) / 1000;
    if (got !== size) throw new Error(`got ${got}`);
    return { extensions, upload, download };
  } catch (error) {
    return { error: why || `${phase}: ${error}` };
  } finally {
    socket.close();
  }
}"""


def serve_file(path: Path) -> Callable[[Any], Awaitable[None]]:
    async def handler(route: Any) -> None:
        await route.fulfill(path=path, content_type="text/javascript")

    return handler


async def one(browser: Any, mode: str, kept: bool, size: int) -> dict[str, Any]:
    flags = ["--websocket-compression"] if kept else []
    with sync_peer("--mode", mode, "--host", "flask", *flags) as peer:
        page = await browser.new_page()
        for name in ("socket.io.esm.min.js", "sio-stream.js"):
            await page.route(f"{peer.url}/{name}", serve_file(WEB / name))
        await page.goto(peer.url + "/")
        result: dict[str, Any] = await page.evaluate(ROUND_TRIP, size)
        await page.close()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=parse_size, default=32 * 1024 * 1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", nargs="+", default=["threading", "eventlet", "gevent"])
    args = parser.parse_args()
    mb = args.size / 1e6
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            for mode in args.mode:
                failures = {False: 0, True: 0}
                for _ in range(args.repeat):
                    for kept in (False, True):
                        what = f"{mode:<9} {'websocket_compression=True' if kept else 'ss() default':<26}"
                        result = await one(browser, mode, kept, args.size)
                        if "error" in result:
                            failures[kept] += 1
                            print(f"{what}  FAILED {result['error']}", flush=True)
                            continue
                        up, down = mb / result["upload"], mb / result["download"]
                        rates = f"upload {up:6.1f} MB/s  download {down:6.1f} MB/s"
                        print(f"{what}  {rates}  (negotiated: {result['extensions'] or 'none'})", flush=True)
                print(
                    f"{mode}: failed {failures[False]} of {args.repeat} with the default, "
                    f"{failures[True]} of {args.repeat} with websocket_compression=True",
                    flush=True,
                )
        finally:
            await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
