"""The commands ``serve``, ``ls``, ``get`` and ``put``, and the planning and tally of
several-file transfers."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

from .._errors import StreamError
from ..aio._socket import StreamSocket
from . import _access, _tree
from ._client import _check_reply, connect, download, list_remote, partial_paths, upload
from ._common import PROG, REQUEST_TIMEOUT, CliError
from ._progress import format_rate, format_size
from ._server import FileServer


async def cmd_serve(args: argparse.Namespace) -> None:
    server = FileServer(
        Path(args.dir),
        token=args.token,
        max_upload=args.max_upload,
        expire=args.expire,
        resume_timeout=args.resume_timeout,
    )
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

    def passed_over(self, item: _Item) -> bool:
        """Count and report an item that is not transferred: a problem (failed) or a note
        (skipped); False for one to transfer."""
        if item.problem is not None:
            self.fail(item.problem)
            return True
        if item.note is not None:
            self.skipped += 1
            print(f"{PROG}: skipped: {item.note}", file=sys.stderr, flush=True)
            return True
        return False

    def finish(self, verb: str) -> None:
        seconds = time.monotonic() - self.started
        count = self.arrived + self.failed
        line = (
            f"{verb} {self.arrived} of {count} files, {format_size(self.moved)} in {seconds:.2f} s, "
            f"{format_rate(self.moved, seconds)}"
        )
        if self.skipped:
            line += f", {self.skipped} skipped"
        print(line + (f", {self.failed} failed" if self.failed else ", all verified"), flush=True)
        if self.failed:
            raise CliError(f"{self.failed} of {count} files did not arrive (see above)")


async def _get_many(
    streams: StreamSocket, items: list[_Item], target: Path, args: argparse.Namespace
) -> None:
    tally = _Tally(items)
    progress = _tree.TreeProgress(len(tally.files), tally.total, enabled=args.progress)
    for item in items:
        shown = _tree.printable(item.source)
        if tally.passed_over(item):
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
        if tally.passed_over(item):
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
