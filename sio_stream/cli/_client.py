"""The client side of the file server's protocol: connect, list, download and upload one
file (resumed, verified end to end by a digest: blake3 between two sio_stream peers)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiofiles
import aiofiles.os
import anyio
import socketio

from .._errors import StreamError
from ..aio._socket import StreamSocket, ss
from ..aio._stream import create_stream
from ..files._common import Progress, ResumeError
from ..files._disk import prefix_hasher
from ..files._transfer import receive_file, send_file
from ._common import REQUEST_TIMEOUT, CliError, normalize_url
from ._progress import ProgressBar, format_rate, format_size


class _Client(socketio.AsyncClient):  # type: ignore[misc]  # python-socketio ships no types
    """python-socketio's client, quiet about a race of its own at Ctrl-C."""

    async def _handle_eio_message(self, data: Any) -> None:
        try:
            await super()._handle_eio_message(data)
        except (ValueError, TypeError):
            # When the connection drops (python-engineio's SIGINT handler drops it at Ctrl-C),
            # python-socketio forgets the binary packet it was assembling; an attachment still
            # queued behind it is then parsed as a packet (or a packet as an attachment) and
            # fails, in a task nobody awaits:
            # asyncio printed "Task exception was never retrieved" and a traceback. There is
            # nothing left to deliver it to; a malformed packet on a live connection still raises.
            if self.connected:
                raise


@asynccontextmanager
async def connect(url: str, token: str | None) -> AsyncIterator[StreamSocket]:
    """A connected client's StreamSocket; refusals and unreachable servers raise :class:`CliError`."""
    import aiohttp

    url = normalize_url(url)
    # Our own HTTP session: python-engineio leaves the one it creates open when a connection
    # attempt fails, and aiohttp then warns "Unclosed client session" at exit.
    async with aiohttp.ClientSession() as session:
        client = _Client(reconnection=False, http_session=session)
        streams = ss(client)
        refusals: list[str] = []

        def on_connect_error(data: Any = None) -> None:
            refusals.append(str(data.get("message", data)) if isinstance(data, dict) else str(data))

        client.on("connect_error", on_connect_error)
        try:
            await client.connect(
                url,
                transports=["websocket"],
                auth={"token": token} if token else None,
                wait_timeout=REQUEST_TIMEOUT,
            )
        except socketio.exceptions.ConnectionError as exc:
            reason = refusals[-1] if refusals else str(exc)
            if reason == "Connection error":  # python-engineio's words for "nothing answered"
                reason = "no Socket.IO server answered (is it running, at that address?)"
            raise CliError(f"cannot connect to {url}: {reason}") from None
        try:
            yield streams
        finally:
            with anyio.CancelScope(shield=True):
                await client.disconnect()


