"""The Node.js side of the interop tests: finding node/npm, installing the pinned packages,
running ``node/server.js`` and ``node/client.js`` as asyncio subprocesses, and reading their
``--trace`` output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"

#: The JavaScript stream packages every test runs against (pinned in node/package.json).
JS_PACKAGES = ("socket.io-stream", "@sap_oss/node-socketio-stream")
JS_PACKAGE_IDS = ("socket.io-stream", "sap")

#: Every scenario of node/client.js, in its order (test_node_client checks the list is complete).
SCENARIOS = (
    "file",
    "flowing",
    "paused",
    "binary",
    "object",
    "echo-list",
    "echo-dict",
    "sendback",
    "multi",
    "ack",
    "ack-list",
    "ack-dict",
    "client-error",
    "server-error",
    "big-up",
    "big-down",
    "many",
    "base64",
    "reverse",
    "drop",
)

#: Generous: two busy cores, 8 MiB transfers through stop-and-wait JavaScript streams.
TIMEOUT = 60.0
NPM_CI_TIMEOUT = 600.0


@dataclass(frozen=True)
class NodeTools:
    node: str
    npm: str


def ensure_node() -> NodeTools:
    """Find node and npm, and run ``npm ci`` in node/ when its node_modules is missing.

    Fails the calling test (never skips it) with a message saying what to install.
    """
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        pytest.fail(
            f"{missing} not found on PATH: the interop tests run the real JavaScript socket.io-stream "
            f"packages and need Node.js >= 18 with npm (then `make node` or `cd {NODE_DIR} && npm ci`)",
            pytrace=False,
        )
    npm_ci(npm, NODE_DIR)
    return NodeTools(node=node, npm=npm)


def npm_ci(npm: str, directory: Path) -> None:
    """Run ``npm ci`` in ``directory`` unless its node_modules is complete; fail the test if it fails."""
    # npm ci writes node_modules/.package-lock.json last: its absence means no (complete) install.
    if (directory / "node_modules" / ".package-lock.json").exists():
        return
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`npm ci` in {directory} did not finish within {NPM_CI_TIMEOUT:.0f} s", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"`npm ci` in {directory} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}",
            pytrace=False,
        )


def _flags(pkg: str, base64: bool, trace: bool) -> list[str]:
    return ["--pkg", pkg, *(["--base64"] if base64 else []), *(["--trace"] if trace else [])]


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


@dataclass
class ClientRun:
    """The outcome of one ``node client.js`` run."""

    scenario: str
    returncode: int
    result: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.result.get("ok") is True

    def describe(self) -> str:
        return (
            f"node client.js {self.scenario} exited {self.returncode}\n"
            f"stdout: {self.stdout.strip()}\nstderr: {self.stderr.strip()[-4000:]}"
        )


async def run_client(
    tools: NodeTools,
    url: str,
    scenario: str,
    pkg: str,
    *,
    base64: bool = False,
    trace: bool = False,
    before_exit: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    started: Callable[[asyncio.subprocess.Process], None] | None = None,
) -> ClientRun:
    """Run ``node client.js <url> <scenario>`` to completion and parse its JSON result line.

    With ``before_exit`` the client runs with ``--linger``: once the scenario passed it stays
    connected, ``before_exit(result)`` runs, and only then is the client told to disconnect.
    ``started(process)`` is called once the process exists (a test may kill it).
    """
    env = dict(os.environ, CLIENT_TIMEOUT_MS=str(int(TIMEOUT * 1000)))
    proc = await asyncio.create_subprocess_exec(
        tools.node,
        str(NODE_DIR / "client.js"),
        url,
        scenario,
        *_flags(pkg, base64, trace),
        *(["--linger"] if before_exit is not None else []),
        cwd=NODE_DIR,
        env=env,
        stdin=asyncio.subprocess.PIPE if before_exit is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    if started is not None:
        started(proc)
    out_lines: list[str] = []
    err_chunks: list[str] = []
    first_line = asyncio.Event()
    readers = [
        asyncio.ensure_future(_read_lines(proc.stdout, out_lines, first_line)),
        asyncio.ensure_future(_read_chunks(proc.stderr, err_chunks)),
    ]

    def run_result() -> ClientRun:
        lines = [line for line in out_lines if line.startswith("{")]
        try:
            result = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            result = {}
        code = proc.returncode if proc.returncode is not None else -1
        return ClientRun(scenario, code, result, "\n".join(out_lines), "".join(err_chunks))

    try:
        if before_exit is not None:
            assert proc.stdin is not None
            try:
                await asyncio.wait_for(_first_result(proc, out_lines, first_line), TIMEOUT + 30)
                lingering = run_result().result
                if lingering.get("lingering") is True:
                    await before_exit(lingering)
            finally:
                proc.stdin.close()
        await asyncio.wait_for(asyncio.gather(proc.wait(), *readers), TIMEOUT + 30)
    except TimeoutError:
        raise AssertionError(
            f"node client.js {scenario} did not finish within {TIMEOUT + 30:.0f} s\n{run_result().describe()}"
        ) from None
    finally:
        await _kill(proc)
        for task in readers:
            task.cancel()
    return run_result()


async def _first_result(proc: asyncio.subprocess.Process, lines: list[str], arrived: asyncio.Event) -> None:
    """Wait until the client printed a JSON line or exited."""
    while not any(line.startswith("{") for line in lines) and proc.returncode is None:
        arrived.clear()
        waiter = asyncio.ensure_future(arrived.wait())
        exited = asyncio.ensure_future(proc.wait())
        await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        exited.cancel()


@dataclass
class NodeServer:
    """A running ``node server.js``: its URL, and its stdout/stderr as they arrive."""

    proc: asyncio.subprocess.Process
    url: str
    stdout_lines: list[str] = field(default_factory=list)
    stderr_chunks: list[str] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)
    _line_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_chunks)

    async def wait_line(self, prefix: str, timeout: float = TIMEOUT) -> str:
        """The first stdout line starting with ``prefix`` (waiting for it up to ``timeout`` s)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for line in self.stdout_lines:
                if line.startswith(prefix):
                    return line
            if self.proc.returncode is not None and all(task.done() for task in self._readers):
                raise AssertionError(f"server.js exited ({self.proc.returncode}) before printing {prefix!r}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"server.js printed no {prefix!r} line within {timeout:.0f} s")
            self._line_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._line_arrived.wait(), remaining)

    async def stop(self) -> None:
        """Close stdin (server.js exits at EOF), wait for it, and collect its output."""
        proc = self.proc
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            await _kill(proc)
        for task in self._readers:
            try:
                await asyncio.wait_for(task, 10)
            except TimeoutError:
                task.cancel()

    def check_no_uncaught(self) -> None:
        assert "UNCAUGHT" not in self.stderr, (
            f"server.js logged an uncaught exception:\n{self.stderr[-6000:]}"
        )


