"""Issue 24 in a real Chromium: our JavaScript client uploads and downloads through servers set
up as the README and the guides teach, and the websocket Chromium opened carries no
``permessage-deflate`` (``WebSocket.extensions``, what the browser itself negotiated)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sio_stream.cli import _web
from sio_stream.cli._server import FileServer
from tests.browser.test_page import make_file, sha256_of
from tests.sync_support import sync_peer

pytestmark = pytest.mark.anyio
TIMEOUT_MS = 120_000

# Upload a File with sendBlob and download it back, in memory, through our client.
ROUND_TRIP = """async ([name]) => {
  const { io } = await import('/socket.io.esm.min.js');
  const { StreamSocket, createStream, sendBlob } = await import('/sio-stream.js');
  const file = document.getElementById('file').files[0];
  const socket = io(location.origin, { transports: ['websocket'] });
  const streams = new StreamSocket(socket);
  await new Promise((resolve) => socket.once('connect', resolve));
  const extensions = socket.io.engine.transport.ws.extensions;
  const up = createStream();
  const reply = streams.call('put', up, { path: name, size: file.size });
  await sendBlob(up, file);
  const [answer] = await reply;
  const [down] = await streams.call('get', name);
  const parts = [];
  const reader = down.readable.getReader();
  for (;;) { const { done, value } = await reader.read(); if (done) break; parts.push(value); }
  const whole = new Uint8Array(await new Blob(parts).arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', whole));
  socket.close();
  const sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  return { extensions, answer, size: whole.byteLength, sha256 };
}"""


@pytest.fixture
def readme_file_server(tmp_path: Path) -> Callable[[], AbstractAsyncContextManager[tuple[FileServer, str]]]:
    """The file server's handlers on an aiohttp server set up as the README teaches
    (``sio.attach(app)``: python-engineio's own routes), with the page's assets beside."""
    root = tmp_path / "served"
    root.mkdir(exist_ok=True)

    @asynccontextmanager
    async def start() -> AsyncIterator[tuple[FileServer, str]]:
        server = FileServer(root)
        app = web.Application()
        server.sio.attach(app)
        _web.add_page(app, {"token": False, "maxUpload": None})
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with server.serving():
                yield server, f"http://127.0.0.1:{port}"
        finally:
            await server.sio.shutdown()
            await runner.cleanup()

    return start


async def round_trip(browser: Any, start: Any, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    digest = make_file(local, 3 * 1024 * 1024 + 17)
    async with start() as (server, url):
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # The server's own document (an address Chromium can place), without the page's script.
        await page.route(url + "/app.js", lambda r: r.fulfill(body="", content_type="text/javascript"))
        await page.goto(url + "/")
        await page.evaluate(
            "() => { const i = document.createElement('input'); i.type = 'file'; i.id = 'file';"
            " document.body.append(i); }"
        )
        await page.set_input_files("#file", str(local))
        result = await page.evaluate(ROUND_TRIP, ["up.bin"])
        assert result["extensions"] == ""
        assert result["answer"] == {"size": local.stat().st_size, "sha256": digest}
        assert sha256_of(server.root / "up.bin") == digest
        assert (result["size"], result["sha256"]) == (local.stat().st_size, digest)
        assert errors == []


async def test_aiohttp_as_the_readme_teaches(browser: Any, readme_file_server: Any, tmp_path: Path) -> None:
    await round_trip(browser, readme_file_server, tmp_path)


async def test_uvicorn_as_the_asgi_guide_teaches(browser: Any, asgi_file_server: Any, tmp_path: Path) -> None:
    await round_trip(browser, asgi_file_server, tmp_path)


# A raw WebSocket to engine.io's endpoint: what Chromium and the server agreed on.
EXTENSIONS = """async () => {
  const ws = new WebSocket(location.origin.replace('http', 'ws') + '/socket.io/?EIO=4&transport=websocket');
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const extensions = ws.extensions;
  ws.close();
  return extensions;
}"""


@pytest.mark.parametrize("mode", ["threading", "eventlet", "gevent"])
@pytest.mark.parametrize("websocket_compression", [False, True], ids=["default", "kept"])
async def test_flask_socketio_servers(browser: Any, mode: str, websocket_compression: bool) -> None:
    # Each of these servers negotiates permessage-deflate with Chromium on its own ("kept"); a
    # gevent server keeps it on purpose (sio_stream.glue._compression.FIXABLE_MODES says why).
    flags = ["--websocket-compression"] if websocket_compression else []
    with sync_peer("--mode", mode, "--host", "flask", *flags) as peer:
        page = await browser.new_page()
        await page.goto(peer.url + "/")
        extensions = await page.evaluate(EXTENSIONS)
    if websocket_compression or mode == "gevent":
        assert extensions.startswith("permessage-deflate")
    else:
        assert extensions == ""
