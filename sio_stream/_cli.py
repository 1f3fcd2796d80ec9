"""The ``sio-stream`` command: a loopback demo, a small file server, and its client.

``sio-stream demo`` measures a real transfer (python-socketio server and client over a
websocket on 127.0.0.1); ``serve``/``ls``/``get``/``put`` share files from one directory.
Every command needs aiohttp (python-socketio's async server and client transport): install
``sio-stream[server]``.

Application events of the file server (all acks; an error is ``{"error": message}``):

* ``ls(path)`` -> ``{"entries": [{"name", "size", "dir"}, ...]}``
* ``get(path)`` -> ``(stream, {"name", "size", "sha256"})``: the server writes the file into
  the stream it returns in the ack, after hashing it (so the client can verify).
* ``put(stream, {"path", "size", "sha256"})`` -> ``{"size", "sha256"}`` once the file is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import random
import re
import stat
import subprocess
import sys
import tempfile
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

from . import _access
from ._errors import StreamError
from ._files import receive_file, send_file
from ._progress import ProgressBar, format_rate, format_size
from ._socket import StreamSocket, ss
from ._stream import create_stream

PROG = "sio-stream"
DEFAULT_PORT = 8765
#: Token read when ``--token`` is not given (keeps it out of the process list).
TOKEN_ENV = "SIO_STREAM_TOKEN"
#: Seconds to wait for a connection or a non-transfer ack: generous, a local server answers in ms.
REQUEST_TIMEOUT = 30.0


class CliError(Exception):
    """An expected failure: printed as one line, exit status 1."""


class _Refused(Exception):
    """A request the file server refuses; its message goes back to the client."""


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

    def __init__(self, root: Path, *, token: str | None = None, max_upload: int | None = None) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise CliError(f"not a directory: {root}")
        self.token = token
        self.max_upload = max_upload
        self.sio = socketio.AsyncServer(async_mode="aiohttp")
        self.streams = ss(self.sio)
        self._digests: dict[tuple[Path, int, int], str] = {}
        self._transfers: anyio.abc.TaskGroup | None = None
        self.sio.on("connect", self._on_connect)
        self.streams.on("ls", self._on_ls)
        self.streams.on("get", self._on_get)
        self.streams.on("put", self._on_put)

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
            async with anyio.create_task_group() as transfers:
                self._transfers = transfers
                try:
                    yield f"http://{host}:{bound}"
                finally:
                    transfers.cancel_scope.cancel()
                    self._transfers = None
        finally:
            with anyio.CancelScope(shield=True):
                await self.sio.shutdown()
                await runner.cleanup()

    def remember_digest(self, path: Path, digest: str) -> None:
        """Record a file's sha256 known in advance (the demo hashes while generating)."""
        info = path.stat()
        self._digests[(path.resolve(), info.st_size, info.st_mtime_ns)] = digest

    async def _digest(self, path: Path, info: os.stat_result) -> str:
        key = (path, info.st_size, info.st_mtime_ns)
        digest = self._digests.get(key)
        if digest is None:
            digest = self._digests[key] = await sha256_file(path)
        return digest

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
                if child.name.startswith(".") and child.name.endswith(".part"):
                    continue  # an upload in progress
                try:
                    if not Path(await child.resolve()).is_relative_to(self.root):
                        continue  # a symlink out of the directory: not ours to describe
                    info = await child.stat()
                except OSError:
                    continue  # a dangling or looping symlink
                is_dir = stat.S_ISDIR(info.st_mode)
                entries.append({"name": child.name, "size": 0 if is_dir else info.st_size, "dir": is_dir})
        except _Refused as exc:
            return {"error": str(exc)}
        except NotADirectoryError:
            return {"error": f"not a directory: {name}"}
        except FileNotFoundError:
            return {"error": f"no such directory: {name}"}
        entries.sort(key=lambda e: e["name"])
        return {"entries": entries}

    async def _on_get(self, sid: str, name: Any = None) -> tuple[Any, dict[str, Any]]:
        request = self._request(sid, "get", name)
        try:
            path = await self.resolve(name)
            try:
                info = await anyio.Path(path).stat()
            except FileNotFoundError:
                raise _Refused(f"no such file: {name}") from None
            if not stat.S_ISREG(info.st_mode):
                raise _Refused(f"not a file: {name}")
            digest = await self._digest(path, info)
        except _Refused as exc:
            request.refused(str(exc))
            return None, {"error": str(exc)}
        except OSError as exc:
            request.failed(exc)
            return None, {"error": f"cannot read {name}: {exc.strerror or exc}"}
        stream = create_stream()
        assert self._transfers is not None
        # The ack attaches the stream as this handler returns; the task starts after that.
        self._transfers.start_soon(self._send, stream, path, request)
        return stream, {"name": path.name, "size": info.st_size, "sha256": digest}

    async def _send(self, stream: Any, path: Path, request: _access.Request) -> None:
        try:
            done = await send_file(stream, path)
        except (StreamError, OSError) as exc:  # the client went away or the file failed
            request.failed(exc)
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
        hasher = hashlib.sha256()
        try:
            done = await receive_file(stream, path, size=size, max_bytes=self.max_upload, hasher=hasher)
        except (StreamError, OSError) as exc:
            request.failed(exc)
            return {"error": f"upload of {name} failed: {exc}"}
        request.finish("ok", done)
        return {"size": done, "sha256": hasher.hexdigest()}