def _check_reply(reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise CliError(f"unexpected reply from the server: {reply!r}")
    if "error" in reply:
        raise CliError(str(reply["error"]))
    return reply


@dataclass
class Transfer:
    name: str
    size: int
    seconds: float
    sha256: str  # hex, of the whole file, computed by this side as it read or wrote it
    offset: int = 0  # bytes already stored from an earlier, interrupted transfer
    mtime: int | None = None  # of the server's file (a download), in ns
    checked: str = "sha256"  # the digest that travelled with the stream and was checked

    def summary(self, verb: str) -> str:
        """One line with the whole file's sha256 (comparable with ``sha256sum``), which this side
        computed in the same pass as its file reads or writes. What was checked end to end is the
        stream's digest (blake3 between two sio_stream peers, a third of sha256's CPU, so the
        other side does not hash twice; else sha256), and for a resumed transfer also the kept
        prefix (both sides compared its sha256 before resuming): the line says so."""
        moved = self.size - self.offset
        resumed = f", resumed at {self.offset} bytes" if self.offset else ""
        checked = f"; first {self.offset} bytes and rest checked apart" if self.offset else ""
        if self.checked != "sha256":
            checked += f"; {self.checked} checked end to end"
        return (
            f"{verb} {self.name}: {format_size(self.size)} ({self.size} bytes) in {self.seconds:.2f} s, "
            f"{format_rate(moved, self.seconds)}{resumed}, sha256 ok ({self.sha256[:16]}...{checked})"
        )


async def list_remote(streams: StreamSocket, remote: str) -> list[dict[str, Any]]:
    reply = _check_reply(await streams.call("ls", remote, timeout=REQUEST_TIMEOUT))
    return list(reply["entries"])


def partial_paths(local: Path) -> tuple[Path, Path]:
    """Where an unfinished download of ``local`` is kept: the data, and what it is a prefix of."""
    return local.with_name(f".{local.name}.sio-part"), local.with_name(f".{local.name}.sio-part.json")


def _refusal(reply: Any) -> CliError:
    message = str(reply.get("error"))
    if reply.get("code") in ("changed", "prefix-mismatch", "offset-beyond-size", "offset-mismatch"):
        message += " (--restart starts over)"
    return CliError(message)


def _check_reply_resumable(reply: Any) -> dict[str, Any]:
    if isinstance(reply, dict) and "error" in reply:
        raise _refusal(reply)
    return _check_reply(reply)


async def download(
    streams: StreamSocket,
    remote: str,
    local: Path,
    *,
    show_progress: bool | None,
    restart: bool = False,
    url: str = "",
    label: str | None = None,
    progress: Progress | None = None,
) -> Transfer:
    """Fetch ``remote`` into ``local`` (a file path), verified by the stream's digest.

    An unfinished earlier download of the same remote file (``.NAME.sio-part`` beside
    ``local``, with its ``.json`` record) is continued from its size once the server checked
    it is a prefix of the same file; ``restart`` discards it first. ``progress`` (instead of
    the bar) gets the bytes stored and the file's size.
    """
    data, record_path = partial_paths(local)
    resume: dict[str, Any] | None = None
    # The whole file's sha256 for the line printed: the kept part's when resuming, then the rest's.
    whole: Any = hashlib.sha256()
    if restart:
        await aiofiles.os.remove(data) if await aiofiles.os.path.exists(data) else None
        await aiofiles.os.remove(record_path) if await aiofiles.os.path.exists(record_path) else None
    elif await aiofiles.os.path.exists(data):
        try:
            record = json.loads(await anyio.Path(record_path).read_text())
        except (OSError, ValueError):
            raise CliError(
                f"{data} is in the way (no record of what it is): remove it or use --restart"
            ) from None
        if record.get("remote") != remote or record.get("url") != url:
            raise CliError(f"{data} holds part of another download ({record.get('remote')}): use --restart")
        offset = (await anyio.Path(data).stat()).st_size
        whole = await anyio.to_thread.run_sync(prefix_hasher, data, offset)
        resume = {
            "offset": offset,
            "size": record.get("size"),
            "mtime": record.get("mtime"),
            "prefix": whole.hexdigest(),
        }
    args = (remote, resume) if resume is not None else (remote,)
    reply = await streams.call("get", *args, timeout=REQUEST_TIMEOUT)
    if not isinstance(reply, tuple) or len(reply) != 2:
        raise CliError(f"unexpected reply from the server: {reply!r}")
    stream, info = reply[0], _check_reply_resumable(reply[1])
    size, offset = int(info["size"]), int(info.get("offset", 0))
    if offset and (resume is None or offset != resume["offset"]):
        raise CliError(f"the server resumed {remote} at {offset} bytes, not where this side stopped")
    if resume is None:
        record = {"remote": remote, "url": url, "size": size, "mtime": info.get("mtime")}
        await anyio.Path(record_path).write_text(json.dumps(record))
    bar = progress or ProgressBar(label or f"get {remote}", enabled=show_progress)
    started = time.monotonic()
    try:
        await receive_file(
            stream,
            local,
            partial=data,
            offset=offset,
            size=size - offset,
            progress=lambda done, total: bar(offset + done, size),
            hasher=whole,
        )
    except (StreamError, ResumeError) as exc:
        raise CliError(f"download of {remote} failed: {exc}") from None
    finally:
        if isinstance(bar, ProgressBar):
            bar.close()
    await aiofiles.os.remove(record_path)
    if stream.digest is None:
        raise CliError(f"the server sent no digest for {remote}: not verified (an old server?)")
    mtime = info.get("mtime")
    mtime = mtime if isinstance(mtime, int) and not isinstance(mtime, bool) else None
    seconds = time.monotonic() - started
    return Transfer(remote, size, seconds, whole.hexdigest(), offset, mtime, str(stream.digest_name))


async def upload(
    streams: StreamSocket,
    local: Path,
    remote: str,
    *,
    show_progress: bool | None,
    restart: bool = False,
    label: str | None = None,
    progress: Progress | None = None,
) -> Transfer:
    """Send ``local`` to the server as ``remote``, continuing an upload of the same file this
    token left unfinished (``restart``: start over); the stream's digest is checked there."""
    try:
        info = await anyio.Path(local).stat()
    except OSError as exc:
        raise CliError(f"cannot read {local}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CliError(f"not a file: {local}")
    meta: dict[str, Any] = {"path": remote, "size": info.st_size, "mtime": info.st_mtime_ns}
    status_request = {**meta, "restart": True} if restart else meta
    status = _check_reply_resumable(await streams.call("put-status", status_request, timeout=REQUEST_TIMEOUT))
    offset = int(status["offset"])
    if offset > info.st_size:
        raise CliError(
            f"the server holds {offset} bytes of {remote}, more than {local} has (--restart starts over)"
        )
    # The whole file's sha256 for the line printed, in the same pass as the reads.
    whole = await anyio.to_thread.run_sync(prefix_hasher, local, offset) if offset else hashlib.sha256()
    if offset and whole.hexdigest() != status["prefix"]:
        raise CliError(f"the server's part of {remote} is not a prefix of {local} (--restart starts over)")
    stream = create_stream()
    bar = progress or ProgressBar(label or f"put {remote}", enabled=show_progress)
    started = time.monotonic()
    # Emit first, then write: the request (and the stream in it) is queued before any data.
    reply_future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    meta.update(transfer=status["transfer"], offset=offset)
    await streams.emit("put", stream, meta, callback=reply_future.set_result)
    try:
        await send_file(
            stream,
            local,
            offset=offset,
            progress=lambda done, total: bar(offset + done, info.st_size),
            hasher=whole,
            # blake3 toward a server that has it (a third of sha256's CPU on each side), else
            # sha256; the server's reply names it and confirms the value.
            digest="auto",
        )
    except StreamError as exc:
        # The server destroys the stream with the reason it also puts in its reply.
        raise CliError(f"upload of {local} failed: {exc}") from None
    finally:
        if isinstance(bar, ProgressBar):
            bar.close()
    # The reply comes once the server has stored the whole file and checked its digest.
    try:
        with anyio.fail_after(REQUEST_TIMEOUT):
            reply = _check_reply_resumable(await reply_future)
    except TimeoutError:
        raise CliError(f"no reply from the server after uploading {local}") from None
    name = str(stream.digest_name)
    # A server before blake3 replied with the value under "sha256" whatever its algorithm.
    confirmed = reply.get(name, reply.get("sha256"))
    if confirmed is None or confirmed != stream.digest:
        raise CliError(f"the server did not confirm the digest of {remote}")
    seconds = time.monotonic() - started
    return Transfer(remote, info.st_size, seconds, whole.hexdigest(), offset, checked=name)
