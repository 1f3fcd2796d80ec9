"""Upload progress in Chromium is what the server's handler consumed (negotiated ``consumed``),
not the credit its reader granted: a window's credit used to count as accepted bytes, so the
page's progress ran up to a window (8 chunks) ahead of a slow server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sio_stream import IOStream
from sio_stream.core._config import DEFAULT_INITIAL_CREDIT
from tests.support import wait_for

CHUNK = 64 * 1024
SIZE = 80 * CHUNK  # beyond the 2 MiB the page takes of the offer (32 credits of its chunk)

UPLOAD = """async ([size, chunk]) => {
  const { io } = await import('/socket.io.esm.min.js');
  const { StreamSocket, createStream, sendBlob } = await import('/sio-stream.js');
  const socket = io(location.origin, { transports: ['websocket'] });
  const streams = new StreamSocket(socket, { maxChunk: chunk });
  await new Promise((r) => socket.once('connect', r));
  await streams.negotiated();
  const up = createStream();
  const reply = streams.call('slow-put', up);
  const values = [];
  const onProgress = (bytes) => {
    values.push(bytes);
    socket.emit('progress', bytes); // in order behind the stream's own events
  };
  await sendBlob(up, new Blob([new Uint8Array(size)]), { onProgress });
  const [stored] = await reply;
  return [stored, values];
}"""


@pytest.mark.anyio
async def test_upload_progress_never_runs_ahead_of_what_the_server_consumed(
    browser: Any, file_server: Any, tmp_path: Path
) -> None:
    consumed = 0
    seen: list[tuple[int, int]] = []  # (the page's progress, what the handler had consumed then)
    async with file_server() as (server, url):

        async def slow_put(sid: str, stream: IOStream) -> int:
            nonlocal consumed
            async for chunk in stream:  # whole chunks, as they arrived
                consumed += len(chunk)
                # A slow consumer: the behaviour under test, not a synchronisation.
                await asyncio.sleep(0.01)
            return consumed

        async def progress(sid: str, value: int) -> None:
            # The page reports a value only after the read that carried it, which the server
            # sent after its handler took those chunks: what it consumed by now is at least that.
            seen.append((value, consumed))

        # The server offers initial credit (negotiated initial-credit; the file server takes no
        # option for it yet) and the page takes it, so all 3 MiB may follow the event at once:
        # reports still come often enough to judge by, since a reader reports what it consumed
        # at least every eighth of its window (core/_progress.py).
        server.streams._config.initial_credit = DEFAULT_INITIAL_CREDIT
        server.streams.on("slow-put", slow_put)
        server.sio.on("progress", progress)
        page = await browser.new_page()
        await page.route(url + "/app.js", lambda r: r.fulfill(body="", content_type="text/javascript"))
        await page.goto(url + "/")
        stored, values = await page.evaluate(UPLOAD, [SIZE, CHUNK])
        await wait_for(lambda: len(seen) == len(values))
        await page.close()
    assert stored == SIZE
    assert values == sorted(values) and values[-1] == SIZE
    # The last value is the end's ack: the server received everything (its handler may still be
    # reading its window). Every value before it is bounded by what the handler consumed.
    during = [(value, server_consumed) for value, server_consumed in seen if value < SIZE]
    assert len(during) >= 10, f"too few progress reports to tell: {seen}"
    ahead = [(value, server_consumed) for value, server_consumed in during if value > server_consumed + CHUNK]
    assert not ahead, f"progress ran ahead of the server's handler (progress, consumed): {ahead}"
