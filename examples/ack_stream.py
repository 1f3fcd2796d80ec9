"""A stream returned through an ack: the client asks for a report, the server answers with a
stream (and metadata) in the ack and writes the report into it afterwards.

Run: python examples/ack_stream.py
"""

import asyncio
import csv
import io

import socketio
from aiohttp import web

from sio_stream import create_stream, ss, start_writer


async def start_server(sio: socketio.AsyncServer) -> tuple[web.AppRunner, str]:
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # port 0: any free port
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def main() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    writers: list[asyncio.Task[None]] = []

    async def write_report(stream, rows: int) -> None:
        await stream.write("id,name,score\n")  # str is sent as UTF-8
        for i in range(rows):
            await stream.write(f"{i},user{i},{(i * 37) % 100}\n")
        await stream.end()

    @ss(sio).on("report")
    async def report(sid: str, rows: int):
        stream = create_stream()
        # The ack sends the stream as this handler returns; the writer runs after that, in a
        # task of its own that logs its failure (a client that left) instead of leaking it.
        writers.append(start_writer(write_report(stream, rows)))
        return stream, {"rows": rows, "content_type": "text/csv"}

    runner, url = await start_server(sio)
    client = socketio.AsyncClient()
    await client.connect(url, transports=["websocket"])

    stream, meta = await ss(client).call("report", 1000)
    text = (await stream.read()).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    print(f"got a {meta['content_type']} stream in the ack: {len(rows)} rows, last {rows[-1]}")
    print("ack stream ok" if len(rows) == meta["rows"] else "ack stream FAILED")

    await asyncio.gather(*writers)  # the server's writer finished (all acknowledged)
    await client.disconnect()
    await sio.shutdown()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
