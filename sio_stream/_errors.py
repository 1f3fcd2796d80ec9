"""Errors: one root, split by who is at fault, with anyio's resource-error meanings.

Every exception sio_stream raises is a :class:`StreamError`. Stream I/O errors also inherit
the anyio exception a user of ``anyio.abc.ByteStream`` already catches:

* :class:`StreamClosedError` (``anyio.ClosedResourceError``): *we* closed or destroyed it;
* :class:`StreamBrokenError` (``anyio.BrokenResourceError``): the peer or the connection
  broke it; ``remote`` tells which side raised the error first;
* :class:`StreamEnded` (``anyio.EndOfStream``): clean end, raised by ``receive()`` only;
* :class:`StreamBusyError` (``anyio.BusyResourceError``): two tasks used one direction at once.
"""

from __future__ import annotations

import anyio


class StreamError(Exception):
    """Root of every error sio_stream raises.

    ``remote`` is true when the error was reported by the peer (a ``$stream-error`` it sent),
    false when it arose on this side.
    """

    remote: bool = False

    def __init__(self, message: str = "", *, remote: bool = False) -> None:
        super().__init__(message)
        self.remote = remote

    @property
    def message(self) -> str:
        """The error text, as sent on the wire."""
        return str(self.args[0]) if self.args else ""


class StreamClosedError(StreamError, anyio.ClosedResourceError):
    """The stream was closed or destroyed on this side; no further I/O is possible."""


class StreamBrokenError(StreamError, anyio.BrokenResourceError):
    """The stream failed: the peer sent an error, broke the protocol, or the connection dropped."""


class ConnectionAbortedStreamError(StreamBrokenError):
    """The Socket.IO connection carrying the stream dropped (message ``"Connection aborted"``)."""


class RemoteProtocolError(StreamBrokenError):
    """The peer broke the wire protocol (for example a write without credit); the stream failed."""


class StreamEnded(StreamError, anyio.EndOfStream):
    """The readable side ended cleanly; raised by ``receive()``."""


class StreamBusyError(StreamError, anyio.BusyResourceError):
    """Two tasks tried to read (or to write) the same stream at the same time."""


class LocalProtocolError(StreamError, RuntimeError):
    """This side misused the API: sending a stream twice, using a destroyed stream, and so on."""


class InvalidChunkError(StreamError, TypeError):
    """A chunk of the wrong kind for the stream's mode (for example ``str`` objects to a byte stream)."""


class InvalidOptionError(StreamError, ValueError):
    """A stream or socket option has a wrong type or value."""


class StreamTimeoutError(StreamError, TimeoutError):
    """The peer did not acknowledge in time (``StreamSocket.call``)."""
