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

from sio_stream.cli._server import FileServer
from tests.support import wait_for

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


@pytest.fixture
def asgi_file_server(tmp_path: Path) -> Callable[..., AbstractAsyncContextManager[tuple[FileServer, str]]]:
    """As ``file_server``, with the server in ASGI mode under uvicorn (no permessage-deflate)."""
    root = tmp_path / "served"
    root.mkdir(exist_ok=True)

    @asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[tuple[FileServer, str]]:
        import anyio
        import uvicorn

        server = FileServer(root, async_mode="asgi", **options)
        config = uvicorn.Config(
            server.asgi_app(),
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="warning",
            ws_per_message_deflate=False,
        )
        host = uvicorn.Server(config)
        async with server.serving(), anyio.create_task_group() as group:
            group.start_soon(host.serve)
            await wait_for(lambda: host.started, timeout=30)
            port = host.servers[0].sockets[0].getsockname()[1]
            try:
                yield server, f"http://127.0.0.1:{port}"
            finally:
                host.should_exit = True

    return start
