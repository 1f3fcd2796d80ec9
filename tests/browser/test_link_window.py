"""Our JavaScript client in Chromium grows its read window on a delayed link (``benchmarks/link.py``,
300 ms round trip, no rate limit): a download's window starts at the configured 8 chunks and,
since each window drains in far less than two round trips, grows, so that more than the first
window's chunks are in flight at once. With the 8 chunks alone, 2 MiB per round trip would be
the limit (docs/benchmarks.md). The assertions are on the window the page's reader reached and
on the credit it had outstanding, sampled at every chunk, never on time."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.link import Link
from sio_stream import IOStream, create_stream, start_writer

pytestmark = pytest.mark.anyio

CHUNK = 256 * 1024
#: 96 chunks: the first window, then at least one grown window, with a grown one still in flight.
SIZE = 96 * CHUNK
#: Long enough that a burst of chunks through a busy Chromium drains well within two round trips.
RTT = 0.3

DOWNLOAD = """async ([size]) => {
  const { io } = await import('/socket.io.esm.min.js');
  const { StreamSocket, DEFAULT_WINDOW } = await import('/sio-stream.js');
  const socket = io(location.origin, { transports: ['websocket'] });
  // No initial credit: a primed download would start at its full window, with nothing to grow.
  const streams = new StreamSocket(socket, { initialCredit: 0 });
  await new Promise((r) => socket.once('connect', r));
  const features = [...(await streams.negotiated())];
  const [down] = await streams.call('link-download', size);
  const reader = down.readable.getReader();
  let got = 0, window = 0, inFlight = 0;
  for (;;) {
    // Before each read: the credit out (chunks granted, not arrived) and the window.
    inFlight = Math.max(inFlight, down.outstanding);
    window = Math.max(window, down.readWindow);
    const { done, value } = await reader.read();
    if (done) break;
    got += value.byteLength;
  }
  socket.close();
  return { got, window, inFlight, initial: DEFAULT_WINDOW, features };
}"""


async def test_the_read_window_grows_on_a_delayed_link(browser: Any, file_server: Any) -> None:
    async with file_server() as (server, url):

        async def produce(stream: IOStream, size: int) -> None:
            block = bytes(CHUNK)
            for _ in range(size // CHUNK):
                await stream.write(block)
            await stream.end()

        async def link_download(sid: str, size: int) -> IOStream:
            stream = create_stream()
            start_writer(produce(stream, size))
            return stream

        server.streams.on("link-download", link_download)
        async with Link(int(url.rsplit(":", 1)[1]), rtt=RTT) as link:
            page = await browser.new_page()
            empty = {"body": "", "content_type": "text/javascript"}  # the page's own script: none
            await page.route(link.url + "/app.js", lambda r: r.fulfill(**empty))
            await page.goto(link.url + "/")
            result = await page.evaluate(DOWNLOAD, [SIZE])
            await page.close()
    assert "window-growth" in result["features"] and "batch-read" in result["features"], result
    assert result["got"] == SIZE, result
    assert result["initial"] == 8, result
    # The window grew past the configured one, and the credit out did too: more than one
    # configured window of chunks was in flight across the link at once.
    assert result["window"] > result["initial"], result
    assert result["inFlight"] > result["initial"], result
