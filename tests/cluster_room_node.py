"""A server node of a room test, as a process of its own (so that a test can kill it).

    python tests/cluster_room_node.py <redis url>

Like ``cluster_node.py``, and its clients join a room with the plain Socket.IO event
``join(room)``. Prints ``LISTENING <port>`` once ready; runs until stdin closes or it is killed.
"""

from __future__ import annotations

import asyncio
import sys

import socketio
from support import start_server  # this script's folder, tests/, is first on sys.path

from sio_stream import ss
from sio_stream.cluster import cluster_for


async def main(redis_url: str) -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(redis_url))
    ss(sio)

    @sio.on("join")
    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True

    runner, url = await start_server(sio)
    node = cluster_for(sio)
    assert node is not None
    await node.ready()
    print(f"LISTENING {url.rsplit(':', 1)[1]}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await node.close()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
