"""Echo: one duplex stream, the server pipes what it reads straight back.

``allow_half_open=True`` lets the client end its writing side and still read the rest of the
echo (by default, ending one direction of a stream ends the other, as in Node).

Run: python examples/echo.py
"""

import asyncio

import socketio
from aiohttp import web

from sio_stream import create_stream, pipe, ss


async def start_server(sio: socketio.AsyncServer) -> tuple[web.AppRunner, str]:
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # port 0: any free port
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def main() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @ss(sio).on("echo")
    async def echo(sid: str, stream) -> int:
        # read -> write back; ends the echo when the client ends, returns once all was acked
        return await pipe(stream, stream)

    runner, url = await start_server(sio)
    client = socketio.AsyncClient()
    await client.connect(url, transports=["websocket"])

    stream = create_stream(allow_half_open=True)
    lines = [f"line {i}: {'x' * i}\n".encode() for i in range(200)]

    async def writer() -> None:
        for line in lines:
            await stream.write(line)
        await stream.end()

    # Three things at once: write, read the echo, wait for the ack (bytes echoed, once the
    # server's writes were all acknowledged, so the disconnect below cuts nothing). The task
    # group waits for all of them, or stops the others when one fails.
    async with asyncio.TaskGroup() as group:
        reading = group.create_task(stream.read())  # everything, to the end of the echo
        reply = await ss(client).call("echo", stream, writer=writer())
    echoed = reading.result()
    expected = b"".join(lines)
    print(f"sent {len(expected)} bytes, echoed {len(echoed)} bytes (server: {reply})")
    print("echo ok" if echoed == expected else "echo FAILED")

    await client.disconnect()
    await sio.shutdown()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
