"""The ``sio-stream`` command: a loopback demo, a small file server, and its client.

``sio-stream demo`` measures a real transfer (python-socketio server and client over a
websocket on 127.0.0.1); ``serve``/``ls``/``get``/``put`` share files from one directory.
Every command needs aiohttp (python-socketio's async server and client transport): install
``sio-stream[server]``.

Application events of the file server (all acks; an error is ``{"error": message}``):

* ``ls(path)`` -> ``{"entries": [{"name", "size", "dir", "mtime", "link"}, ...]}`` (``link``: a
  symbolic link, which stays inside the root or is not listed)
* ``mkdir(path)`` -> ``{}``: create one directory (its parent must exist; an existing one is fine)
* ``get(path[, {"offset", "size", "mtime", "prefix"}])`` -> ``(stream, {"name", "size", "mtime",
  "offset"})``: the server writes the file (from ``offset``, once the client's stored prefix
  is checked: same size and mtime, same sha256 of the first ``offset`` bytes) into the stream it
  returns in the ack; the stream's end carries the sha256 of what it sent (``digest`` feature).
* ``put-status({"path", "size", "mtime"[, "restart"]})`` -> ``{"transfer", "offset", "prefix"}``:
  the upload of ``path`` this token left unfinished (or a new one): its transfer id, the bytes
  stored, and their sha256.
* ``put(stream, {"path", "size", "mtime", "transfer", "offset"})`` -> ``{"size", "sha256"}`` once
  the file is stored and its digest checked. (Without ``transfer``: a one-shot upload.)

Refusals carry a ``code`` besides the message: ``changed``, ``prefix-mismatch``,
``offset-beyond-size``, ``offset-mismatch``, ``unknown-transfer``, ``in-use``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import aiofiles
import aiofiles.os
import anyio
import anyio.abc
import socketio
from anyio.streams.buffered import BufferedByteReceiveStream

from .. import _access, _tree
from .._core import FEATURE_DIGEST
from .._errors import IntegrityError, StreamError, peer_message
from .._files import Progress, ResumeError, prefix_digest, receive_file, send_file
from .._progress import ProgressBar, format_rate, format_size
from .._socket import StreamSocket, ss
from .._stream import create_stream

PROG = "sio-stream"
DEFAULT_PORT = 8765
#: Token read when ``--token`` is not given (keeps it out of the process list).
TOKEN_ENV = "SIO_STREAM_TOKEN"
#: Seconds to wait for a connection or a non-transfer ack: generous, a local server answers in ms.
REQUEST_TIMEOUT = 30.0


#: Unfinished uploads one token may keep on the server at once (see put-status).
MAX_UNFINISHED_UPLOADS = 1000


class CliError(Exception):
    """An expected failure: printed as one line, exit status 1."""


class _Refused(Exception):
    """A request the file server refuses; its message goes back to the client (with ``code``)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code

    def reply(self) -> dict[str, Any]:
        return {"error": str(self), "code": self.code} if self.code else {"error": str(self)}


#: Hidden directory of the served root that holds unfinished uploads (``ID.part``, ``ID.json``).
PARTIAL_DIR = ".sio-stream-partial"
#: Unfinished uploads untouched for this long are removed (``serve --expire``): a day, so a
#: client can come back after a night, while abandoned ones do not fill the disk.
DEFAULT_EXPIRE = 24 * 3600.0
#: An upload whose stream moved no data for this long may be taken over by a new connection of
#: the same token resuming it (a half-open connection the server has not noticed yet); a live
#: one is never raced: the second client is refused.
DEFAULT_STALE_AFTER = 15.0
_TRANSFER_RE = re.compile(r"^[0-9a-f]{32}$")


def _token_key(token: str | None) -> str:
    # Stored with each unfinished upload: only the token that started it may continue it.
    return hashlib.sha256((token or "").encode()).hexdigest()


@dataclass
class _Holder:
    """The connection writing an upload now (one at a time per transfer id)."""

    sid: str
    stream: Any
    last: float
    finished: anyio.Event


# -- small helpers ---------------------------------------------------------------------------------
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"64M"`` -> 67108864. Suffixes K, M, G, T are binary (KiB, MiB, ...); none means bytes."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 8M, 256MiB, 1G, 1000)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def normalize_url(url: str) -> str:
    return url if "://" in url else f"http://{url}"


async def sha256_file(path: Path) -> str:
    """The file's sha256, computed in a worker thread (hashlib releases the GIL)."""

    def digest() -> str:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()

    return await anyio.to_thread.run_sync(digest)


def _require_aiohttp() -> None:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise CliError("the sio-stream command needs aiohttp: pip install 'sio-stream[server]'") from None


