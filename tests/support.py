"""Helpers shared by the tests: a real aiohttp server on 127.0.0.1 and polling waits."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import socketio
from aiohttp import web


async def start_server(server: socketio.AsyncServer, *, host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    app = web.Application()
    server.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{host}:{port}"


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait until ``predicate()`` is true, polling the event loop (never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)


@contextlib.contextmanager
def unretrieved_exceptions() -> Iterator[list[dict[str, Any]]]:
    """Collect what asyncio reports as "Task exception was never retrieved" (or "Future ...")
    while inside, and at a ``gc.collect()`` on the way out (a task reports when it is freed)."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    reports: list[dict[str, Any]] = []

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "never retrieved" in str(context.get("message")):
            reports.append(context)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        yield reports
        gc.collect()
    finally:
        loop.set_exception_handler(previous)


@pytest.fixture(autouse=True)
async def tasks_end_while_the_loop_runs() -> Any:
    """After each test, cancel what is left (the clients of a killed node, python-socketio's
    and python-engineio's background tasks) and let it end while the loop still runs: left to
    the loop's shutdown, which cancels everything at once, one of them hung it about one run in
    four after the node-death test (Python 3.11); cancelled here, each ended (10 runs of 10).
    A module imports it to have it (autouse): tests/test_cluster_rooms.py, and the matrix, whose
    two-node case of a member that leaves hung a CI run the same way."""
    yield
    me = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not me and "runner" not in repr(task.get_coro())]
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=10)
