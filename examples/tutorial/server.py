"""socket.io-stream's tutorial, served from Python: every client that connects is sent this
very file as a stream, from the connect handler.

Run: python examples/tutorial/server.py [port]   (default 3000), then, in another shell, either
client:
     cd examples/tutorial && npm ci && node client.js   (the tutorial's JavaScript client: npm ci
         installs socket.io-client and socket.io-stream from package-lock.json, once; the client
         prints the script and stays connected, as the tutorial's does: Ctrl-C ends it)
     python examples/tutorial/client.py           (prints the script and exits)
"""

import sys

import socketio
from aiohttp import web

from sio_stream import create_stream, send_file, ss, start_writer

sio = socketio.AsyncServer(async_mode="aiohttp")
streams = ss(sio)


@sio.event
async def connect(sid, environ, auth):
    stream = create_stream()
    # As in JavaScript, emitting only queues the event: python-socketio sends it right after
    # the CONNECT packet, once this handler has returned. (`await streams.emit(...)` works too.)
    streams.emit("script", stream, to=sid)
    # fs.createReadStream(__filename).pipe(stream): the file flows in a task of its own, since
    # the client can read nothing before this handler returns. start_writer() logs a failure
    # (a client that left early) instead of leaving it in the task.
    start_writer(send_file(stream, __file__))


app = web.Application()
sio.attach(app)

if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    web.run_app(app, host="127.0.0.1", port=port, print=lambda _: print(f"listening on *:{port}", flush=True))
