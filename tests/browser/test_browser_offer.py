"""Our JavaScript client in Chromium offers initial credit (negotiated ``initial-credit``): the
first download the Python server sends takes it, so its chunks follow the event with the whole
offered window open, and it arrives intact. The assertions are on the credit taken (both ends'
stream state) and the bytes, never on time."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sio_stream import IOStream, create_stream, start_writer

pytestmark = pytest.mark.anyio

CHUNK = 256 * 1024
SIZE = 80 * CHUNK  # beyond the 16 MiB offer (64 chunks): credit goes back as it is read

DOWNLOAD = """async ([size]) => {
  const { io } = await import('/socket.io.esm.min.js');
  const { StreamSocket } = await import('/sio-stream.js');
  const socket = io(location.origin, { transports: ['websocket'] });
  const streams = new StreamSocket(socket, { initialCredit: 16 * 1024 * 1024 });
  await new Promise((r) => socket.once('connect', r));
  await streams.negotiated();
  const [down] = await streams.call('offer-download', size);
  const window = down.readWindow;
  const hash = await crypto.subtle.digest('SHA-256', await new Response(down.readable).arrayBuffer());
  const sha256 = [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, '0')).join('');
  socket.close();
  return { sha256, window, primed: down.primed, offersTaken: streams.statistics().offersTaken };
}"""


def payload() -> bytes:
    return bytes(range(256)) * (SIZE // 256)


async def test_a_download_in_chromium_takes_the_offer(browser: Any, file_server: Any) -> None:
    sent: list[IOStream] = []
    async with file_server() as (server, url):

        async def produce(stream: IOStream) -> None:
            data = payload()
            for at in range(0, SIZE, CHUNK):
                await stream.write(data[at : at + CHUNK])
            await stream.end()

        async def offer_download(sid: str, size: int) -> IOStream:
            stream = create_stream()
            sent.append(stream)
            start_writer(produce(stream))
            return stream

        server.streams.on("offer-download", offer_download)
        page = await browser.new_page()
        empty = {"body": "", "content_type": "text/javascript"}  # the page's own script: none
        await page.route(url + "/app.js", lambda r: r.fulfill(**empty))
        await page.goto(url + "/")
        result = await page.evaluate(DOWNLOAD, [SIZE])
        await page.close()
    assert result["sha256"] == hashlib.sha256(payload()).hexdigest(), result
    (stream,) = sent
    assert stream._core.initial_credit == 64
    assert (result["primed"], result["window"], result["offersTaken"]) == (64, 64, 1), result
