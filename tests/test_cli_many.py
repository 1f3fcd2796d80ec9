"""Several files per `sio-stream get`/`put` (-r for trees), `ls -l`, and a hostile server's
listings: nothing is ever written outside the target directory."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sio_stream.cli import _tree
from sio_stream.cli._server import FileServer, _Refused
from tests.test_cli import run_cli

pytestmark = pytest.mark.anyio


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (not following links): file contents, None for a directory."""
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[key] = b"-> " + os.readlink(path).encode()
        else:
            found[key] = None if path.is_dir() else path.read_bytes()
    return found


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Path, str]]:
    root = tmp_path / "root"
    (root / "docs" / "deep" / "deeper").mkdir(parents=True)
    (root / "docs" / "empty").mkdir()
    (root / "docs" / "a.txt").write_bytes(b"a" * 1000)
    (root / "docs" / "deep" / "b.bin").write_bytes(os.urandom(300_000))
    (root / "docs" / "deep" / "deeper" / "c.bin").write_bytes(os.urandom(5000))
    (root / "docs" / "same.txt").symlink_to(root / "docs" / "a.txt")  # inside: sent as a file
    (root / "docs" / "loop").symlink_to(root / "docs")  # a link to a directory: not followed
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "docs" / "escape").symlink_to(outside)  # out of the root: never listed
    (root / "top.txt").write_bytes(b"top")
    server = FileServer(root)
    async with server.running("127.0.0.1", 0) as url:
        yield root, url


async def test_get_r_recreates_the_tree_and_a_rerun_finds_it_up_to_date(served, tmp_path, capsys):
    root, url = served
    target = tmp_path / "got"
    target.mkdir()
    assert await run_cli("get", url, "-r", "docs", str(target)) == 0
    captured = capsys.readouterr()
    assert tree(target) == {
        "docs": None,
        "docs/a.txt": b"a" * 1000,
        "docs/deep": None,
        "docs/deep/b.bin": (root / "docs/deep/b.bin").read_bytes(),
        "docs/deep/deeper": None,
        "docs/deep/deeper/c.bin": (root / "docs/deep/deeper/c.bin").read_bytes(),
        "docs/empty": None,
        "docs/same.txt": b"a" * 1000,  # a regular file: the client never makes a link
    }
    assert "loop is a symbolic link to a directory: not followed" in captured.err
    assert re.search(r"^received 4 of 4 files, .* 1 skipped, all verified$", captured.out, re.M)
    assert (target / "docs/deep/b.bin").stat().st_mtime_ns == (root / "docs/deep/b.bin").stat().st_mtime_ns

    # Run again: everything is already there (same size and mtime), nothing is fetched.
    assert await run_cli("get", url, "-r", "docs", str(target)) == 0
    out = capsys.readouterr().out
    assert out.count("up to date") == 4 and "received 4 of 4 files, 0 B" in out

    # A local file that differs is not replaced unless asked.
    (target / "docs/a.txt").write_bytes(b"mine")
    assert await run_cli("get", url, "-r", "docs", str(target), "--no-progress") == 1
    err = capsys.readouterr().err
    assert "a.txt exists and differs from docs/a.txt (--overwrite replaces it)" in err
    assert err.strip().splitlines()[-1] == "sio-stream: error: 1 of 4 files did not arrive (see above)"
    assert (target / "docs/a.txt").read_bytes() == b"mine"
    assert await run_cli("get", url, "-r", "docs", str(target), "--overwrite") == 0
    assert (target / "docs/a.txt").read_bytes() == b"a" * 1000
    capsys.readouterr()