# -- the file server -------------------------------------------------------------------------------
class FileServer:
    """Serves ``root``: list, download and upload, confined to ``root``.

    Paths are relative, ``/``-separated; absolute paths, ``..`` and anything that resolves
    (through symlinks) outside ``root`` are refused. With ``token``, clients must connect
    with ``auth={"token": token}``. ``max_upload`` caps each upload in bytes.
    """

    def __init__(
        self,
        root: Path,
        *,
        token: str | None = None,
        max_upload: int | None = None,
        expire: float = DEFAULT_EXPIRE,
        stale_after: float = DEFAULT_STALE_AFTER,
        async_mode: str = "aiohttp",
    ) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise CliError(f"not a directory: {root}")
        self.token = token
        self.max_upload = max_upload
        self.expire = expire
        self.stale_after = stale_after
        self.partial_dir = self.root / PARTIAL_DIR
        # No gzip of long-polling responses: they carry file data as base64, which hardly
        # compresses, and gzip held a browser's polling download to a third of its rate.
        self.sio = socketio.AsyncServer(async_mode=async_mode, http_compression=False)
        self.streams = ss(self.sio)
        self._transfers: anyio.abc.TaskGroup | None = None
        self._holders: dict[str, _Holder] = {}
        self.sio.on("connect", self._on_connect)
        self.streams.on("ls", self._on_ls)
        self.streams.on("get", self._on_get)
        self.streams.on("put", self._on_put)
        self.streams.on("put-status", self._on_put_status)
        self.streams.on("mkdir", self._on_mkdir)

    @asynccontextmanager
    async def running(self, host: str, port: int) -> AsyncIterator[str]:
        """Listen on ``host:port`` (0: a free port); yield the URL; stop on exit."""
        from aiohttp import web

        from .. import _web

        app = web.Application()
        _web.attach_socketio(app, self.sio)
        _web.add_page(app, {"token": self.token is not None, "maxUpload": self.max_upload})
        # Open websockets (a browser tab reconnecting as the server stops) hold aiohttp's cleanup
        # for its whole shutdown timeout (60 s by default): transfers were already cancelled.
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            try:
                await site.start()
            except OSError as exc:
                raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            async with self.serving():
                yield f"http://{host}:{bound}"
        finally:
            with anyio.CancelScope(shield=True):
                await self.sio.shutdown()
                await runner.cleanup()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Run downloads while inside; cancel the ones still running on exit. :meth:`running`
        does this for aiohttp; an ASGI host (``async_mode="asgi"``, :func:`asgi_app`) enters it
        around its server."""
        async with anyio.create_task_group() as transfers:
            self._transfers = transfers
            try:
                yield
            finally:
                transfers.cancel_scope.cancel()
                self._transfers = None

    def asgi_app(self) -> Any:
        """The ASGI application of an ``async_mode="asgi"`` server: Socket.IO at ``/socket.io/``
        and the page. Run it under uvicorn inside :meth:`serving`, with
        ``ws_per_message_deflate=False`` (see ``_web._without_compression``)."""
        from .. import _web

        page = _web.asgi_page({"token": self.token is not None, "maxUpload": self.max_upload})
        return socketio.ASGIApp(self.sio, other_asgi_app=page)

    # -- confinement ---------------------------------------------------------------------------------
    async def resolve(self, name: Any) -> Path:
        """The real path of ``name`` inside the root; raises :class:`_Refused` otherwise."""
        if not isinstance(name, str):
            raise _Refused(f"bad path: {name!r}")
        if "\x00" in name:
            raise _Refused("bad path: contains a NUL byte")
        if PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor:
            raise _Refused(f"refused path {name!r}: absolute paths are not allowed")
        relative = PurePosixPath(name)
        if ".." in relative.parts:
            raise _Refused(f"refused path {name!r}: '..' is not allowed")
        resolved = Path(await anyio.Path(self.root / relative).resolve())
        if not resolved.is_relative_to(self.root):
            raise _Refused(f"refused path {name!r}: it leads outside the served directory")
        # Checked on the resolved path, without case: a symbolic link to the directory of
        # unfinished uploads, or another spelling of it on a case-insensitive file system,
        # must not reach it either.
        inside = resolved.relative_to(self.root).parts
        if inside and inside[0].casefold() == PARTIAL_DIR.casefold():
            raise _Refused(f"refused path {name!r}: unfinished uploads are not served")
        return resolved

    # -- handlers ------------------------------------------------------------------------------------
    def _request(self, sid: str, command: str, path: Any) -> _access.Request:
        """Start an access-log line (only accepted connections get this far: the token was ok)."""
        address = _access.client_address(self.sio.get_environ(sid))
        return _access.Request(address, sid, "none" if self.token is None else "ok", command, path)

    async def _on_connect(self, sid: str, environ: Any, auth: Any = None) -> None:
        if self.token is None:
            return
        given = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self.token.encode()):
            _access.refused_connection(_access.client_address(environ), sid, "invalid token")
            raise socketio.exceptions.ConnectionRefusedError("invalid token")

    async def _on_ls(self, sid: str, name: Any = "") -> dict[str, Any]:
        request = self._request(sid, "ls", name)
        reply = await self._list(name)
        if "error" in reply:
            request.refused(reply["error"])
        else:
            count = len(reply["entries"])
            request.finish(f"ok ({count} {'entry' if count == 1 else 'entries'})")
        return reply

    async def _list(self, name: Any) -> dict[str, Any]:
        try:
            directory = await self.resolve(name or ".")
            entries: list[dict[str, Any]] = []
            async for child in anyio.Path(directory).iterdir():
                if (child.name.startswith(".") and child.name.endswith(".part")) or (
                    child.name == PARTIAL_DIR and directory == self.root
                ):
                    continue  # an upload in progress
                try:
                    if not Path(await child.resolve()).is_relative_to(self.root):
                        continue  # a symlink out of the directory: not ours to describe
                    info = await child.stat()
                    link = await child.is_symlink()
                except OSError:
                    continue  # a dangling or looping symlink
                is_dir = stat.S_ISDIR(info.st_mode)
                entries.append(
                    {
                        "name": child.name,
                        "size": 0 if is_dir else info.st_size,
                        "dir": is_dir,
                        "mtime": info.st_mtime,
                        "link": link,
                    }
                )
        except _Refused as exc:
            return {"error": str(exc)}
        except NotADirectoryError:
            return {"error": f"not a directory: {name}"}
        except FileNotFoundError:
            return {"error": f"no such directory: {name}"}
        entries.sort(key=lambda e: e["name"])
        return {"entries": entries}

    async def _on_mkdir(self, sid: str, name: Any = None) -> dict[str, Any]:
        request = self._request(sid, "mkdir", name)
        try:
            path = await self.resolve(name)
            if path == self.root:
                raise _Refused(f"{name!r} is the served directory")
            try:
                await anyio.Path(path).mkdir()
            except FileExistsError:
                if not await anyio.Path(path).is_dir():
                    raise _Refused(f"{name} exists and is not a directory") from None
            except FileNotFoundError:
                raise _Refused(f"no such directory: {PurePosixPath(str(name)).parent}") from None
        except _Refused as exc:
            request.refused(str(exc))
            return exc.reply()
        except OSError as exc:
            request.failed(exc)
            return {"error": f"cannot create {name}: {exc.strerror or exc}"}
        request.finish("ok")
        return {}

    async def _on_get(self, sid: str, name: Any = None, resume: Any = None) -> tuple[Any, dict[str, Any]]:
        request = self._request(sid, "get", name)
        try:
            path = await self.resolve(name)
            try:
                info = await anyio.Path(path).stat()
            except FileNotFoundError:
                raise _Refused(f"no such file: {name}") from None
            if not stat.S_ISREG(info.st_mode):
                raise _Refused(f"not a file: {name}")
            offset = await self._resume_offset(path, info, resume) if resume is not None else 0
        except _Refused as exc:
            request.refused(str(exc))
            return None, exc.reply()
        except OSError as exc:
            request.failed(exc)
            return None, {"error": f"cannot read {name}: {exc.strerror or exc}"}
        stream = create_stream()
        assert self._transfers is not None
        # The ack attaches the stream as this handler returns; the task starts after that.
        self._transfers.start_soon(self._send, stream, path, request, offset)
        reply = {"name": path.name, "size": info.st_size, "mtime": info.st_mtime_ns, "offset": offset}
        return stream, reply

    async def _resume_offset(self, path: Path, info: os.stat_result, resume: Any) -> int:
        """Check a client's stored prefix against ``path``; the offset to send from."""
        if not isinstance(resume, dict):
            raise _Refused("bad resume request")
        offset, prefix = resume.get("offset"), resume.get("prefix")
        if (
            not isinstance(offset, int)
            or isinstance(offset, bool)
            or offset < 0
            or not isinstance(prefix, str)
        ):
            raise _Refused("bad resume request")
        if resume.get("size") != info.st_size or resume.get("mtime") != info.st_mtime_ns:
            raise _Refused("the file changed since the partial download began", "changed")
        if offset > info.st_size:
            raise _Refused(
                f"resume offset {offset} is beyond the file's {info.st_size} bytes", "offset-beyond-size"
            )
        if await prefix_digest(path, offset) != prefix:
            raise _Refused("the stored part is not a prefix of the file", "prefix-mismatch")
        return offset

    async def _send(self, stream: Any, path: Path, request: _access.Request, offset: int = 0) -> None:
        moved = 0

        def count(done: int, total: int | None) -> None:
            nonlocal moved
            moved = done

        try:
            done = await send_file(stream, path, offset=offset, progress=count)
        except (StreamError, OSError) as exc:  # the client went away or the file failed
            # The bytes handed to the stream before it broke: what a resume may send again.
            request.failed(exc, moved or None)
        else:
            request.finish("ok", done)
        finally:
            request.finish("interrupted")  # the server is stopping (a no-op after the above)

    async def _on_put(self, sid: str, stream: Any = None, meta: Any = None) -> dict[str, Any]:
        request = self._request(sid, "put", meta.get("path") if isinstance(meta, dict) else None)
        if stream is None or not isinstance(meta, dict):
            request.refused("bad put request")
            return {"error": "bad put request"}
        name = meta.get("path")
        size = meta.get("size")
        try:
            path = await self.resolve(name)
            if not isinstance(size, int) or size < 0:
                raise _Refused("bad put request: no size")
            if self.max_upload is not None and size > self.max_upload:
                raise _Refused(f"{name} is larger than the server's limit of {self.max_upload} bytes")
            if await anyio.Path(path).is_dir():
                raise _Refused(f"{name} is a directory")
            if not await anyio.Path(path.parent).is_dir():
                raise _Refused(f"no such directory: {PurePosixPath(str(name)).parent}")
        except _Refused as exc:
            stream.destroy(str(exc))
            request.refused(str(exc))
            return {"error": str(exc)}
        if "transfer" in meta:
            return await self._put_resumable(sid, stream, meta, path, request)
        # A sio_stream client's digest travels with the stream's end; for others (JavaScript,
        # the web page) the server hashes what it stores, so every reply carries a sha256.
        hasher = None if _sends_digest(stream) else hashlib.sha256()
        try:
            done = await receive_file(stream, path, size=size, max_bytes=self.max_upload, hasher=hasher)
        except (StreamError, OSError) as exc:
            request.failed(exc)
            return {"error": f"upload of {name} failed: {peer_message(exc)}"}
        request.finish("ok", done)
        return {"size": done, "sha256": stream.digest or (hasher.hexdigest() if hasher else None)}

    # -- resumable uploads -----------------------------------------------------------------------
    def _partial(self, transfer: str) -> tuple[Path, Path]:
        return self.partial_dir / f"{transfer}.part", self.partial_dir / f"{transfer}.json"

    def _records_of(self, key: str) -> list[tuple[str, dict[str, Any]]]:
        """The unfinished uploads of the token with this key (in a worker thread)."""
        found = []
        for meta_path in self.partial_dir.glob("*.json"):
            try:
                record = self._read_record(meta_path.stem)
            except _Refused:
                continue
            if record.get("token") == key:
                found.append((meta_path.stem, record))
        return found

    def _read_record(self, transfer: Any) -> dict[str, Any]:
        """The record of an unfinished upload of this server's token; refused when the id is
        malformed, unknown, expired or another token's (one message: ids are not probed)."""
        unknown = _Refused(f"unknown or expired transfer {transfer!r}", "unknown-transfer")
        if not isinstance(transfer, str) or not _TRANSFER_RE.match(transfer):
            raise unknown
        data, meta = self._partial(transfer)
        try:
            record = json.loads(meta.read_text())
            touched = max(meta.stat().st_mtime, data.stat().st_mtime if data.exists() else 0)
        except (OSError, ValueError):
            raise unknown from None
        if not isinstance(record, dict) or time.time() - touched > self.expire:
            raise unknown
        return record

    def expire_partials(self) -> int:
        """Remove unfinished uploads untouched for ``expire`` seconds (none being written);
        return how many."""
        removed = 0
        try:
            metas = list(self.partial_dir.glob("*.json"))
        except OSError:
            return 0
        now = time.time()
        for meta in metas:
            transfer = meta.stem
            if transfer in self._holders:
                continue
            data = meta.with_suffix(".part")
            try:
                touched = max(meta.stat().st_mtime, data.stat().st_mtime if data.exists() else 0)
                if now - touched > self.expire:
                    data.unlink(missing_ok=True)
                    meta.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    async def _on_put_status(self, sid: str, meta: Any = None) -> dict[str, Any]:
        request = self._request(sid, "put-status", meta.get("path") if isinstance(meta, dict) else None)
        try:
            reply = await self._put_status(sid, meta)
        except _Refused as exc:
            request.refused(str(exc))
            return exc.reply()
        request.finish(f"ok (offset {reply['offset']})")
        return reply

    async def _put_status(self, sid: str, meta: Any) -> dict[str, Any]:
        if not isinstance(meta, dict):
            raise _Refused("bad put-status request")
        name, size, mtime = meta.get("path"), meta.get("size"), meta.get("mtime")
        path = await self.resolve(name)
        if await anyio.Path(path).is_dir():
            raise _Refused(f"{name} is a directory")
        if not await anyio.Path(path.parent).is_dir():
            raise _Refused(f"no such directory: {PurePosixPath(str(name)).parent}")
        if not isinstance(size, int) or size < 0 or not isinstance(mtime, int):
            raise _Refused("bad put-status request: size and mtime are needed")
        if self.max_upload is not None and size > self.max_upload:
            raise _Refused(f"{name} is larger than the server's limit of {self.max_upload} bytes")
        await anyio.to_thread.run_sync(self.expire_partials)
        key = _token_key(self.token)
        # Read in a worker thread: every record is a file, and this runs on the event loop.
        records = await anyio.to_thread.run_sync(self._records_of, key)
        for transfer, record in records:
            if record.get("path") != name:
                continue
            if meta.get("restart"):
                previous = self._check_free(transfer, sid, takeover=True)
                if previous is not None:
                    await previous.finished.wait()  # its file is closed: nothing writes what we delete
                for leftover in self._partial(transfer):
                    leftover.unlink(missing_ok=True)
                continue
            if record.get("size") != size or record.get("mtime") != mtime:
                raise _Refused(f"{name} changed since its upload began (use --restart)", "changed")
            data, _ = self._partial(transfer)
            stored = data.stat().st_size if data.exists() else 0
            # No byte stored yet (asked twice before a put): the empty prefix, with no file to read.
            prefix = await prefix_digest(data, stored) if stored else hashlib.sha256().hexdigest()
            return {"transfer": transfer, "offset": stored, "prefix": prefix}
        if len(records) >= MAX_UNFINISHED_UPLOADS:
            # Each costs a record on disk and a read on every put-status: a token may not pile
            # them up without end (they expire after --expire seconds untouched).
            raise _Refused(
                f"{len(records)} unfinished uploads already wait for this token: finish or restart "
                "some, or wait for them to expire",
                "too-many-unfinished",
            )
        transfer = secrets.token_hex(16)
        await anyio.Path(self.partial_dir).mkdir(exist_ok=True)
        record = {"path": name, "size": size, "mtime": mtime, "token": key, "created": time.time()}
        _, meta_path = self._partial(transfer)
        await anyio.Path(meta_path).write_text(json.dumps(record))
        return {"transfer": transfer, "offset": 0, "prefix": hashlib.sha256().hexdigest()}

    def _check_free(self, transfer: str, sid: str, *, takeover: bool) -> _Holder | None:
        """The holder to take over (``None``: free); refused while a live client writes it."""
        holder = self._holders.get(transfer)
        if holder is None:
            return None
        live = self.sio.manager.is_connected(holder.sid, "/")
        if live and time.monotonic() - holder.last < self.stale_after:
            raise _Refused(f"transfer {transfer} is being written by another connection", "in-use")
        if not takeover:
            raise _Refused(f"transfer {transfer} is being written by another connection", "in-use")
        holder.stream.destroy("upload taken over by another connection")
        return holder

    async def _put_resumable(
        self, sid: str, stream: Any, meta: dict[str, Any], path: Path, request: _access.Request
    ) -> dict[str, Any]:
        transfer, offset, size = meta.get("transfer"), meta.get("offset"), meta.get("size")
        try:
            record = self._read_record(transfer)
            assert isinstance(transfer, str)
            if record.get("token") != _token_key(self.token) or record.get("path") != meta.get("path"):
                raise _Refused(f"unknown or expired transfer {transfer!r}", "unknown-transfer")
            if record.get("size") != size or record.get("mtime") != meta.get("mtime"):
                raise _Refused("the file changed since its upload began (use --restart)", "changed")
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise _Refused("bad put request: no offset")
            if not isinstance(size, int) or offset > size:
                raise _Refused(f"resume offset {offset} is beyond the file's size", "offset-beyond-size")
            previous = self._check_free(transfer, sid, takeover=True)
            holder = _Holder(sid, stream, time.monotonic(), anyio.Event())
            self._holders[transfer] = holder
        except _Refused as exc:
            stream.destroy(str(exc))
            request.refused(str(exc))
            return exc.reply()
        data, meta_path = self._partial(transfer)
        try:
            if previous is not None:
                await previous.finished.wait()  # its file is closed: nothing races our appends
            stored = (await anyio.Path(data).stat()).st_size if await anyio.Path(data).exists() else 0
            if offset > stored:
                raise _Refused(
                    f"resume offset {offset} is beyond the {stored} bytes stored", "offset-beyond-size"
                )
            if offset != stored:
                raise _Refused(f"resume offset {offset} is not the {stored} bytes stored", "offset-mismatch")

            def moved(done: int, total: int | None) -> None:
                holder.last = time.monotonic()

            done = await receive_file(
                stream, path, partial=data, offset=offset, size=size - offset, progress=moved
            )
            await anyio.Path(meta_path).unlink(missing_ok=True)
        except _Refused as exc:
            stream.destroy(str(exc))
            request.refused(str(exc))
            return exc.reply()
        except IntegrityError as exc:
            request.failed(exc)
            return {"error": f"upload of {meta.get('path')} failed: {peer_message(exc)}", "code": "integrity"}
        except (StreamError, OSError) as exc:
            request.failed(exc)
            return {"error": f"upload of {meta.get('path')} failed: {peer_message(exc)}"}
        finally:
            if self._holders.get(transfer) is holder:
                del self._holders[transfer]
            holder.finished.set()
        request.finish("ok", done)
        return {"size": offset + done, "sha256": stream.digest, "offset": offset}


