"""Browser throughput on loopback, against ``sio-stream serve`` in a child process, in one run:

* the Python client (``sio_stream``'s own ``put``/``get``), the baseline;
* our JavaScript client (``js/sio-stream.js``) in headless Chromium, through the page's assets;
* the unmodified socket.io-stream 0.9.1 browser bundle in the same Chromium.

Browser figures are timed inside the page (``performance.now()``), data made and counted in
memory (no disk). Needs Debian's chromium and ``make node``. Prints one line per figure::

    python benchmarks/browser.py [--size 64M]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.async_api import async_playwright

from sio_stream._cli import connect, download, parse_size, upload

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SS_BUNDLE = REPO / "tests/interop/node/node_modules/socket.io-stream/socket.io-stream.js"
IO_UMD = REPO / "js/node_modules/socket.io-client/dist/socket.io.min.js"

OURS = """async ([size, window]) => {
  const { io } = await import('/socket.io.esm.min.js');
  const { StreamSocket, createStream, sendBlob } = await import('/sio-stream.js');
  const socket = io(location.origin, { transports: ['websocket'] });
  const streams = new StreamSocket(socket, { window });
  await new Promise((r) => socket.once('connect', r));
  await streams.negotiated();
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
  let t = performance.now();
  const up = createStream();
  const reply = streams.call('put', up, { path: 'bench-ours.bin', size });
  await sendBlob(up, new Blob([data]));
  const [answer] = await reply;
  const upload = (performance.now() - t) / 1000;
  if (answer.size !== size) throw new Error(JSON.stringify(answer));
  t = performance.now();
  const [down, info] = await streams.call('get', 'bench-ours.bin');
  let got = 0;
  const reader = down.readable.getReader();
  for (;;) { const { done, value } = await reader.read(); if (done) break; got += value.byteLength; }
  const dl = (performance.now() - t) / 1000;
  if (got !== info.size) throw new Error(`got ${got}`);
  socket.close();
  return [upload, dl];
}"""

ORIGINAL_PAGE = """<!doctype html><meta charset="utf-8">
<script src="/bench/socket.io.min.js"></script><script src="/bench/socket.io-stream.js"></script>"""

ORIGINAL = """async (size) => {
  const socket = io(location.origin, { transports: ['websocket'] });
  await new Promise((r) => socket.once('connect', r));
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
  let t = performance.now();
  const up = ss.createStream();
  const stored = new Promise((r) => ss(socket).emit('put', up, { path: 'bench-ss.bin', size }, r));
  ss.createBlobReadStream(new Blob([data]), { highWaterMark: 256 * 1024 }).pipe(up);
  const answer = await stored;
  const upload = (performance.now() - t) / 1000;
  if (answer.size !== size) throw new Error(JSON.stringify(answer));
  t = performance.now();
  const got = await new Promise((resolve, reject) => {
    ss(socket).emit('get', 'bench-ss.bin', (stream, info) => {
      let n = 0;
      stream.on('data', (c) => (n += c.length));
      stream.on('end', () => resolve(n));
      stream.on('error', reject);
    });
  });
  const dl = (performance.now() - t) / 1000;
  if (got !== size) throw new Error(`got ${got}`);
  socket.close();
  return [upload, dl];
}"""


def line(what: str, size: int, up: float, down: float, base: tuple[float, float] | None) -> str:
    mb = size / 1e6
    text = f"{what:<34} upload {mb / up:7.1f} MB/s  download {mb / down:7.1f} MB/s"
    if base is not None:
        text += f"  ({base[0] / up:.2f}x / {base[1] / down:.2f}x the Python client)"
    return text


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=parse_size, default=64 * 1024 * 1024)
    parser.add_argument("--window", type=int, default=8, help="our client's read window (chunks)")
    parser.add_argument("--skip-original", action="store_true", help="no socket.io-stream bundle run")
    args = parser.parse_args()
    size: int = args.size
    with tempfile.TemporaryDirectory(prefix="sio-stream-bench-") as tmp:
        command = [sys.executable, "-m", "sio_stream", "serve", tmp, "--port", "0", "--quiet"]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 (setup)
        try:
            assert server.stdout is not None
            match = re.search(r"http://[^\s;]+", server.stdout.readline())
            assert match is not None
            url = match.group(0)
            local = Path(tmp, "..", f"sio-stream-bench-{time.time_ns()}.bin").resolve()  # noqa: ASYNC240
            local.write_bytes(__import__("os").urandom(size))
            try:
                async with connect(url, None) as streams:
                    up = await upload(streams, local, "bench-py.bin", show_progress=False)
                    down = await download(streams, "bench-py.bin", local, show_progress=False)
            finally:
                local.unlink(missing_ok=True)
            base = (up.seconds, down.seconds)
            print(line("python client (sio_stream)", size, *base, None), flush=True)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM)
                page = await browser.new_page()
                await page.goto(url + "/favicon.svg")
                ours = await page.evaluate(OURS, [size, args.window])
                print(line("chromium, sio-stream.js (ours)", size, *ours, base), flush=True)
                if args.skip_original:
                    return
                page = await browser.new_page()
                await page.route(
                    url + "/bench/page.html",
                    lambda r: r.fulfill(body=ORIGINAL_PAGE, content_type="text/html"),
                )
                await page.route(url + "/bench/socket.io.min.js", lambda r: r.fulfill(path=IO_UMD))
                await page.route(url + "/bench/socket.io-stream.js", lambda r: r.fulfill(path=SS_BUNDLE))
                await page.goto(url + "/bench/page.html")
                original = await page.evaluate(ORIGINAL, size)
                print(line("chromium, socket.io-stream 0.9.1", size, *original, base), flush=True)
                print(
                    f"ours vs socket.io-stream bundle: upload {original[0] / ours[0]:.1f}x, "
                    f"download {original[1] / ours[1]:.1f}x"
                )
                await browser.close()
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    asyncio.run(main())