async def test_get_several_files_and_the_root(served, tmp_path, capsys):
    _, url = served
    target = tmp_path / "got"
    target.mkdir()
    assert await run_cli("get", url, "top.txt", "docs/a.txt", "missing.txt", str(target)) == 1
    captured = capsys.readouterr()
    assert "no such file: missing.txt" in captured.err
    assert "received 2 of 3 files" in captured.out and "1 failed" in captured.out
    assert tree(target) == {"top.txt": b"top", "a.txt": b"a" * 1000}

    # Without -r a directory is refused; with -r the root's entries land in place.
    assert await run_cli("get", url, "docs", "top.txt", str(target)) == 1
    assert "docs is a directory (-r gets it)" in capsys.readouterr().err
    whole = tmp_path / "whole"
    whole.mkdir()
    assert await run_cli("get", url, "-r", ".", str(whole)) == 0
    assert set(tree(whole)) >= {"top.txt", "docs/deep/deeper/c.bin", "docs/empty"}
    capsys.readouterr()
    # LOCALDIR must be a directory that exists.
    assert await run_cli("get", url, "top.txt", "docs/a.txt", str(tmp_path / "nowhere")) == 1
    assert "not a directory" in capsys.readouterr().err


async def test_get_r_limits_the_entries(served, tmp_path, capsys):
    _, url = served
    target = tmp_path / "got"
    target.mkdir()
    assert await run_cli("get", url, "-r", "docs", str(target), "--max-files", "5") == 1
    assert "more than 5 entries under docs: nothing fetched (--max-files" in capsys.readouterr().err
    assert list(target.iterdir()) == []


async def test_put_several_files_and_a_tree(served, tmp_path, capsys):
    root, url = served
    local = tmp_path / "local"
    (local / "pics" / "2026").mkdir(parents=True)
    (local / "pics" / "one.jpg").write_bytes(os.urandom(200_000))
    (local / "pics" / "2026" / "two.jpg").write_bytes(os.urandom(3000))
    (local / "pics" / "link.jpg").symlink_to(local / "pics" / "one.jpg")
    (local / "pics" / "up").symlink_to(tmp_path)
    (local / "note.txt").write_bytes(b"note")
    (root / "inbox").mkdir()

    assert await run_cli("put", url, str(local / "note.txt"), str(local / "pics" / "one.jpg"), "inbox") == 0
    assert "sent 2 of 2 files" in capsys.readouterr().out
    assert tree(root / "inbox") == {"note.txt": b"note", "one.jpg": (local / "pics/one.jpg").read_bytes()}

    assert await run_cli("put", url, "-r", str(local / "pics"), "inbox") == 0
    captured = capsys.readouterr()
    assert "link.jpg is a symbolic link: not sent" in captured.err
    assert "up is a symbolic link: not sent" in captured.err
    assert re.search(r"^sent 2 of 2 files, .* 2 skipped, all verified$", captured.out, re.M)
    assert tree(root / "inbox" / "pics") == {
        "2026": None,
        "2026/two.jpg": (local / "pics/2026/two.jpg").read_bytes(),
        "one.jpg": (local / "pics/one.jpg").read_bytes(),
    }
    # A directory without -r, and a REMOTEDIR that is not one.
    assert await run_cli("put", url, str(local / "pics"), str(local / "note.txt"), "inbox") == 1
    assert "pics is a directory (-r sends it)" in capsys.readouterr().err
    assert await run_cli("put", url, "-r", str(local / "pics"), "nowhere") == 1
    assert "no such directory: nowhere" in capsys.readouterr().err
    assert await run_cli("put", url, "-r", str(local), "inbox", "--max-files", "3") == 1
    assert "more than 3 entries" in capsys.readouterr().err


async def test_ls_long(served, capsys):
    _, url = served
    assert await run_cli("ls", url, "docs", "-l") == 0
    lines = capsys.readouterr().out.splitlines()
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert re.fullmatch(rf"- +1000 +1000 B  {when}  a\.txt", lines[0]), lines
    assert re.fullmatch(rf"d +- +-  {when}  deep/", lines[1]), lines
    assert any(re.fullmatch(rf"d +- +-  {when}  loop/", line) for line in lines)
    assert any(re.fullmatch(rf"l +1000 +1000 B  {when}  same\.txt", line) for line in lines)
    assert not any("escape" in line for line in lines)
    assert await run_cli("ls", url, "docs") == 0
    assert capsys.readouterr().out.splitlines()[0] == "      1000 B  a.txt"


