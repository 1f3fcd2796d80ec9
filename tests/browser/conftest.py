"""Fixtures of the browser tests: Debian's chromium driven by Playwright, and the file server
(``sio-stream serve``'s FileServer) in the test's event loop.

Chromium is required, never skipped: install it with ``apt-get install -y chromium``
(``.ci/run`` does). No browser is downloaded (``executable_path`` is the system one).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sio_stream._cli import FileServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        pytest.fail(
            "chromium not found: the browser tests need Debian's chromium (apt-get install -y chromium)",
            pytrace=False,
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def file_server(tmp_path: Path) -> Callable[..., AbstractAsyncContextManager[tuple[FileServer, str]]]:
    """``async with file_server(token=..., max_upload=...) as (server, url)``: serves tmp_path/served."""
    root = tmp_path / "served"
    root.mkdir()

    @asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[tuple[FileServer, str]]:
        server = FileServer(root, **options)
        async with server.running("127.0.0.1", 0) as url:
            yield server, url

    return start