# -- the client ------------------------------------------------------------------------------------
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
    sha256: str
    offset: int = 0  # bytes already stored from an earlier, interrupted transfer
    mtime: int | None = None  # of the server's file (a download), in ns

    def summary(self, verb: str) -> str:
        moved = self.size - self.offset
        resumed = f", resumed at {self.offset} bytes" if self.offset else ""
        return (
            f"{verb} {self.name}: {format_size(self.size)} ({self.size} bytes) in {self.seconds:.2f} s, "
            f"{format_rate(moved, self.seconds)}{resumed}, sha256 ok ({self.sha256[:16]}...)"
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
        resume = {
            "offset": offset,
            "size": record.get("size"),
            "mtime": record.get("mtime"),
            "prefix": await prefix_digest(data, offset),
        }
    args = (remote, resume) if resume is not None else (remote,)
    reply = await streams.call("get", *args, timeout=REQUEST_TIMEOUT)
    if not isinstance(reply, tuple) or len(reply) != 2:
        raise CliError(f"unexpected reply from the server: {reply!r}")
    stream, info = reply[0], _check_reply_resumable(reply[1])
    size, offset = int(info["size"]), int(info.get("offset", 0))
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
    return Transfer(remote, size, time.monotonic() - started, stream.digest, offset, mtime)


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
    if offset and await prefix_digest(local, offset) != status["prefix"]:
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
            stream, local, offset=offset, progress=lambda done, total: bar(offset + done, info.st_size)
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
    if reply.get("sha256") is None or reply.get("sha256") != stream.digest:
        raise CliError(f"the server did not confirm the digest of {remote}")
    return Transfer(remote, info.st_size, time.monotonic() - started, str(stream.digest), offset)


# -- commands --------------------------------------------------------------------------------------
async def cmd_serve(args: argparse.Namespace) -> None:
    server = FileServer(Path(args.dir), token=args.token, max_upload=args.max_upload, expire=args.expire)
    if not args.quiet:
        _access.log_to_stderr()
    async with server.running(args.host, args.port) as url:
        auth = " (token required)" if args.token else ""
        print(f"serving {server.root} at {url}{auth}; Ctrl-C to stop", flush=True)
        await anyio.sleep_forever()


async def cmd_ls(args: argparse.Namespace) -> None:
    async with connect(args.url, args.token) as streams:
        entries = await list_remote(streams, args.remote)
    for entry in entries:
        if not isinstance(entry, dict):
            raise CliError(f"unexpected entry from the server: {entry!r}")
        is_dir = entry.get("dir") is True
        name = f"{_tree.printable(str(entry.get('name')))}{'/' if is_dir else ''}"
        size = entry.get("size")
        shown = "-" if is_dir else format_size(size) if isinstance(size, int) else "?"
        if not args.long:
            print(f"{shown:>12}  {name}")
            continue
        kind = "d" if is_dir else "l" if entry.get("link") is True else "-"
        exact = "-" if is_dir else str(size) if isinstance(size, int) else "?"
        mtime = entry.get("mtime")
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime))
            if isinstance(mtime, int | float) and not isinstance(mtime, bool) and 0 <= mtime < 2**34
            else "?"
        )
        print(f"{kind} {exact:>14} {shown:>10}  {when}  {name}")