# -- a hostile server -----------------------------------------------------------------------------
class HostileServer(FileServer):
    """Lists whatever ``listings`` says and serves ``payload.bin`` for any name asked for: a
    server that lies, to show that the client alone keeps the files where they belong."""

    listings: dict[str, list[Any]]

    async def _list(self, name: Any) -> dict[str, Any]:
        return {"entries": self.listings.get(name, [])}

    async def resolve(self, name: Any) -> Path:
        return self.root / "payload.bin"


def entry(name: Any, *, is_dir: bool = False, **extra: Any) -> dict[str, Any]:
    return {"name": name, "size": 0 if is_dir else 7, "dir": is_dir, "mtime": 1.0, **extra}


@pytest.fixture
async def hostile(tmp_path: Path) -> AsyncIterator[tuple[HostileServer, str]]:
    root = tmp_path / "evil"
    root.mkdir()
    (root / "payload.bin").write_bytes(b"payload")
    server = HostileServer(root)
    server.listings = {}
    async with server.running("127.0.0.1", 0) as url:
        yield server, url


BAD_NAMES = [
    ("..", "not a file name"),
    ("../escaped.txt", "path separator"),
    ("/tmp/absolute.txt", "path separator"),
    ("sub/inner.txt", "path separator"),
    ("..\\escaped.txt", "path separator"),
    ("C:escaped.txt", "a drive"),
    ("", "not a file name"),
    (".good.txt.sio-part", "partial download"),
    ("bell\x07\x1b[2J.txt", "control character"),
    ("nul\x00.txt", "control character"),
    (42, "bad name"),
]


@pytest.mark.parametrize(("name", "message"), BAD_NAMES, ids=[repr(n) for n, _ in BAD_NAMES])
async def test_hostile_names_are_refused(hostile, tmp_path, capsys, name, message):
    server, url = hostile
    server.listings = {"d": [entry(name), entry("good.txt")], ".": [entry("d", is_dir=True)]}
    target = tmp_path / "target"
    target.mkdir()
    before = tree(tmp_path)
    assert await run_cli("get", url, "-r", "d", str(target)) == 1
    captured = capsys.readouterr()
    assert message in captured.err and "\x1b" not in captured.err and "\x07" not in captured.err
    assert "received 1 of 2 files" in captured.out
    after = tree(tmp_path)
    assert after.pop("target/d/good.txt") == b"payload"
    assert after.pop("target/d") is None
    assert after == before  # nothing else, anywhere


async def test_hostile_names_that_differ_only_in_case(hostile, tmp_path, capsys):
    server, url = hostile
    server.listings = {
        ".": [entry("d", is_dir=True), entry("D", is_dir=True)],
        "d": [entry("Readme.txt"), entry("README.txt"), entry("Cafe\u0301.txt"), entry("caf\u00e9.txt")],
        "D": [entry("x.txt")],
    }
    target = tmp_path / "target"
    target.mkdir()
    assert await run_cli("get", url, "-r", ".", str(target)) == 1
    err = capsys.readouterr().err
    assert "refused 'D': it differs from 'd' only in case" in err
    assert "refused 'd/README.txt': it differs from 'd/Readme.txt' only in case" in err
    assert "refused 'd/caf\u00e9.txt': it differs from 'd/Cafe\u0301.txt' only in case" in err  # NFC
    assert sorted(tree(target)) == ["d", "d/Cafe\u0301.txt", "d/Readme.txt"]


