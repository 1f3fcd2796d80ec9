"""The argument parser of the ``sio-stream`` command and :func:`main`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from .._errors import StreamError
from .._malloc import keep_freed_buffers
from ..core._config import DEFAULT_RESUME_TIMEOUT
from . import _tree
from ._commands import cmd_get, cmd_ls, cmd_put, cmd_serve
from ._common import DEFAULT_PORT, PROG, TOKEN_ENV, CliError, _require_aiohttp, parse_size
from ._demo import cmd_demo
from ._server import DEFAULT_EXPIRE


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
    serve.add_argument(
        "--resume-timeout",
        type=float,
        default=DEFAULT_RESUME_TIMEOUT,
        help="seconds a dropped client's transfers wait for it to reconnect; 0: fail at once "
        f"(default {DEFAULT_RESUME_TIMEOUT:.0f})",
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
    keep_freed_buffers()
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
