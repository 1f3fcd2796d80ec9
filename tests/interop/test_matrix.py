"""Every kind of client x every way a server sends it a stream, on one node and across two nodes
(issue 23's matrix).

Rows, the receiving clients: asyncio (``sio_stream.ss``), the sync API in threading mode, the sync
API under eventlet and under gevent (monkey-patched, tests/sync_green_client.py in a process of its
own), our JavaScript client in Node and the npm socket.io-stream client
(node/matrix_member.mjs). Columns, an asyncio server sending a stream: to one sid, to a room of two
members, and a relay of an asyncio client's upload to that room. Each cell moves 2 MiB intact
(sha256 at both ends) and, separately, survives a member that leaves mid-stream: that member's
stream fails, the other member of the room still gets every byte, and a stream to the sid alone
fails its writer.

Across two nodes (python-socketio's ``AsyncRedisManager`` on Debian's redis-server, our cluster
forwarding the streams), the sending node is A, where the uploader is connected: the member sent
to its sid, and the member that leaves, are connected to node B; a room's second member is
connected to A, so the room spans both nodes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import socketio
from _node import NODE_DIR, NodeTools

from sio_stream import StreamError, create_stream, ss, sync
from sio_stream.cluster import cluster_for
from tests.support import start_server, tasks_end_while_the_loop_runs, wait_for  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.anyio

DATA = os.urandom(2 * 1024 * 1024 + 5)
DIGEST = hashlib.sha256(DATA).hexdigest()
#: What the writer sends before a leaving member goes (it leaves at its first chunk).
FIRST_PART = 512 * 1024
TIMEOUT = 120.0
ROOT = Path(__file__).resolve().parent.parent.parent
KINDS = ("asyncio", "sync-threading", "sync-eventlet", "sync-gevent", "js-ours", "js-npm")
TARGETS = ("sid", "room", "relay")
LAYOUTS = ("one-node", "two-nodes")


class Member:
    """One client of a row's kind: its sid, and the one line that says what its stream did
    (``GOT <size> <sha256>`` or ``LEFT <why>``)."""

    sid: str

    async def outcome(self) -> str:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class AsyncioMember(Member):
    def __init__(self, leave: bool) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.leave = leave
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        ss(self.client).on("file", self.on_file)

    async def start(self, url: str) -> None:
        await self.client.connect(url, transports=["websocket"])
        self.sid = self.client.get_sid()

    async def on_file(self, stream: Any, meta: Any) -> str | None:
        digest, size = hashlib.sha256(), 0
        try:
            async for chunk in stream:
                digest.update(chunk)
                size += len(chunk)
                if self.leave and self.client.connected:
                    asyncio.get_running_loop().create_task(self.client.disconnect())
        except StreamError as exc:
            self.done.set_result(f"LEFT {exc}")
            return None
        self.done.set_result(f"GOT {size} {digest.hexdigest()}")
        return digest.hexdigest()

    async def outcome(self) -> str:
        return await asyncio.wait_for(asyncio.shield(self.done), TIMEOUT)

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


class SyncMember(Member):
    """A sync ``socketio.Client`` (threading mode) in this process; its handler runs in a thread."""

    def __init__(self, leave: bool) -> None:
        self.client = socketio.Client(reconnection=False)
        self.leave = leave
        self.line = ""
        self.done = threading.Event()
        sync.ss(self.client).on("file", self.on_file)

    async def start(self, url: str) -> None:
        await asyncio.to_thread(self.client.connect, url, transports=["websocket"])
        self.sid = self.client.get_sid()

    def on_file(self, stream: Any, meta: Any) -> str | None:
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in stream:
                digest.update(chunk)
                size += len(chunk)
                if self.leave and self.client.connected:
                    self.client.start_background_task(self.client.disconnect)
                    self.leave = False
        except StreamError as exc:
            self.line = f"LEFT {exc}"
            return None
        finally:
            self.done.set()
        self.line = f"GOT {size} {digest.hexdigest()}"
        return digest.hexdigest()

    async def outcome(self) -> str:
        assert await asyncio.to_thread(self.done.wait, TIMEOUT), "no stream arrived"
        return self.line

    async def close(self) -> None:
        if self.client.connected:
            await asyncio.to_thread(self.client.disconnect)


class ProcessMember(Member):
    """A member in a process of its own that prints ``READY <sid>``, then ``GOT``/``LEFT`` lines."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.seen: list[str] = []

    async def _line(self, *prefixes: str) -> str:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), TIMEOUT)
            if not line:
                stderr = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"the member exited; saw {self.seen}\n{stderr[-3000:]}")
            line = line.rstrip("\n")
            self.seen.append(line)
            assert not line.startswith("FAILED"), line
            if line.startswith(prefixes):
                return line

    async def start(self, url: str) -> None:
        self.sid = (await self._line("READY ")).split()[1]

    async def outcome(self) -> str:
        return await self._line("GOT ", "LEFT ")

    async def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 30)
        except TimeoutError:
            self.proc.kill()  # this pid only
            await asyncio.to_thread(self.proc.wait)