def _local_target(remote: str, local: str | None) -> Path:
    name = PurePosixPath(remote).name
    if local is None:
        if not name:
            raise CliError(f"cannot name a local file after {remote!r}: give LOCAL")
        return Path(name)
    path = Path(local)
    return path / name if path.is_dir() else path


async def cmd_get(args: argparse.Namespace) -> None:
    paths: list[str] = args.remote
    if not args.recursive and len(paths) <= 2:  # REMOTE [LOCAL]: one file, as named
        await _get_one(args, paths[0], paths[1] if len(paths) == 2 else None)
        return
    remotes, target = (paths, ".") if len(paths) == 1 else (paths[:-1], paths[-1])
    if not await anyio.Path(target).is_dir():
        raise CliError(f"not a directory: {target} (several files go into a directory)")
    async with connect(args.url, args.token) as streams:
        items = await _plan_get(streams, remotes, recursive=args.recursive, max_files=args.max_files)
        await _get_many(streams, items, Path(target), args)


async def _get_one(args: argparse.Namespace, remote: str, local_name: str | None) -> None:
    local = _local_target(remote, local_name)
    if not await anyio.Path(local.parent).is_dir():
        raise CliError(f"no such directory: {local.parent}")
    async with connect(args.url, args.token) as streams:
        transfer = await download(
            streams, remote, local, show_progress=args.progress, restart=args.restart, url=args.url
        )
    print(transfer.summary(f"received {local} <-"))


