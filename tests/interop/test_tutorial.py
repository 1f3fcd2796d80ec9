"""socket.io-stream's tutorial (issue 9): a server that emits a stream from its connect handler
and pipes its own source file into it, read by the tutorial's JavaScript client (unchanged but
for the URL) and by its Python translation. Both run as separate processes, as a user runs them."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.interop._node import NodeTools, npm_ci

pytestmark = pytest.mark.anyio

TUTORIAL = Path(__file__).resolve().parents[2] / "examples" / "tutorial"
TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def tutorial_server() -> AsyncIterator[str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(TUTORIAL / "server.py"),
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
        assert line.decode().strip() == f"listening on *:{port}", line
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        # No handler errors, no "Connection aborted" for a transfer that completed.
        assert b"Traceback" not in stderr and b"ERROR" not in stderr, stderr.decode()


async def run_python_client(url: str) -> str:
    """The Python client exits by itself once it has the script."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(TUTORIAL / "client.py"), url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0
    return out.decode()


async def run_js_client(node_tools: NodeTools, url: str) -> str:
    """The JavaScript client as its docstring says to run it: ``npm ci`` in examples/tutorial
    (its own package.json and lock), then ``node client.js URL`` there, with no NODE_PATH.
    It prints the script and stays connected, as in the tutorial: read until the whole file is
    there, check it is still running, then stop it."""
    npm_ci(node_tools.npm, TUTORIAL)
    env = {name: value for name, value in os.environ.items() if name != "NODE_PATH"}
    proc = await asyncio.create_subprocess_exec(
        node_tools.node,
        "client.js",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=TUTORIAL,
    )
    try:
        expected = (TUTORIAL / "server.py").read_text()
        assert proc.stdout is not None
        out = b""
        while expected not in out.decode(errors="replace"):
            chunk = await asyncio.wait_for(proc.stdout.read(65536), TIMEOUT)
            if not chunk:
                break
            out += chunk
        assert proc.returncode is None, (await proc.communicate())[1].decode()  # still connected
        return out.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_the_tutorials_javascript_client_prints_the_script(node_tools: NodeTools, tutorial_server):
    out = await run_js_client(node_tools, tutorial_server)
    assert out.rstrip("\n") == (TUTORIAL / "server.py").read_text().rstrip("\n")


async def test_the_python_client_prints_the_script(tutorial_server):
    out = await run_python_client(tutorial_server)
    assert out == (TUTORIAL / "server.py").read_text()


async def test_several_clients_at_once(node_tools: NodeTools, tutorial_server):
    npm_ci(node_tools.npm, TUTORIAL)  # once, before three clients start
    outs = await asyncio.gather(
        *(run_js_client(node_tools, tutorial_server) for _ in range(3)),
        *(run_python_client(tutorial_server) for _ in range(3)),
    )
    expected = (TUTORIAL / "server.py").read_text().rstrip("\n")
    assert [out.rstrip("\n") for out in outs] == [expected] * 6