async def test_hostile_listing_with_thousands_of_entries(hostile, tmp_path, capsys):
    server, url = hostile
    server.listings = {".": [entry("d", is_dir=True)], "d": [entry(f"f{i}") for i in range(20_000)]}
    target = tmp_path / "target"
    target.mkdir()
    assert await run_cli("get", url, "-r", "d", str(target)) == 1
    assert "more than 10000 entries under d: nothing fetched" in capsys.readouterr().err
    assert list(target.iterdir()) == []


async def test_hostile_directory_loop_is_bounded(hostile, tmp_path, capsys):
    server, url = hostile
    # Every directory holds itself again (a server following a link to its parent).
    server.listings = {f"d{'/d' * depth}": [entry("d", is_dir=True), entry("f")] for depth in range(200)}
    server.listings["."] = [entry("d", is_dir=True)]
    target = tmp_path / "target"
    target.mkdir()
    assert await run_cli("get", url, "-r", "d", str(target), "--max-files", "50") == 1
    assert "more than 50 entries" in capsys.readouterr().err
    assert list(target.iterdir()) == []


async def test_links_and_files_in_the_way_locally(hostile, tmp_path, capsys):
    server, url = hostile
    server.listings = {
        "d": [entry("sub", is_dir=True), entry("link.txt"), entry("mine.txt"), entry("dir.txt")],
        "d/sub": [entry("x.txt")],
        ".": [entry("d", is_dir=True)],
    }
    target, outside = tmp_path / "target", tmp_path / "outside"
    (target / "d").mkdir(parents=True)
    outside.mkdir()
    (target / "d" / "sub").symlink_to(outside)  # planted: writing through it would escape
    (target / "d" / "link.txt").symlink_to(outside / "link.txt")
    (target / "d" / "mine.txt").write_bytes(b"mine")
    (target / "d" / "dir.txt").mkdir()
    (target / "d" / ".new.txt.sio-part").symlink_to(outside / "part")
    server.listings["d"].append(entry("new.txt"))
    before = tree(tmp_path)
    assert await run_cli("get", url, "-r", "d", str(target), "--overwrite") == 1
    err = capsys.readouterr().err
    assert "d/sub is a symbolic link (not followed)" in err
    assert "link.txt is a symbolic link (not followed)" in err
    assert ".new.txt.sio-part is a symbolic link (not followed)" in err
    assert "d/dir.txt is a directory" in err
    after = tree(tmp_path)
    assert after.pop("target/d/mine.txt") == b"payload"  # asked for with --overwrite
    before.pop("target/d/mine.txt")
    assert after == before
    assert list(outside.iterdir()) == []


async def test_hostile_bad_entries(hostile, tmp_path, capsys):
    server, url = hostile
    server.listings = {"d": ["just a string", entry("ok.txt", dir="yes")], ".": [entry("d", is_dir=True)]}
    target = tmp_path / "target"
    target.mkdir()
    assert await run_cli("get", url, "-r", "d", str(target)) == 1
    assert capsys.readouterr().err.count("bad") == 2
    assert tree(target) == {"d": None}
    # A whole reply that is not a listing stops the command.
    server.listings = {".": [entry("d", is_dir=True)], "d": "nope"}  # type: ignore[dict-item]
    assert await run_cli("get", url, "-r", "d", str(target)) == 1
    assert "unexpected listing of 'd'" in capsys.readouterr().err


async def test_ls_escapes_control_characters(hostile, capsys):
    server, url = hostile
    server.listings = {"": [entry("\x1b]0;pwned\x07"), entry(3)]}
    assert await run_cli("ls", url, "-l") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b]0;pwned\\x07" in out


def test_check_name_accepts_ordinary_names():
    for name in ["a.txt", ".hidden", "10:30 notes.txt", "caf\u00e9", "x.sio-part", "..a", "a.."]:
        assert _tree.check_name(name) == name


async def test_the_real_server_refuses_what_the_client_would(served):
    # The same names sent as requests: the server's own confinement refuses them too.
    root, _ = served
    server = FileServer(root)
    for bad in ["../x", "/etc/passwd", "docs/escape/secret.txt"]:
        with pytest.raises(_Refused):
            await server.resolve(bad)