@dataclass
class _Item:
    """One entry of a several-file transfer: a file, or a directory to create."""

    source: str  # a server path (get) or a local path (put)
    relative: PurePosixPath  # under the target directory
    is_dir: bool = False
    size: Any = None  # as listed (get: untrusted)
    mtime: Any = None
    problem: str | None = None  # refused: reported, counted as failed
    note: str | None = None  # not transferred by design (a symbolic link): reported, not a failure


def _join(directory: str, name: str) -> str:
    return name if directory in ("", ".") else f"{directory.rstrip('/')}/{name}"


async def _plan_get(
    streams: StreamSocket, remotes: list[str], *, recursive: bool, max_files: int
) -> list[_Item]:
    """What ``get`` will fetch, from the server's listings, checked before anything is written.

    A listing is untrusted: each name must be one safe path component (:func:`_tree.check_name`),
    unique but for case (:class:`_tree.CaseGuard`); symbolic links to directories are not
    followed (a loop, or a tree twice); more than ``max_files`` entries stop the command."""
    guard = _tree.CaseGuard()
    items: list[_Item] = []
    parents: dict[str, list[Any]] = {}
    pending: list[tuple[str, PurePosixPath]] = []
    seen = 0

    async def listing(directory: str) -> list[Any]:
        entries = _check_reply(await streams.call("ls", directory, timeout=REQUEST_TIMEOUT)).get("entries")
        if not isinstance(entries, list):
            raise CliError(f"unexpected listing of {directory!r} from the server")
        return entries

    def add(source: str, relative: PurePosixPath, entry: Any) -> None:
        if not isinstance(entry, dict) or not isinstance(entry.get("dir", False), bool):
            items.append(_Item(source, relative, problem=f"bad entry in the listing: {entry!r}"[:200]))
            return
        try:
            guard.claim(relative)
        except _tree.Refused as exc:
            items.append(_Item(source, relative, problem=str(exc)))
            return
        if entry.get("dir"):
            if not recursive:
                items.append(_Item(source, relative, problem=f"{source} is a directory (-r gets it)"))
            elif entry.get("link") is True:
                note = f"{source} is a symbolic link to a directory: not followed"
                items.append(_Item(source, relative, is_dir=True, note=note))
            else:
                pending.append((source, relative))
            return
        items.append(_Item(source, relative, size=entry.get("size"), mtime=entry.get("mtime")))

    for remote in remotes:
        path = PurePosixPath(remote)
        if not path.name:  # the root (or "/", which the server refuses): its entries, in place
            if recursive and not path.is_absolute():
                pending.append((".", PurePosixPath()))
            else:
                items.append(_Item(remote, PurePosixPath(), problem=f"{remote!r} is not a file"))
            continue
        try:
            _tree.check_name(path.name)
        except _tree.Refused as exc:
            items.append(_Item(remote, PurePosixPath(), problem=str(exc)))
            continue
        parent = str(path.parent)
        if parent not in parents:
            try:
                parents[parent] = await listing(parent)
            except CliError:
                parents[parent] = []  # the get itself says what is wrong
        found = [e for e in parents[parent] if isinstance(e, dict) and e.get("name") == path.name]
        add(remote, PurePosixPath(path.name), found[0] if found else {})

    while pending:
        remote_dir, relative = pending.pop(0)
        entries = await listing(remote_dir)
        seen += len(entries) + 1
        if seen > max_files:
            raise CliError(
                f"more than {max_files} entries under {', '.join(remotes)}: nothing fetched "
                "(--max-files raises the limit)"
            )
        items.append(_Item(remote_dir, relative, is_dir=True))
        for entry in entries:
            name = entry.get("name") if isinstance(entry, dict) else entry
            try:
                checked = _tree.check_name(name)
            except _tree.Refused as exc:
                items.append(_Item(_join(remote_dir, str(name)), relative, problem=str(exc)))
                continue
            add(_join(remote_dir, checked), relative / checked, entry)
    return items


