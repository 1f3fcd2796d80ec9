"""The web page in Chromium keeps its transfers through a network outage of a few seconds, made
two ways: ``benchmarks/link.py``'s relay (between the page and the file server) cuts the
connection mid-transfer and then refuses every new one for 3 s, or Playwright's offline
emulation takes the browser's network away for 3 s (Chromium then closes the WebSocket). The
session resumes on socket.io-client's reconnection: the upload and the download arrive intact
and the page shows no error."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.link import Link
from tests.browser.test_page import make_file, note_of, open_page, sha256_of, transfer_state
from tests.support import wait_for

MiB = 1024 * 1024
TIMEOUT_MS = 120_000
OUTAGE = 3.0  # seconds without any network: the page's reconnection attempts fail meanwhile
#: Where the test leaves its screenshot of the page after a resumed transfer (to look at).
SCREENSHOT_DIR = os.environ.get("SIO_STREAM_SCREENSHOTS")


class OutageLink(Link):
    """A link that, during an outage, aborts every connection as soon as it is accepted."""

    down_until = 0.0

    def outage(self, seconds: float) -> None:
        """Cut every connection now and refuse new ones for ``seconds``."""
        self.down_until = asyncio.get_running_loop().time() + seconds
        self.cut()

    async def _connect(self, client: Any) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self.down_until:
            # This runs before the accepted socket's connection_made (queued behind it): abort
            # it from there, where its transport exists and before it reads anything.
            loop.call_soon(client.abort)
            return
        await super()._connect(client)


def hidden_upload_size(root: Path) -> int:
    """Bytes in the server's hidden temporary file of an upload in progress (0: none)."""
    hidden = [p for p in root.iterdir() if p.name.startswith(".") and p.name.endswith(".part")]
    return sum(p.stat().st_size for p in hidden)


async def outage(page: Any, link: OutageLink, how: str) -> None:
    """Take the network away for OUTAGE seconds, from now (returns at once for the relay)."""
    if how == "relay":
        link.outage(OUTAGE)
        return
    await page.context.set_offline(True)
    await page.wait_for_selector("#status[data-state='offline']", timeout=TIMEOUT_MS)

    async def back() -> None:
        await asyncio.sleep(OUTAGE)  # the length of the outage: the scenario, not a synchronisation
        await page.context.set_offline(False)

    task = asyncio.ensure_future(back())
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Task[None]] = set()


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["relay", "offline"])
async def test_an_upload_and_a_download_survive_a_few_seconds_without_network(
    browser: Any, file_server: Any, tmp_path: Path, how: str
) -> None:
    size = 24 * MiB
    local = tmp_path / "local"
    local.mkdir()
    digest = make_file(local / "up.bin", size)
    # 8 MB/s: each transfer takes about 3 s, long enough to be cut in the middle.
    async with (
        file_server() as (server, url),
        OutageLink(int(url.rsplit(":", 1)[1]), rate=8e6, rtt=0.01) as link,
    ):
        page = await open_page(browser, link.url)
        await page.wait_for_selector("#app:not([hidden])", timeout=TIMEOUT_MS)

        # The upload: cut once the server stored a quarter of it.
        await page.set_input_files("#picker", [str(local / "up.bin")])
        await wait_for(lambda: hidden_upload_size(server.root) >= size // 4, 60)
        await outage(page, link, how)
        await page.wait_for_selector("#status[data-state='offline']", timeout=TIMEOUT_MS)
        assert await transfer_state(page, "up.bin") == "done", await note_of(page, "up.bin")
        # The server's reply, pending at the cut, came after the resume (it carries the digest).
        assert f"Uploaded · sha256 {digest[:16]}" in await note_of(page, "up.bin")
        assert sha256_of(server.root / "up.bin") == digest
        assert server.streams.statistics().resumes == 1

        # The download (through the page's service worker): cut once a quarter went through.
        shutil.copy(local / "up.bin", server.root / "down.bin")
        await page.click("#refresh")
        await page.wait_for_selector("tr[data-name='down.bin']", timeout=TIMEOUT_MS)
        worker = "() => navigator.serviceWorker.controller !== null"
        await page.wait_for_function(worker, timeout=TIMEOUT_MS)
        before = link.statistics().down.delivered
        async with page.expect_download(timeout=TIMEOUT_MS) as event:
            await page.click("tr[data-name='down.bin'] button")
            await wait_for(lambda: link.statistics().down.delivered - before >= size // 4, 60)
            await outage(page, link, how)
        download = await event.value
        saved = tmp_path / "downloaded.bin"
        await download.save_as(saved)
        assert sha256_of(saved) == digest
        assert await transfer_state(page, "down.bin") == "done", await note_of(page, "down.bin")
        assert server.streams.statistics().resumes == 2
        await page.wait_for_selector("#status[data-state='online']", timeout=TIMEOUT_MS)
        if how == "relay":
            assert link.cuts >= 2
        if SCREENSHOT_DIR:
            shot = Path(SCREENSHOT_DIR) / f"page-after-resume-{how}.png"
            await page.screenshot(path=str(shot), full_page=True)
        # No error anywhere on the page: no failed row, no message, no script error.
        assert await page.locator("li.transfer[data-state='failed']").count() == 0
        assert not await page.is_visible("#message")
        assert page.errors == []
        await page.close()