async def _read_lines(stream: asyncio.StreamReader, sink: list[str], arrived: asyncio.Event) -> None:
    while line := await stream.readline():
        sink.append(line.decode(errors="replace").rstrip("\n"))
        arrived.set()


async def _read_chunks(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while chunk := await stream.read(65536):
        sink.append(chunk.decode(errors="replace"))


async def start_server(
    tools: NodeTools, pkg: str, *, base64: bool = False, trace: bool = False
) -> NodeServer:
    """Start ``node server.js`` on 127.0.0.1 (any free port) and wait for ``LISTENING <port>``."""
    proc = await asyncio.create_subprocess_exec(
        tools.node,
        str(NODE_DIR / "server.js"),
        "--port",
        "0",
        *_flags(pkg, base64, trace),
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    server = NodeServer(proc=proc, url="")
    server._readers = [
        asyncio.ensure_future(_read_lines(proc.stdout, server.stdout_lines, server._line_arrived)),
        asyncio.ensure_future(_read_chunks(proc.stderr, server.stderr_chunks)),
    ]
    try:
        line = await server.wait_line("LISTENING ")
    except BaseException:
        await server.stop()
        raise
    match = re.fullmatch(r"LISTENING (\d+)", line.strip())
    assert match, f"unexpected first line from server.js: {line!r}"
    server.url = f"http://127.0.0.1:{match.group(1)}"
    return server


async def wait_until(predicate: Callable[[], bool], describe: Callable[[], str] | None = None) -> None:
    """Poll ``predicate()`` until it is true: a deadline of TIMEOUT, never a sleep as synchronisation."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(
                f"condition not met within {TIMEOUT:.0f} s" + (f": {describe()}" if describe else "")
            )
        await asyncio.sleep(0.01)


# -- --trace output ---------------------------------------------------------------------------------

_TRACE = re.compile(r"^(?P<side>client|server) (?P<dir><-|->) (?P<event>\S+) ?(?P<args>.*)$")
_ID = re.compile(r'^"(?P<id>[^"]+)"')


@dataclass(frozen=True)
class TraceEvent:
    incoming: bool  # received by the Node side
    event: str
    stream_id: str | None
    args: str  # the rest of the line, as common.js printed it


def is_base64_chunk(event: TraceEvent) -> bool:
    """True for a ``$stream-write`` whose chunk travelled as base64 text (``forceBase64``)."""
    # common.js prints a text chunk as JSON, cut to 117 characters plus "...", and a Buffer as <N bytes>.
    return "bytes>" not in event.args and bool(re.search(r' "base64"( <ack>)?$', event.args))


def parse_trace(stderr: str, side: str) -> list[TraceEvent]:
    """The Socket.IO events ``side`` ("client" or "server") logged with ``--trace``."""
    events = []
    for line in stderr.splitlines():
        match = _TRACE.match(line)
        if not match or match.group("side") != side:
            continue
        args = match.group("args")
        id_match = _ID.match(args)
        events.append(
            TraceEvent(
                incoming=match.group("dir") == "<-",
                event=match.group("event"),
                stream_id=id_match.group("id") if id_match else None,
                args=args,
            )
        )
    return events


@dataclass
class CreditProfile:
    """One stream's ``$stream-read`` / ``$stream-write`` counts as seen by the Node side."""

    reads: int = 0
    writes: int = 0
    max_outstanding: int = 0  # most reads not yet answered by a write, at any moment
    min_outstanding: int = 0  # negative if a write ever came without a read (a protocol violation)


def credit_profiles(events: list[TraceEvent], *, node_reads: bool) -> dict[str, CreditProfile]:
    """Per stream id: reads sent vs writes received when the Node side reads (``node_reads``),
    or reads received vs writes sent when the Node side writes.

    Reads after a stream's last write are left out: a JavaScript reader asks once more when the
    writer's ``$stream-end`` is already on its way.
    """
    last_write = {
        ev.stream_id: i
        for i, ev in enumerate(events)
        if ev.event == "$stream-write" and ev.incoming == node_reads
    }
    profiles: dict[str, CreditProfile] = defaultdict(CreditProfile)
    for i, ev in enumerate(events):
        if ev.stream_id is None or i > last_write.get(ev.stream_id, -1):
            continue
        if ev.event == "$stream-read" and ev.incoming != node_reads:
            profile = profiles[ev.stream_id]
            profile.reads += 1
        elif ev.event == "$stream-write" and ev.incoming == node_reads:
            profile = profiles[ev.stream_id]
            profile.writes += 1
        else:
            continue
        outstanding = profile.reads - profile.writes
        profile.max_outstanding = max(profile.max_outstanding, outstanding)
        profile.min_outstanding = min(profile.min_outstanding, outstanding)
    return dict(profiles)


@contextlib.asynccontextmanager
async def json_line_client(
    tools: NodeTools, script: Path, config: dict[str, Any], timeout: float = 120.0
) -> AsyncIterator[Callable[[], Awaitable[dict[str, Any]]]]:
    """Run the Node ``script`` with ``config`` (JSON) as its argument; yields ``line()``, which
    returns its next line of output parsed as JSON (or fails with its stderr once it exited).
    Closing its stdin tells it to end."""
    proc = await asyncio.create_subprocess_exec(
        tools.node,
        str(script),
        json.dumps(config),
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None

    async def line() -> dict[str, Any]:
        assert proc.stdout is not None and proc.stderr is not None
        raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not raw:
            err = await proc.stderr.read()
            raise AssertionError(f"the node client exited ({await proc.wait()}): {err.decode()[-4000:]}")
        result: dict[str, Any] = json.loads(raw)
        return result

    try:
        yield line
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
