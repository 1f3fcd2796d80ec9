"""sio_stream: socket.io-stream for python-socketio.

Streams of bytes or objects, multiplexed with flow control over a Socket.IO connection you
already have, wire-compatible with the JavaScript ``socket.io-stream`` package::

    from sio_stream import ss, create_stream

    streams = ss(sio)

    @streams.on("upload")
    async def upload(sid, stream, meta):
        async for chunk in stream:
            ...
"""

# The cluster plugs its Redis relay into ss() when imported (see aio._socket.plug_relay).
from . import cluster  # noqa: F401
from ._errors import (
    ConnectionAbortedStreamError,
    HandlerError,
    IntegrityError,
    InvalidChunkError,
    InvalidOptionError,
    LocalProtocolError,
    RemoteProtocolError,
    ResumeRefusedError,
    StreamBrokenError,
    StreamBusyError,
    StreamClosedError,
    StreamEnded,
    StreamError,
    StreamTimeoutError,
)
from ._malloc import keep_freed_buffers
from .aio._socket import StreamSocket, ss
from .aio._stream import IOStream, create_stream
from .aio._writer import start_writer
from .core._budget import (
    Budget,
    BudgetStatistics,
    ConnectionStatistics,
    StreamSocketStatistics,
    process_budget,
    set_process_limit,
)
from .files._common import ResumeError, TransferIncomplete, TransferTooLarge
from .files._disk import prefix_digest
from .files._pipe import pipe
from .files._transfer import receive_file, send_file

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "BudgetStatistics",
    "ConnectionStatistics",
    "ConnectionAbortedStreamError",
    "ResumeRefusedError",
    "HandlerError",
    "IOStream",
    "IntegrityError",
    "InvalidChunkError",
    "InvalidOptionError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ResumeError",
    "StreamBrokenError",
    "StreamBusyError",
    "StreamClosedError",
    "StreamEnded",
    "StreamError",
    "StreamSocket",
    "StreamSocketStatistics",
    "StreamTimeoutError",
    "TransferIncomplete",
    "TransferTooLarge",
    "__version__",
    "create_stream",
    "keep_freed_buffers",
    "pipe",
    "process_budget",
    "prefix_digest",
    "receive_file",
    "send_file",
    "set_process_limit",
    "ss",
    "start_writer",
]
