"""The file server of ``sio-stream serve``: one directory, listed, downloaded and uploaded over
sio_stream streams (python-socketio's async server; aiohttp or an ASGI host).

Application events of the file server (all acks; an error is ``{"error": message}``):

* ``ls(path)`` -> ``{"entries": [{"name", "size", "dir", "mtime", "link"}, ...]}`` (``link``: a
  symbolic link, which stays inside the root or is not listed)
* ``mkdir(path)`` -> ``{}``: create one directory (its parent must exist; an existing one is fine)
* ``get(path[, {"offset", "size", "mtime", "prefix"}])`` -> ``(stream, {"name", "size", "mtime",
  "offset"})``: the server writes the file (from ``offset``, once the client's stored prefix
  is checked: same size and mtime, same sha256 of the first ``offset`` bytes) into the stream it
  returns in the ack; the stream's end carries a digest of what it sent (``digest`` feature:
  blake3 toward a client that has it, else sha256).
* ``put-status({"path", "size", "mtime"[, "restart"]})`` -> ``{"transfer", "offset", "prefix"}``:
  the upload of ``path`` this token left unfinished (or a new one): its transfer id, the bytes
  stored, and their sha256.
* ``put(stream, {"path", "size", "mtime", "transfer", "offset"})`` -> ``{"size", NAME}`` once
  the file is stored and its digest checked, NAME being the algorithm of the digest the client
  sent with the stream's end (``"blake3"``, ``"sha256"``) and its value the hex digest; a client
  that sends none (JavaScript, the web page) gets the ``"sha256"`` the server computed.
  (Without ``transfer``: a one-shot upload.)

Refusals carry a ``code`` besides the message: ``changed``, ``prefix-mismatch``,
``offset-beyond-size``, ``offset-mismatch``, ``unknown-transfer``, ``in-use``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import anyio
import anyio.abc
import socketio

from .._errors import IntegrityError, StreamError, peer_message
from ..aio._socket import ss
from ..aio._stream import create_stream
from ..core._config import DEFAULT_RESUME_TIMEOUT
from ..core._core import FEATURE_DIGEST
from ..files._disk import prefix_digest
from ..files._transfer import receive_file, send_file
from . import _access
from ._common import CliError

#: Unfinished uploads one token may keep on the server at once (see put-status).
MAX_UNFINISHED_UPLOADS = 1000


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
        resume_timeout: float = DEFAULT_RESUME_TIMEOUT,
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
        # A client whose connection dropped has this long to come back and go on (``serve
        # --resume-timeout``); one that was killed never does, and holds its transfer this long.
        self.streams = ss(self.sio, resume_timeout=resume_timeout)
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

        from . import _web

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
        ``ws_per_message_deflate=False`` (``glue/_compression.py`` says why)."""
        from . import _web

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
                    real = Path(await child.resolve())
                    if not real.is_relative_to(self.root):
                        continue  # a symlink out of the directory: not ours to describe
                    inside = real.relative_to(self.root).parts
                    if inside and inside[0].casefold() == PARTIAL_DIR.casefold():
                        continue  # a link into the unfinished uploads: refused by resolve()
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
            # "auto": blake3 toward a sio_stream client that has it, a third of sha256's CPU on
            # each side; the client shows the algorithm with the digest.
            done = await send_file(stream, path, offset=offset, progress=count, digest="auto")
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
        # the web page) the server hashes what it stores, so every reply carries a digest.
        hasher = None if _sends_digest(stream) else hashlib.sha256()
        try:
            done = await receive_file(stream, path, size=size, max_bytes=self.max_upload, hasher=hasher)
        except (StreamError, OSError) as exc:
            request.failed(exc)
            return {"error": f"upload of {name} failed: {peer_message(exc)}"}
        request.finish("ok", done)
        if hasher is not None:
            return {"size": done, "sha256": hasher.hexdigest()}
        return {"size": done, **_digest_reply(stream)}

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
        return {"size": offset + done, **_digest_reply(stream), "offset": offset}


def _digest_reply(stream: Any) -> dict[str, Any]:
    """``{algorithm: hex digest}`` of what ``stream`` carried, as its writer sent and this side
    checked; ``{"sha256": None}`` when none came (an older client reads that as unconfirmed)."""
    name = stream.digest_name
    return {"sha256": None} if name is None else {name: stream.digest}


def _sends_digest(stream: Any) -> bool:
    """True when the peer of ``stream`` negotiated ``digest`` (its end carries one)."""
    return FEATURE_DIGEST in stream._owner.peer_features
