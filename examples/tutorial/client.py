"""The tutorial's client in Python: receive the server's script as a stream and print it.

Run: python examples/tutorial/client.py [url]   (default http://localhost:3000)
"""

import asyncio
import sys

import socketio

from sio_stream import ss


async def main(url: str) -> None:
    sio = socketio.AsyncClient()
    done = asyncio.Event()

    @ss(sio).on("script")
    async def script(stream):
        # `async with` closes the stream gracefully: it returns once the server has heard that
        # everything arrived, so the disconnect below cuts nothing short (python-socketio's
        # disconnect drops packets still queued).
        async with stream:
            print((await stream.read()).decode(), end="", flush=True)
        done.set()

    await sio.connect(url)
    await done.wait()
    await sio.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://localhost:3000"))