# -- the client ------------------------------------------------------------------------------------
@asynccontextmanager
async def connect(url: str, token: str | None) -> AsyncIterator[StreamSocket]:
    """A connected client's StreamSocket; refusals and unreachable servers raise :class:`CliError`."""
    import aiohttp

    url = normalize_url(url)
    # Our own HTTP session: python-engineio leaves the one it creates open when a connection
    # attempt fails, and aiohttp then warns "Unclosed client session" at exit.
    async with aiohttp.ClientSession() as session:
        client = socketio.AsyncClient(reconnection=False, http_session=session)
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

    def summary(self, verb: str) -> str:
        return (
            f"{verb} {self.name}: {format_size(self.size)} ({self.size} bytes) in {self.seconds:.2f} s, "
            f"{format_rate(self.size, self.seconds)}, sha256 ok ({self.sha256[:16]}...)"
        )


async def list_remote(streams: StreamSocket, remote: str) -> list[dict[str, Any]]:
    reply = _check_reply(await streams.call("ls", remote, timeout=REQUEST_TIMEOUT))
    return list(reply["entries"])


async def download(
    streams: StreamSocket, remote: str, local: Path, *, show_progress: bool | None
) -> Transfer:
    """Fetch ``remote`` into ``local`` (a file path), verifying its sha256."""
    reply = await streams.call("get", remote, timeout=REQUEST_TIMEOUT)
    if not isinstance(reply, tuple) or len(reply) != 2:
        raise CliError(f"unexpected reply from the server: {reply!r}")
    stream, info = reply[0], _check_reply(reply[1])
    bar = ProgressBar(f"get {remote}", enabled=show_progress)
    hasher = hashlib.sha256()
    try:
        size = await receive_file(stream, local, size=info["size"], progress=bar, hasher=hasher)
    except StreamError as exc:
        raise CliError(f"download of {remote} failed: {exc}") from None
    finally:
        bar.close()
    seconds = bar.elapsed
    if hasher.hexdigest() != info["sha256"]:
        await aiofiles.os.remove(local)
        raise CliError(f"sha256 mismatch for {remote}: the download was discarded")
    return Transfer(remote, size, seconds, info["sha256"])


async def upload(streams: StreamSocket, local: Path, remote: str, *, show_progress: bool | None) -> Transfer:
    """Send ``local`` to the server as ``remote``, verifying the sha256 the server computed."""
    try:
        info = await anyio.Path(local).stat()
    except OSError as exc:
        raise CliError(f"cannot read {local}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CliError(f"not a file: {local}")
    digest = await sha256_file(local)
    stream = create_stream()
    bar = ProgressBar(f"put {remote}", enabled=show_progress)
    # Emit first, then write: the request (and the stream in it) is queued before any data.
    reply_future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    meta = {"path": remote, "size": info.st_size, "sha256": digest}
    await streams.emit("put", stream, meta, callback=reply_future.set_result)
    try:
        await send_file(stream, local, progress=bar)
    except StreamError as exc:
        # The server destroys the stream with the reason it also puts in its reply.
        raise CliError(f"upload of {local} failed: {exc}") from None
    finally:
        bar.close()
    # The reply comes once the server has stored (and hashed) the whole file.
    try:
        with anyio.fail_after(REQUEST_TIMEOUT):
            reply = _check_reply(await reply_future)
    except TimeoutError:
        raise CliError(f"no reply from the server after uploading {local}") from None
    if reply.get("sha256") != digest:
        raise CliError(f"sha256 mismatch: the server stored something else as {remote}")
    return Transfer(remote, info.st_size, bar.elapsed, digest)


# -- commands --------------------------------------------------------------------------------------
async def cmd_serve(args: argparse.Namespace) -> None:
    server = FileServer(Path(args.dir), token=args.token, max_upload=args.max_upload)
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
        size = "-" if entry["dir"] else format_size(entry["size"])
        print(f"{size:>12}  {entry['name']}{'/' if entry['dir'] else ''}")


def _local_target(remote: str, local: str | None) -> Path:
    name = PurePosixPath(remote).name
    if local is None:
        if not name:
            raise CliError(f"cannot name a local file after {remote!r}: give LOCAL")
        return Path(name)
    path = Path(local)
    return path / name if path.is_dir() else path


async def cmd_get(args: argparse.Namespace) -> None:
    local = _local_target(args.remote, args.local)
    if not await anyio.Path(local.parent).is_dir():
        raise CliError(f"no such directory: {local.parent}")
    async with connect(args.url, args.token) as streams:
        transfer = await download(streams, args.remote, local, show_progress=args.progress)
    print(transfer.summary(f"received {local} <-"))


async def cmd_put(args: argparse.Namespace) -> None:
    local = Path(args.local)
    remote = args.remote or local.name
    async with connect(args.url, args.token) as streams:
        transfer = await upload(streams, local, remote, show_progress=args.progress)
    print(transfer.summary(f"sent {local} ->"))


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
        server.remember_digest(file, digest)
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
    serve.set_defaults(run=cmd_serve)

    ls = commands.add_parser("ls", parents=[client], help="list a served directory")
    ls.add_argument("remote", metavar="REMOTE", nargs="?", default="", help="directory (default: the root)")
    ls.set_defaults(run=cmd_ls)

    get = commands.add_parser("get", parents=[client, progress], help="download a file")
    get.add_argument("remote", metavar="REMOTE")
    get.add_argument("local", metavar="LOCAL", nargs="?", help="file or directory (default: ./NAME)")
    get.set_defaults(run=cmd_get)

    put = commands.add_parser("put", parents=[client, progress], help="upload a file")
    put.add_argument("local", metavar="LOCAL")
    put.add_argument("remote", metavar="REMOTE", nargs="?", help="path on the server (default: NAME)")
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