def member_factory(kind: str, url: str, node_tools: NodeTools) -> Callable[[bool], Member]:
    def make(leave: bool) -> Member:
        if kind == "asyncio":
            return AsyncioMember(leave)
        if kind == "sync-threading":
            return SyncMember(leave)
        leave_args = ["--leave-after", "1"] if leave else []
        if kind.startswith("sync-"):
            script = str(ROOT / "tests" / "sync_green_client.py")
            command = [sys.executable, script, "--mode", kind[5:], url, "member", *leave_args]
            return ProcessMember(command, ROOT)
        client = "ours" if kind == "js-ours" else "npm"
        command = [node_tools.node, "matrix_member.mjs", url, "--client", client, *leave_args]
        return ProcessMember(command, NODE_DIR)

    return make


class Setup:
    """What a test drives: the sending node's streams, the uploader (a client of that node), the
    members, and whether a member is still connected (asked of the node it is connected to)."""

    def __init__(self, streams: Any, uploader: Any, members: list[Member], homes: dict[str, Any]) -> None:
        self.streams, self.uploader, self.members, self.homes = streams, uploader, members, homes

    def connected(self, sid: str) -> bool:
        return bool(self.homes[sid].manager.is_connected(sid, "/"))


def in_room(server: socketio.AsyncServer) -> int:
    return len(list(server.manager.get_participants("/", "room")))


@asynccontextmanager
async def servers(
    kind: str, node_tools: NodeTools, leavers: list[bool], redis_url: str | None
) -> AsyncIterator[Setup]:
    """An asyncio server (two, joined by Redis, with ``redis_url``) whose clients join ``room``
    (but the uploader), and one member of ``kind`` per entry of ``leavers`` (True: it leaves at
    its first chunk). On two nodes the first member is on node B, the others on node A."""
    count = 1 if redis_url is None else 2
    nodes: list[tuple[socketio.AsyncServer, str]] = []
    async with AsyncExitStack() as stack:
        for _ in range(count):
            manager = None if redis_url is None else socketio.AsyncRedisManager(redis_url)
            server = socketio.AsyncServer(
                async_mode="aiohttp", max_http_buffer_size=4 * 2**20, client_manager=manager
            )
            node_streams = ss(server)

            @server.event
            async def connect(sid: str, environ: Any, auth: Any, server: Any = server) -> None:
                if not (isinstance(auth, dict) and auth.get("uploader")):
                    await server.enter_room(sid, "room")

            @node_streams.on("share")
            async def share(sid: str, stream: Any, node_streams: Any = node_streams) -> dict[str, Any]:
                acks = await node_streams.call("file", stream, {}, to="room", skip_sid=sid, timeout=TIMEOUT)
                return {key: f"error: {v}" if isinstance(v, BaseException) else v for key, v in acks.items()}

            runner, url = await start_server(server)
            stack.push_async_callback(runner.cleanup)
            stack.push_async_callback(server.shutdown)
            if redis_url is not None:
                node = cluster_for(server)
                assert node is not None
                # Leaves the cluster (its Redis tasks end) before the server shuts down, as
                # tests/test_cluster.py's nodes do: left to the loop's end, a run hung there.
                stack.push_async_callback(node.close)
                await node.ready()
            nodes.append((server, url))
        sender, sender_url = nodes[0]
        if count == 2:
            a, b = (cluster_for(server) for server, _ in nodes)
            await wait_for(lambda: b.id in a.peers and a.id in b.peers, TIMEOUT)
        members: list[Member] = []
        homes: dict[str, Any] = {}
        for index, leave in enumerate(leavers):
            home, url = nodes[-1] if index == 0 else nodes[0]
            member = member_factory(kind, url, node_tools)(leave)
            stack.push_async_callback(member.close)
            await member.start(url)  # type: ignore[attr-defined]
            members.append(member)
            homes[member.sid] = home
            if home is not sender:  # node A knows where the member is before sending to its sid
                await wait_for(lambda sid=member.sid: cluster_for(sender).remote_node("/", sid) is not None)
        uploader = socketio.AsyncClient(reconnection=False)
        await uploader.connect(sender_url, transports=["websocket"], auth={"uploader": True})
        stack.push_async_callback(uploader.disconnect)
        for server, _ in nodes:
            here = sum(1 for member in members if homes[member.sid] is server)
            await wait_for(lambda server=server, here=here: in_room(server) == here)
        yield Setup(ss(sender), uploader, members, homes)
        await wait_for(lambda: all(ss(server).stream_count() == 0 for server, _ in nodes), TIMEOUT)