class _Tally:
    """Counts for the summary line of several files."""

    def __init__(self, items: list[_Item]) -> None:
        self.files = [i for i in items if not i.is_dir and i.problem is None and i.note is None]
        self.total = sum(i.size for i in self.files if isinstance(i.size, int) and i.size > 0)
        self.arrived = self.failed = self.skipped = self.moved = 0
        self.started = time.monotonic()

    def fail(self, message: str) -> None:
        self.failed += 1
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)

    def finish(self, verb: str) -> None:
        seconds = time.monotonic() - self.started
        count = self.arrived + self.failed
        line = (
            f"{verb} {self.arrived} of {count} files, {format_size(self.moved)} in {seconds:.2f} s, "
            f"{format_rate(self.moved, seconds)}"
        )
        if self.skipped:
            line += f", {self.skipped} skipped"
        print(line + (f", {self.failed} failed" if self.failed else ", all sha256 ok"), flush=True)
        if self.failed:
            raise CliError(f"{self.failed} of {count} files did not arrive (see above)")


async def _get_many(
    streams: StreamSocket, items: list[_Item], target: Path, args: argparse.Namespace
) -> None:
    tally = _Tally(items)
    progress = _tree.TreeProgress(len(tally.files), tally.total, enabled=args.progress)
    for item in items:
        shown = _tree.printable(item.source)
        if item.problem is not None:
            tally.fail(item.problem)
            continue
        if item.note is not None:
            tally.skipped += 1
            print(f"{PROG}: skipped: {item.note}", file=sys.stderr, flush=True)
            continue
        try:
            if item.is_dir:  # refused through a symbolic link or a file in the way
                _tree.make_dirs(target, item.relative)
                continue
            local = _tree.local_target(target, item.relative)
            if await anyio.Path(local).exists():
                if _tree.up_to_date(local, item.size, item.mtime):
                    tally.arrived += 1
                    print(f"up to date {local} <- {shown}", flush=True)
                    continue
                if not args.overwrite:
                    raise _tree.Refused(f"{local} exists and differs from {shown} (--overwrite replaces it)")
            for extra in partial_paths(local):
                if await anyio.Path(extra).is_symlink():
                    raise _tree.Refused(f"{extra} is a symbolic link (not followed)")
            _tree.make_dirs(target, item.relative.parent)
            report = progress.file(item.source, item.size)
            transfer = await download(
                streams,
                item.source,
                local,
                show_progress=False,
                restart=args.restart,
                url=args.url,
                progress=report,
            )
            progress.done(transfer.size)
            if transfer.mtime is not None:  # lets a later run see it is up to date
                os.utime(local, ns=(transfer.mtime, transfer.mtime))
        except (CliError, _tree.Refused, StreamError, OSError) as exc:
            progress.clear()
            tally.fail(str(exc))
            continue
        tally.arrived += 1
        tally.moved += transfer.size - transfer.offset
        print(transfer.summary(f"received {local} <-"), flush=True)
    tally.finish("received")