def test_tree_progress_is_one_throttled_line():
    import io

    stream = io.StringIO()
    progress = _tree.TreeProgress(2, 30, enabled=True, stream=stream)
    report = progress.file("a.bin", 10)
    report(5, 10)
    report(6, 10)  # within the interval: not drawn
    assert stream.getvalue().count("\r") == 1
    assert re.match(r"\r\[1/2\] a\.bin 50% \| 5 B/30 B 17% [\d.]+ MB/s", stream.getvalue())
    progress.done(10)
    assert stream.getvalue().endswith("\r" + " " * 79 + "\r")
    assert _tree.TreeProgress(1, 1, stream=io.StringIO()).enabled is False  # not a terminal


async def test_get_r_resumes_a_partial_file(served, tmp_path, capsys):
    import json

    from sio_stream.cli._client import partial_paths

    root, url = served
    target = tmp_path / "got"
    (target / "docs" / "deep").mkdir(parents=True)
    source = root / "docs" / "deep" / "b.bin"
    data, record = partial_paths(target / "docs" / "deep" / "b.bin")
    data.write_bytes(source.read_bytes()[:100_000])  # what an interrupted run left
    info = source.stat()
    record.write_text(
        json.dumps({"remote": "docs/deep/b.bin", "url": url, "size": 300_000, "mtime": info.st_mtime_ns})
    )
    assert await run_cli("get", url, "-r", "docs", str(target)) == 0
    out = capsys.readouterr().out
    assert "resumed at 100000 bytes" in out
    assert (target / "docs/deep/b.bin").read_bytes() == source.read_bytes()
    assert not data.exists() and not record.exists()


def test_check_name_on_windows(monkeypatch):
    monkeypatch.setattr(_tree, "_WINDOWS", True)
    for name in ["ab:stream", "CON", "nul.txt", "Com1.log", "trailing.", "trailing "]:
        with pytest.raises(_tree.Refused, match="Windows"):
            _tree.check_name(name)
    for name in ["a.txt", "console.txt", "nullable", "COM10"]:
        assert _tree.check_name(name) == name


async def test_a_raw_socketio_server_cannot_make_the_client_write_outside(tmp_path, capsys):
    """Not our FileServer at all: a bare python-socketio server with crafted replies."""
    import asyncio

    import socketio

    from sio_stream import create_stream, send_file, ss
    from tests.support import start_server

    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"payload")
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = ss(sio)
    sending: list[asyncio.Task[Any]] = []
    listing = [entry("../../evil.txt"), entry("/tmp/evil.txt"), entry("Ok.txt"), entry("OK.txt")]

    @streams.on("ls")
    async def ls(sid: str, name: str = "") -> dict[str, Any]:
        return {"entries": listing if name == "d" else [entry("d", is_dir=True)]}

    @streams.on("get")
    async def get(sid: str, name: str, resume: Any = None) -> tuple[Any, dict[str, Any]]:
        stream = create_stream()
        # Starts once this handler returned: the ack carries the stream before any data.
        sending.append(asyncio.ensure_future(send_file(stream, payload)))
        return stream, {"name": "../../evil.txt", "size": 7, "mtime": 1, "offset": 0}

    runner, url = await start_server(sio)
    target = tmp_path / "target"
    target.mkdir()
    before = tree(tmp_path)
    try:
        assert await run_cli("get", url, "-r", "d", str(target)) == 1
        await asyncio.gather(*sending)
    finally:
        await runner.cleanup()
    captured = capsys.readouterr()
    assert "received 1 of 4 files" in captured.out
    assert captured.err.count("refused") == 3
    after = tree(tmp_path)
    assert after.pop("target/d") is None and after.pop("target/d/Ok.txt") == b"payload"
    assert after == before
