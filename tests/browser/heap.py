"""The JavaScript heap of a page and of its service worker, sampled over the DevTools protocol
while a transfer runs (shared by tests/browser/ and ``benchmarks/browser.py --heap``).

``performance.memory`` is quantized in headless Chromium (and absent in service workers), so the
figures come from CDP's ``Runtime.getHeapUsage`` in each target: ``usedSize`` is the V8 heap in
use (garbage not yet collected included: a peak is what the page really needed at that moment),
``backingStorageSize`` the ArrayBuffer bytes held outside it (the chunks in flight, and chunks
already dropped that V8 frees only at its next garbage collection: V8 starts one when such
external memory grew by about 64 MB, so this figure saws up to there whatever the transfer's
size). With ``live_every``, some samples of a target are taken right after a forced collection
(``HeapProfiler.collectGarbage``): what the target really keeps, where growth with the size of a
transfer would show.

Playwright opens CDP sessions on pages only; a service worker is reached through the browser's
session (``Target.attachToTarget`` without ``flatten``: messages go through
``Target.sendMessageToTarget``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


@dataclass
class HeapPeak:
    """The largest figures one target showed, and how many samples they come from."""

    target: str
    used: int = 0
    backing: int = 0
    samples: int = 0
    #: The largest heap and ArrayBuffer figures right after a forced garbage collection.
    live_used: int = 0
    live_backing: int = 0
    live_samples: int = 0
    #: (seconds since sampling began, used, backing) for each sample, to see growth.
    series: list[tuple[float, int, int]] = field(default_factory=list)

    def add(self, at: float, usage: dict[str, Any], live: bool = False) -> None:
        used, backing = int(usage["usedSize"]), int(usage.get("backingStorageSize", 0))
        if live:
            self.live_samples += 1
            self.live_used = max(self.live_used, used)
            self.live_backing = max(self.live_backing, backing)
        self.used = max(self.used, used)
        self.backing = max(self.backing, backing)
        self.samples += 1
        self.series.append((at, used, backing))

    def describe(self) -> str:
        text = (
            f"{self.target}: peak JS heap {self.used / MIB:.1f} MiB, "
            f"ArrayBuffers {self.backing / MIB:.1f} MiB ({self.samples} samples)"
        )
        if self.live_used:
            text += (
                f"; kept after a GC at most {self.live_used / MIB:.1f} + {self.live_backing / MIB:.1f} MiB"
            )
        return text


class _WorkerSession:
    """CDP commands to a target reached through the browser session (non-flattened)."""

    def __init__(self, browser_session: Any, session_id: str) -> None:
        self._browser = browser_session
        self._id = session_id
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        browser_session.on("Target.receivedMessageFromTarget", self._received)

    def _received(self, event: dict[str, Any]) -> None:
        if event.get("sessionId") != self._id:
            return
        message = json.loads(event["message"])
        waiter = self._waiting.pop(message.get("id", -1), None)
        if waiter is not None and not waiter.done():
            if "error" in message:
                waiter.set_exception(RuntimeError(str(message["error"])))
            else:
                waiter.set_result(message.get("result", {}))

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next += 1
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = waiter
        message = json.dumps({"id": self._next, "method": method, "params": params or {}})
        await self._browser.send("Target.sendMessageToTarget", {"sessionId": self._id, "message": message})
        return await waiter


async def service_worker_session(browser: Any, origin: str) -> _WorkerSession:
    """A CDP session in the service worker whose script is served by ``origin``."""
    session = await browser.new_browser_cdp_session()
    targets = (await session.send("Target.getTargets"))["targetInfos"]
    workers = [t for t in targets if t["type"] == "service_worker" and t["url"].startswith(origin + "/")]
    if len(workers) != 1:
        raise RuntimeError(f"expected one service worker of {origin}, found {workers}")
    attached = await session.send(
        "Target.attachToTarget", {"targetId": workers[0]["targetId"], "flatten": False}
    )
    return _WorkerSession(session, attached["sessionId"])


class HeapSampler:
    """``async with HeapSampler({"page": session, ...}) as peaks:`` samples every target every
    ``interval`` seconds until the block ends (and once more at its end); ``peaks[name]`` holds
    each target's :class:`HeapPeak`. With ``live_every`` S, a sample every S seconds, and the last
    one, follow a forced garbage collection (0: none, the peaks are then what the page meets
    unaided)."""

    def __init__(self, sessions: dict[str, Any], interval: float = 0.05, live_every: float = 0) -> None:
        self.sessions = sessions
        self.interval = interval
        self.live_every = live_every
        self.peaks = {name: HeapPeak(name) for name in sessions}
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0

    async def sample(self, live: bool = False) -> None:
        for name, session in self.sessions.items():
            if live:
                await session.send("HeapProfiler.collectGarbage")
            usage = await session.send("Runtime.getHeapUsage")
            self.peaks[name].add(time.monotonic() - self._started, usage, live)

    async def _run(self) -> None:
        last_live = time.monotonic()
        while True:
            live = bool(self.live_every) and time.monotonic() - last_live >= self.live_every
            await self.sample(live)
            if live:
                last_live = time.monotonic()
            await asyncio.sleep(self.interval)  # the sampling period, not a synchronisation

    async def __aenter__(self) -> dict[str, HeapPeak]:
        self._started = time.monotonic()
        await self.sample()
        self._task = asyncio.create_task(self._run())
        return self.peaks

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.sample(live=bool(self.live_every))


def sha256_file(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


@dataclass
class PageDownload:
    """One download through the page: what the browser saved, and the heap while it ran."""

    size: int
    sha256: str
    seconds: float
    state: str
    errors: list[str]
    peaks: dict[str, HeapPeak]


async def download_through_page(
    browser: Any, url: str, name: str, *, live_every: float = 0, timeout_ms: int = 600_000
) -> PageDownload:
    """Open the server's page, press the Download button of ``name`` and wait for the browser's
    download (the page's service worker streams it into the download manager), sampling the heap
    of the page and of the service worker all along. ``seconds`` runs from the click to the end of
    the saved file; the file is hashed before the browser context (and the file) goes away."""
    context = await browser.new_context(accept_downloads=True)
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(url + "/?transport=websocket&download=sw")
        await page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=timeout_ms)
        await page.wait_for_selector(f"tr[data-name='{name}'] button", timeout=timeout_ms)
        sessions = {
            "page": await context.new_cdp_session(page),
            "service worker": await service_worker_session(browser, url),
        }
        row = f"li.transfer[data-name='{name}']"
        async with HeapSampler(sessions, live_every=live_every) as peaks:
            started = time.monotonic()
            async with page.expect_download(timeout=timeout_ms) as event:
                await page.click(f"tr[data-name='{name}'] button")
            saved = Path(await (await event.value).path())
            seconds = time.monotonic() - started
            await page.wait_for_selector(f"{row}:not([data-state='running'])", timeout=timeout_ms)
        state = str(await page.get_attribute(row, "data-state"))
        digest = await asyncio.to_thread(sha256_file, saved)
        size = (await asyncio.to_thread(saved.stat)).st_size
        return PageDownload(size, digest, seconds, state, errors, peaks)
    finally:
        await context.close()