async def cmd_put(args: argparse.Namespace) -> None:
    paths: list[str] = args.local
    if not args.recursive and len(paths) <= 2:  # LOCAL [REMOTE]: one file, as named
        local = Path(paths[0])
        remote = paths[1] if len(paths) == 2 else local.name
        async with connect(args.url, args.token) as streams:
            transfer = await upload(streams, local, remote, show_progress=args.progress, restart=args.restart)
        print(transfer.summary(f"sent {local} ->"))
        return
    sources, remote_dir = (paths, "") if len(paths) == 1 else (paths[:-1], paths[-1])
    items = _plan_put(sources, recursive=args.recursive, max_files=args.max_files)
    async with connect(args.url, args.token) as streams:
        await list_remote(streams, remote_dir)  # it must be a directory
        await _put_many(streams, items, remote_dir, args)


def _plan_put(sources: list[str], *, recursive: bool, max_files: int) -> list[_Item]:
    """What ``put`` will send: the files named, and with ``recursive`` the trees of the
    directories named (symbolic links inside them are not followed, only reported)."""
    items: list[_Item] = []
    seen = 0
    for source in sources:
        top = Path(source)
        name = Path(os.path.abspath(source)).name
        if not top.is_dir():
            items.append(_Item(source, PurePosixPath(name)))  # upload() says if it is unreadable
            continue
        if not recursive:
            items.append(_Item(source, PurePosixPath(name), problem=f"{source} is a directory (-r sends it)"))
            continue
        items.append(_Item(source, PurePosixPath(name), is_dir=True))
        for directory, dirs, files in os.walk(top, onerror=lambda exc: None):
            seen += len(dirs) + len(files)
            if seen > max_files:
                raise CliError(f"more than {max_files} entries under {source}: nothing sent (--max-files)")
            here = PurePosixPath(name, *Path(directory).relative_to(top).parts)
            dirs.sort()
            for child in [*dirs, *sorted(files)]:
                path = Path(directory, child)
                if path.is_symlink():
                    items.append(_Item(str(path), here / child, note=f"{path} is a symbolic link: not sent"))
                elif child in dirs:
                    items.append(_Item(str(path), here / child, is_dir=True))
                else:
                    items.append(_Item(str(path), here / child))
            dirs[:] = [d for d in dirs if not Path(directory, d).is_symlink()]
    return items


async def _put_many(
    streams: StreamSocket, items: list[_Item], remote_dir: str, args: argparse.Namespace
) -> None:
    tally = _Tally(items)
    for item in tally.files:
        with contextlib.suppress(OSError):
            item.size = (await anyio.Path(item.source).stat()).st_size
    tally.total = sum(i.size for i in tally.files if isinstance(i.size, int))
    progress = _tree.TreeProgress(len(tally.files), tally.total, enabled=args.progress)
    for item in items:
        remote = _join(remote_dir, str(item.relative))
        if item.problem is not None:
            tally.fail(item.problem)
            continue
        if item.note is not None:
            tally.skipped += 1
            print(f"{PROG}: skipped: {item.note}", file=sys.stderr, flush=True)
            continue
        try:
            if item.is_dir:
                _check_reply(await streams.call("mkdir", remote, timeout=REQUEST_TIMEOUT))
                continue
            transfer = await upload(
                streams,
                Path(item.source),
                remote,
                show_progress=False,
                restart=args.restart,
                progress=progress.file(item.source, item.size),
            )
            progress.done(transfer.size)
        except (CliError, StreamError, OSError) as exc:
            progress.clear()
            tally.fail(str(exc))
            continue
        tally.arrived += 1
        tally.moved += transfer.size - transfer.offset
        print(transfer.summary(f"sent {item.source} ->"), flush=True)
    tally.finish("sent")