async def send(target: str, streams: Any, uploader: Any, members: list[Member], left: Any = None) -> Any:
    """Send DATA to ``target``; with ``left`` (a coroutine function), write FIRST_PART, await it
    (a member has left), then the rest. Returns the ack (a dict for a room or a relay)."""
    stream = create_stream()

    async def write() -> None:
        await stream.write(DATA[:FIRST_PART])
        if left is not None:
            await left()
        for offset in range(FIRST_PART, len(DATA), 200_000):
            await stream.write(DATA[offset : offset + 200_000])
        await stream.end()

    if target == "relay":
        return await ss(uploader).call("share", stream, writer=write(), timeout=TIMEOUT)
    to = members[0].sid if target == "sid" else "room"
    return await streams.call("file", stream, {}, to=to, writer=write(), timeout=TIMEOUT)


def redis_for(layout: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("redis_url") if layout == "two-nodes" else None


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", KINDS)
async def test_an_intact_transfer(
    kind: str, target: str, layout: str, node_tools: NodeTools, request: pytest.FixtureRequest
) -> None:
    count = 1 if target == "sid" else 2
    async with servers(kind, node_tools, [False] * count, redis_for(layout, request)) as setup:
        members = setup.members
        ack = await send(target, setup.streams, setup.uploader, members)
        expected = DIGEST if target == "sid" else {member.sid: DIGEST for member in members}
        assert ack == expected
        for member in members:
            assert await member.outcome() == f"GOT {len(DATA)} {DIGEST}"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_member_that_leaves(
    kind: str, target: str, layout: str, node_tools: NodeTools, request: pytest.FixtureRequest
) -> None:
    leavers = [True] if target == "sid" else [True, False]
    async with servers(kind, node_tools, leavers, redis_for(layout, request)) as setup:
        members = setup.members
        leaver = members[0]

        async def left() -> None:
            await wait_for(lambda: not setup.connected(leaver.sid), TIMEOUT)

        if target == "sid":
            with pytest.raises(StreamError):
                await send(target, setup.streams, setup.uploader, members, left)
        else:
            acks = await send(target, setup.streams, setup.uploader, members, left)
            assert set(acks) == {member.sid for member in members}
            failed = acks[leaver.sid]
            assert isinstance(failed, BaseException) or str(failed).startswith("error: "), acks
            assert acks[members[1].sid] == DIGEST
            assert await members[1].outcome() == f"GOT {len(DATA)} {DIGEST}"
        assert (await leaver.outcome()).startswith("LEFT "), leaver
