"""Several files per ``sio-stream get``/``put``: the names a listing may bring, where they land,
and one progress line for the lot. No network here: the CLI passes in what it listed.

A server's listing is untrusted input. Every name becomes one path component under the
target directory, or it is refused:

* empty, ``.``, ``..``, anything with ``/``, ``\\``, a NUL, a control character or a Windows
  drive (``C:x``) is refused (so are absolute paths: they hold a ``/``); on Windows also a
  ``:`` (a stream), a device name (``CON``, ``NUL.txt``, ``COM1``...) or a trailing dot or space;
* names of our own partial downloads (``.NAME.sio-part``, ``.NAME.sio-part.json``) are refused:
  they would collide with the partial file of another entry;
* two names equal after case folding and Unicode normalisation are one file on a
  case-insensitive file system (macOS, Windows): the second is refused, on every system, so a
  tree arrives the same everywhere;
* the client never creates a symbolic link and never writes through one: an existing link
  on the way to a target (or at it) is refused.
"""

from __future__ import annotations

import os
import stat
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TextIO

from ._progress import DEFAULT_INTERVAL, format_rate, format_size

#: Entries (files and directories) one ``-r`` may visit, ``--max-files``: far beyond a
#: hand-made tree, small enough that a hostile or runaway listing stops in seconds.
DEFAULT_MAX_FILES = 10_000
_PARTIAL_SUFFIXES = (".sio-part", ".sio-part.json")
#: On Windows a few more names are not what they seem: devices, streams, trailing dots.
_WINDOWS = os.name == "nt"
_DEVICES = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


class Refused(Exception):
    """One entry refused; its message says why (the other entries go on)."""


def printable(name: str) -> str:
    """``name`` with control characters escaped: a listing must not drive the terminal."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def check_name(name: object) -> str:
    """``name`` if it is safe as one path component; raises :class:`Refused` otherwise."""
    if not isinstance(name, str):
        raise Refused(f"bad name in the listing: {name!r}")
    shown = printable(name)
    if name in ("", ".", ".."):
        raise Refused(f"refused name {shown!r}: not a file name")
    if "/" in name or "\\" in name:
        raise Refused(f"refused name {shown!r}: it holds a path separator")
    if not name.isprintable():
        raise Refused(f"refused name {shown!r}: it holds a control character")
    if PureWindowsPath(name).anchor:
        raise Refused(f"refused name {shown!r}: a drive name")
    if _WINDOWS and (
        ":" in name or name.endswith((".", " ")) or name.split(".")[0].strip().upper() in _DEVICES
    ):
        raise Refused(f"refused name {shown!r}: not a plain file name on Windows")
    if name.startswith(".") and name.endswith(_PARTIAL_SUFFIXES):
        raise Refused(f"refused name {shown!r}: the name of a partial download")
    return name


class CaseGuard:
    """Refuses a second relative path equal to an earlier one but for case or normalisation."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def claim(self, relative: PurePosixPath) -> None:
        key = unicodedata.normalize("NFC", str(relative)).casefold()
        first = self._seen.setdefault(key, str(relative))
        if first != str(relative):
            raise Refused(
                f"refused {printable(str(relative))!r}: it differs from {printable(first)!r} only in case"
            )


def local_target(root: Path, relative: PurePosixPath) -> Path:
    """Where ``relative`` lands under ``root``; refuses a symlink or a file on the way, and a
    symlink or a directory at the target. Creates no directory (:func:`make_dirs` does)."""
    path = root
    for index, part in enumerate(relative.parts):
        path = path / part
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return root.joinpath(*relative.parts)
        last = index == len(relative.parts) - 1
        if stat.S_ISLNK(info.st_mode):
            raise Refused(f"refused {printable(str(relative))!r}: {path} is a symbolic link (not followed)")
        if not last and not stat.S_ISDIR(info.st_mode):
            raise Refused(f"refused {printable(str(relative))!r}: {path} is not a directory")
        if last and stat.S_ISDIR(info.st_mode):
            raise Refused(f"refused {printable(str(relative))!r}: {path} is a directory")
    return path


def make_dirs(root: Path, relative: PurePosixPath) -> None:
    """Create the directories of ``relative`` under ``root`` one by one (never through a link)."""
    path = root
    for part in relative.parts:
        path = path / part
        try:
            os.mkdir(path)
        except FileExistsError:
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise Refused(f"{path} is a symbolic link (not followed)") from None
            if not stat.S_ISDIR(mode):
                raise Refused(f"{path} is in the way (not a directory)") from None


def up_to_date(path: Path, size: object, mtime: object) -> bool:
    """True when the regular file ``path`` has the listed size and mtime (within a millisecond):
    a file an earlier run of the same ``get`` stored (it sets the server's mtime)."""
    if not isinstance(size, int) or not isinstance(mtime, int | float):
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == size and abs(info.st_mtime - mtime) < 1e-3


class TreeProgress:
    """One throttled line for several files: ``[3/10] NAME 42% | 1.2/8.0 MiB 15% 95.1 MB/s``.

    ``file(name, total)`` returns the progress callback of one file. Nothing is drawn when
    ``enabled`` is false (the default when ``file`` is not a terminal).
    """

    def __init__(
        self, count: int, total: int, *, enabled: bool | None = None, stream: TextIO | None = None
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.count, self.total = count, total
        self.index = 0
        self.finished = 0  # bytes of the files before this one
        self.started = time.monotonic()
        self._last_draw = 0.0

    def file(self, name: str, total: int | None) -> Callable[[int, int | None], None]:
        self.index += 1
        label = f"[{self.index}/{self.count}] {printable(name)}"

        def progress(done: int, size: int | None) -> None:
            now = time.monotonic()
            if not self.enabled or now - self._last_draw < DEFAULT_INTERVAL:
                return
            self._last_draw = now
            moved = self.finished + done
            this = f" {done / size:.0%}" if size else ""
            share = f" {min(moved / self.total, 1.0):.0%}" if self.total else ""
            line = (
                f"{label}{this} | {format_size(moved)}/{format_size(self.total)}{share} "
                f"{format_rate(moved, now - self.started)}"
            )
            self.stream.write("\r" + line.ljust(79))
            self.stream.flush()

        return progress

    def done(self, size: int) -> None:
        """The current file ended (``size``: its bytes, counted in the total); clear the line."""
        self.finished += size
        self.clear()

    def clear(self) -> None:
        """Erase the line (before a line of output, which then stands alone)."""
        if self.enabled:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()