async def _generate(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes (incompressible, fast to make); return their sha256."""
    rng = random.Random(0x5105)
    hasher = hashlib.sha256()
    block = 4 * 1024 * 1024
    async with aiofiles.open(path, "wb") as file:
        left = size
        while left:
            data = rng.randbytes(min(block, left))
            hasher.update(data)
            await file.write(data)
            left -= len(data)
    return hasher.hexdigest()


@asynccontextmanager
async def _child_server(directory: Path) -> AsyncIterator[str]:
    """``sio-stream serve DIR --port 0`` in a child process; yield the URL it prints."""
    command = [sys.executable, "-m", "sio_stream", "serve", str(directory), "--port", "0", "--quiet"]
    async with await anyio.open_process(command, stdout=subprocess.PIPE, stderr=None) as process:
        try:
            assert process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            try:
                with anyio.fail_after(REQUEST_TIMEOUT):
                    line = (await lines.receive_until(b"\n", 4096)).decode()
            except (anyio.EndOfStream, anyio.IncompleteRead, TimeoutError):
                raise CliError("demo: the server process did not start (see its error above)") from None
            match = re.search(r"http://\S+?(?=[;\s]|$)", line)
            if match is None:
                raise CliError(f"demo: unexpected output from the server process: {line!r}")
            yield match.group(0)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.terminate()
                await process.wait()


@asynccontextmanager
async def _demo_server(directory: Path, file: Path, digest: str, *, in_process: bool) -> AsyncIterator[str]:
    if in_process:
        server = FileServer(directory)
        async with server.running("127.0.0.1", 0) as url:
            print(f"demo: server at {url} in this process", file=sys.stderr, flush=True)
            yield url
    else:
        async with _child_server(directory) as url:
            print(f"demo: server at {url} in a child process", file=sys.stderr, flush=True)
            yield url


async def cmd_demo(args: argparse.Namespace) -> None:
    size: int = args.size
    with tempfile.TemporaryDirectory(prefix="sio-stream-demo-") as tmp:
        served, received = Path(tmp, "served"), Path(tmp, "received")
        await anyio.Path(served).mkdir()
        await anyio.Path(received).mkdir()
        name = "demo.bin"
        print(f"demo: generating {format_size(size)} of random data", file=sys.stderr, flush=True)
        digest = await _generate(served / name, size)
        demo_server = _demo_server(served, served / name, digest, in_process=args.in_process)
        async with demo_server as url, connect(url, None) as streams:
            transfer = await download(streams, name, received / name, show_progress=args.progress)
        # Check the file as stored, not only the bytes as they went by.
        if await sha256_file(received / name) != digest:
            raise CliError("demo: the received file's sha256 does not match")
        where = "in one process" if args.in_process else "between two processes"
        print(
            f"demo: {format_size(size)} ({size} bytes) server -> client over a websocket on 127.0.0.1 "
            f"({where}) in {transfer.seconds:.2f} s: {format_rate(size, transfer.seconds)}, sha256 verified"
        )
        # Free the disk space without blocking the loop on a large unlink.
        await aiofiles.os.remove(received / name)
        await aiofiles.os.remove(served / name)


# -- argument parsing and main ---------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Streams over Socket.IO: demo, file server, client."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    progress = argparse.ArgumentParser(add_help=False)
    progress.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw a progress bar on stderr (default: when stderr is a terminal)",
    )
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("url", metavar="URL", help="the server, e.g. http://127.0.0.1:8765")
    client.add_argument(
        "--token", default=os.environ.get(TOKEN_ENV), help=f"access token (default: ${TOKEN_ENV})"
    )
    restart = argparse.ArgumentParser(add_help=False)
    restart.add_argument(
        "--restart",
        action="store_true",
        help="discard an unfinished earlier transfer and start over (default: continue it)",
    )

    demo = commands.add_parser(
        "demo", parents=[progress], help="stream a generated file server -> client on 127.0.0.1"
    )
    demo.add_argument("--size", type=parse_size, default=256 * 1024 * 1024, help="file size (default 256M)")
    # The server runs as a child process by default: server and client then each have their
    # own interpreter (GIL) and core, as in real use; in one process both sides' Python work
    # shares one core and the figure says less about either.
    demo.add_argument(
        "--in-process",
        action="store_true",
        help="run the server in this process's event loop instead of a child `sio-stream serve`",
    )
    demo.set_defaults(run=cmd_demo)

    serve = commands.add_parser("serve", help="serve the files of DIR")
    serve.add_argument("dir", metavar="DIR")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"0 for a free port (default {DEFAULT_PORT})"
    )
    serve.add_argument(
        "--token", default=os.environ.get(TOKEN_ENV), help=f"require this token (default: ${TOKEN_ENV})"
    )
    serve.add_argument("--max-upload", type=parse_size, default=None, help="refuse larger uploads")
    serve.add_argument("--quiet", action="store_true", help="no access log (one line per request on stderr)")
    serve.add_argument(
        "--expire",
        type=float,
        default=DEFAULT_EXPIRE,
        help=f"seconds an unfinished upload is kept untouched (default {DEFAULT_EXPIRE:.0f})",
    )
    serve.set_defaults(run=cmd_serve)

    ls = commands.add_parser("ls", parents=[client], help="list a served directory")
    ls.add_argument("remote", metavar="REMOTE", nargs="?", default="", help="directory (default: the root)")
    ls.add_argument(
        "-l", "--long", action="store_true", help="type (d, l, -), exact size and modification time"
    )
    ls.set_defaults(run=cmd_ls)

    many = argparse.ArgumentParser(add_help=False)
    many.add_argument("-r", "--recursive", action="store_true", help="directories too, with their trees")
    many.add_argument(
        "--max-files",
        type=int,
        default=_tree.DEFAULT_MAX_FILES,
        help=f"stop before transferring when -r meets more entries (default {_tree.DEFAULT_MAX_FILES})",
    )
    get = commands.add_parser(
        "get",
        parents=[client, progress, restart, many],
        help="download files",
        usage="%(prog)s URL REMOTE [LOCAL] | URL REMOTE... LOCALDIR | -r URL REMOTE... [LOCALDIR]",
    )
    get.add_argument(
        "remote",
        metavar="REMOTE",
        nargs="+",
        help="REMOTE [LOCAL]: one file as LOCAL, a file or directory (default ./NAME); "
        "REMOTE... LOCALDIR (or -r): each into the existing LOCALDIR (default .)",
    )
    get.add_argument(
        "--overwrite",
        action="store_true",
        help="with several files: replace an existing local file that differs (default: refuse)",
    )
    get.set_defaults(run=cmd_get)

    put = commands.add_parser(
        "put",
        parents=[client, progress, restart, many],
        help="upload files",
        usage="%(prog)s URL LOCAL [REMOTE] | URL LOCAL... REMOTEDIR | -r URL LOCAL... [REMOTEDIR]",
    )
    put.add_argument(
        "local",
        metavar="LOCAL",
        nargs="+",
        help="LOCAL [REMOTE]: one file as REMOTE (default: NAME); "
        "LOCAL... REMOTEDIR (or -r): each into the server's REMOTEDIR (default: the root)",
    )
    put.set_defaults(run=cmd_put)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status (0 ok, 1 failure, 2 usage, 130 interrupted)."""
    args = _parser().parse_args(argv)
    try:
        _require_aiohttp()
        asyncio.run(args.run(args))
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except (StreamError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Ctrl-C: python-engineio's SIGINT handler drops the connection and asyncio cancels
        # the main task; which of the two surfaces first is a race, the outcome is the same.
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _sends_digest(stream: Any) -> bool:
    """True when the peer of ``stream`` negotiated ``digest`` (its end carries the sha256)."""
    return FEATURE_DIGEST in stream._owner.peer_features
