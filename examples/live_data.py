"""Live data in object mode: the server pushes JSON values (ticks) down a stream as they happen.

Run: python examples/live_data.py
"""

import asyncio
import random

import socketio
from aiohttp import web

from sio_stream import create_stream, ss


async def start_server(sio: socketio.AsyncServer) -> tuple[web.AppRunner, str]:
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # port 0: any free port
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def main() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @ss(sio).on("subscribe")
    async def subscribe(sid: str, ticks, request: dict) -> int:
        price = 100.0
        for seq in range(request["count"]):
            price = round(price * (1 + random.uniform(-0.01, 0.01)), 2)
            # Each write is one object; backpressure applies per object (16 by default).
            await ticks.write({"symbol": request["symbol"], "seq": seq, "price": price})
            await asyncio.sleep(0.005)  # a live feed: values come when they come
        await ticks.end()  # returns once the client has acknowledged every tick
        return request["count"]

    runner, url = await start_server(sio)
    client = socketio.AsyncClient()
    await client.connect(url, transports=["websocket"])

    ticks = create_stream(object_mode=True)
    # The ack comes when the feed is over; wait for it before disconnecting.
    done = asyncio.get_running_loop().create_future()
    await ss(client).emit("subscribe", ticks, {"symbol": "ACME", "count": 50}, callback=done.set_result)
    received = []
    async for tick in ticks:  # one JSON value per iteration
        received.append(tick)
        if tick["seq"] % 10 == 0:
            print(f"tick {tick['seq']:2d}  {tick['symbol']} {tick['price']:.2f}")
    in_order = [t["seq"] for t in received] == list(range(await done))
    print(f"live data ok: {len(received)} ticks in order" if in_order else "live data FAILED")

    await client.disconnect()
    await sio.shutdown()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
