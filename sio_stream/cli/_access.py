"""The file server's access log: one line per request on the ``sio_stream.access`` logger.

``sio-stream serve`` sends it to stderr (``--quiet`` turns it off); an application embedding
:class:`~sio_stream.cli._server.FileServer` configures the logger as it likes. A line holds the
time, client address, Socket.IO sid, token (``ok``; ``none`` when the server needs none;
``refused``), command, path as the client sent it, bytes moved, duration and rate, and the
outcome last because it may hold a reason with spaces (``refused: ...``, ``failed: ...``)::

    2026-12-01 15:12:45,726 10.0.0.7 sid=JlkKa___oTvmk0FSAAAB token=ok get 'a.pdf' 1048576 B ...
        ... 0.012 s 87.4 MB/s ok
    2026-12-01 15:12:45,958 10.0.0.7 sid=McsSl-b0bUlY2Wk0AAAD token=ok get '../x' - 0.000 s ...
        ... refused: path '../x': '..' is not allowed
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ._progress import format_rate

logger = logging.getLogger("sio_stream.access")

#: Characters of a client-chosen path kept in a line (a log is no place for megabytes of name).
_MAX_PATH = 200


def client_address(environ: Any) -> str:
    """The peer's IP address: aiohttp's ``request.remote`` (python-engineio's aiohttp environ
    says 127.0.0.1 for everyone), else ``REMOTE_ADDR`` (ASGI and WSGI servers set it)."""
    if not isinstance(environ, dict):
        return "-"
    request = environ.get("aiohttp.request")
    remote = getattr(request, "remote", None)
    return str(remote or environ.get("REMOTE_ADDR") or "-")


def _path(path: Any) -> str:
    # repr(): quotes, and no newline from a client can forge a second line.
    text = repr(path)
    return text if len(text) <= _MAX_PATH else text[:_MAX_PATH] + "..."


def _one_line(text: str) -> str:
    # An outcome quotes what a client sent (a name in a refusal, a peer's error message): its
    # control characters are escaped, so that it cannot end the line and forge another.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Request:
    """One request being served; :meth:`finish` writes its line (once)."""

    def __init__(self, address: str, sid: str, token: str, command: str, path: Any) -> None:
        self.prefix = f"{address} sid={sid} token={token} {command} {_path(path)}"
        self.started = time.monotonic()
        self.finished = False

    def finish(self, outcome: str, size: int | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        seconds = time.monotonic() - self.started
        moved = "-" if size is None else f"{size} B"
        rate = f" {format_rate(size, seconds)}" if size else ""
        logger.info("%s %s %.3f s%s %s", self.prefix, moved, seconds, rate, _one_line(outcome))

    def refused(self, reason: str) -> None:
        """The server said no (the reason as the client reads it)."""
        self.finish(f"refused: {reason.removeprefix('refused ')}")

    def failed(self, reason: object, size: int | None = None) -> None:
        """The transfer broke (the client left, the file system failed, ...) after ``size`` bytes."""
        self.finish(f"failed: {reason}", size)


def refused_connection(address: str, sid: str, reason: str) -> None:
    """A connection refused before any request (a wrong or missing token)."""
    logger.info("%s sid=%s token=refused connect - - 0.000 s refused: %s", address, sid, _one_line(reason))


def log_to_stderr() -> None:
    """Send the access log to stderr, one line per request (``sio-stream serve``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # Once is enough: an application that configures the root logger would print it twice.
    logger.propagate = False
