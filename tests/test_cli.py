"""The sio-stream command: demo end to end, the file server's confinement and token, and
one-line failures with a non-zero exit status."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from sio_stream.cli._client import connect
from sio_stream.cli._common import TOKEN_ENV, parse_size
from sio_stream.cli._main import main
from sio_stream.cli._server import FileServer, _Refused

pytestmark = pytest.mark.anyio

TOKEN = "s3cret"


@pytest.fixture(autouse=True)
def _no_token_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Path, str]]:
    """A FileServer (token required) on 127.0.0.1 serving ``tmp_path / "root"``."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_bytes(b"hello world\n" * 1000)
    (root / "sub" / "deep.bin").write_bytes(os.urandom(300_000))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "escape").symlink_to(outside)
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "inside.txt").symlink_to(root / "hello.txt")
    server = FileServer(root, token=TOKEN, max_upload=2_000_000)
    async with server.running("127.0.0.1", 0) as url:
        yield root, url


async def run_cli(*argv: str) -> int:
    """main() in a worker thread: it runs its own event loop while ours keeps serving."""
    return await anyio.to_thread.run_sync(main, list(argv))


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("sio-stream: error: ")
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_parse_size() -> None:
    assert parse_size("1000") == 1000
    assert parse_size("8M") == 8 * 1024 * 1024
    assert parse_size("256MiB") == 256 * 1024 * 1024
    assert parse_size("1.5k") == 1536
    assert parse_size("1G") == 1024**3


async def test_ls_get_put(served, tmp_path, capsys):
    root, url = served
    assert await run_cli("ls", url, "--token", TOKEN) == 0
    listing = capsys.readouterr().out
    for name in ("hello.txt", "sub/", "inside.txt"):
        assert name in listing
    assert "escape" not in listing  # symlinks out of the directory are not listed

    local = tmp_path / "downloads"
    local.mkdir()
    assert await run_cli("get", url, "sub/deep.bin", str(local), "--token", TOKEN) == 0
    assert (local / "deep.bin").read_bytes() == (root / "sub" / "deep.bin").read_bytes()
    # The line shows the file's sha256 (as sha256sum would); blake3 between two sio_stream peers
    # (the cheaper digest) travelled with the stream and was checked.
    shown = hashlib.sha256((root / "sub" / "deep.bin").read_bytes()).hexdigest()[:16]
    assert f"sha256 ok ({shown}...; blake3 checked end to end)" in capsys.readouterr().out

    upload = tmp_path / "notes.bin"
    upload.write_bytes(os.urandom(1_500_000))
    assert await run_cli("put", url, str(upload), "sub/notes.bin", "--token", TOKEN) == 0
    assert (root / "sub" / "notes.bin").read_bytes() == upload.read_bytes()
    out = capsys.readouterr().out
    shown = hashlib.sha256(upload.read_bytes()).hexdigest()[:16]
    assert f"sha256 ok ({shown}...; blake3 checked end to end)" in out and "MB/s" in out
    # A symlink that stays inside the directory is fine.
    assert await run_cli("get", url, "inside.txt", str(local / "inside.txt"), "--token", TOKEN) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["get", "{url}", "missing.txt"], "no such file: missing.txt"),
        (["get", "{url}", "sub"], "not a file: sub"),
        (["get", "{url}", "../outside/secret.txt"], "'..' is not allowed"),
        (["get", "{url}", "/etc/passwd"], "absolute paths are not allowed"),
        (["get", "{url}", "escape/secret.txt"], "outside the served directory"),
        (["get", "{url}", "escape.txt"], "outside the served directory"),
        (["ls", "{url}", "escape"], "outside the served directory"),
        (["ls", "{url}", "nowhere"], "no such directory: nowhere"),
        (["put", "{url}", "{upload}", "../up.bin"], "'..' is not allowed"),
        (["put", "{url}", "{upload}", "escape/up.bin"], "outside the served directory"),
        (["put", "{url}", "{upload}", "nodir/up.bin"], "no such directory: nodir"),
        (["put", "{url}", "{big}", "big.bin"], "larger than the server's limit"),
        (["put", "{url}", "{tmp}/no-such-local-file", "x.bin"], "cannot read"),
    ],
)
async def test_refusals_are_one_line(served, tmp_path, capsys, monkeypatch, argv, message):
    root, url = served
    (tmp_path / "up.bin").write_bytes(b"data")
    (tmp_path / "big.bin").write_bytes(os.urandom(3_000_000))
    values = {
        "url": url,
        "upload": str(tmp_path / "up.bin"),
        "big": str(tmp_path / "big.bin"),
        "tmp": str(tmp_path),
    }
    before = sorted(p.name for p in root.rglob("*"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # `get` without LOCAL writes here; it must stay empty
    assert await run_cli(*(a.format(**values) for a in argv), "--token", TOKEN) == 1
    assert message in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in root.rglob("*")) == before  # nothing written, no partial file
    assert list(cwd.iterdir()) == []
    assert not (tmp_path / "outside" / "up.bin").exists()


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_token_checked_at_connect(served, capsys, token):
    _, url = served
    argv = ["ls", url] + (["--token", token] if token else [])
    assert await run_cli(*argv) == 1
    assert "invalid token" in one_error_line(capsys.readouterr().err)


async def test_token_from_environment(served, capsys, monkeypatch):
    _, url = served
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert await run_cli("ls", url) == 0
    assert "hello.txt" in capsys.readouterr().out


async def test_server_down(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert await run_cli("ls", url) == 1
    assert "cannot connect" in one_error_line(capsys.readouterr().err)


async def test_mkdir_is_confined_and_ls_marks_links(served):
    root, url = served
    async with connect(url, TOKEN) as streams:
        for bad, message in [
            ("escape/new", "outside the served directory"),
            ("../new", "'..' is not allowed"),
            (".sio-stream-partial", "not served"),
            (".", "is the served directory"),
            ("hello.txt", "exists and is not a directory"),
            ("no/such", "no such directory: no"),
        ]:
            reply = await streams.call("mkdir", bad, timeout=30)
            assert message in reply["error"], bad
        assert await streams.call("mkdir", "sub/new", timeout=30) == {}
        assert await streams.call("mkdir", "sub/new", timeout=30) == {}  # already there: fine
        entries = (await streams.call("ls", "", timeout=30))["entries"]
    assert (root / "sub" / "new").is_dir()
    assert not (root.parent / "outside" / "new").exists()
    links = {entry["name"]: entry["link"] for entry in entries}
    assert links == {"hello.txt": False, "inside.txt": True, "sub": False}


async def test_confinement_rules(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "up").symlink_to(tmp_path)
    server = FileServer(root)
    for bad in ["/etc/passwd", "..", "a/../../x", "C:/Windows", "up/x", "up", "a\x00b", 42]:
        with pytest.raises(_Refused):
            await server.resolve(bad)
    assert await server.resolve("a/b.txt") == root.resolve() / "a" / "b.txt"
    assert await server.resolve(".") == root.resolve()


async def test_unfinished_uploads_are_not_reached_by_a_link_or_another_case(tmp_path):
    root = tmp_path / "root"
    partials = root / ".sio-stream-partial"
    partials.mkdir(parents=True)
    (partials / "t.part").write_bytes(b"half")
    (root / "link").symlink_to(partials)
    (root / "link.part").symlink_to(partials / "t.part")
    server = FileServer(root)
    for bad in [
        ".sio-stream-partial/t.part",
        "link/t.part",
        "link",
        "link.part",
        ".SIO-Stream-Partial/t.part",
    ]:
        with pytest.raises(_Refused, match="unfinished uploads are not served"):
            await server.resolve(bad)
    assert await server.resolve(".sio-stream-partial-not") == root.resolve() / ".sio-stream-partial-not"
    (root / "ok.txt").write_text("ok")
    names = [entry["name"] for entry in (await server._list("."))["entries"]]
    assert names == ["ok.txt"]  # neither the directory nor the links into it are listed


def test_serve_needs_a_directory(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing"), "--port", "0"]) == 1
    assert "not a directory" in one_error_line(capsys.readouterr().err)


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--size", "lots"])
    assert exit_info.value.code == 2


def _run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sio_stream", *argv], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("where", ["in one process", "between two processes"])
def test_demo_end_to_end(where):
    extra = ["--in-process"] if where == "in one process" else []
    result = _run("demo", "--size", "8M", *extra)
    assert result.returncode == 0, result.stderr
    assert "8.0 MiB (8388608 bytes) server -> client" in result.stdout
    assert where in result.stdout
    assert "MB/s" in result.stdout and "sha256 verified" in result.stdout
    assert "Traceback" not in result.stderr


def test_console_script_failure_is_one_line():
    script = Path(sys.executable).with_name("sio-stream")
    # The console script is part of the package (pyproject [project.scripts]); make installs it.
    assert script.exists(), f"{script} missing: is the package installed (pip install -e .)?"
    result = subprocess.run(
        [str(script), "get", f"http://127.0.0.1:{free_port()}", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot connect" in one_error_line(result.stderr)


@asynccontextmanager
async def serve_process(
    root: Path, *options: str
) -> AsyncIterator[tuple[str, BufferedByteReceiveStream, anyio.abc.Process]]:
    """``sio-stream serve ROOT --port 0 OPTIONS`` in a child process: its URL, stderr and process."""
    command = [sys.executable, "-m", "sio_stream", "serve", str(root), "--port", "0", *options]
    async with await anyio.open_process(command) as process:
        assert process.stdout is not None and process.stderr is not None
        try:
            with anyio.fail_after(30):
                line = (await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 4096)).decode()
            url = line.split(" at ")[1].split(" ")[0].rstrip(";")
            yield url, BufferedByteReceiveStream(process.stderr), process
        finally:
            if process.returncode is None:  # a test may have stopped it already
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            await process.wait()


async def read_lines(stderr: BufferedByteReceiveStream, count: int) -> list[str]:
    with anyio.fail_after(30):
        return [(await stderr.receive_until(b"\n", 65536)).decode() for _ in range(count)]


async def test_serve_keeps_an_access_log(tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello world\n" * 1000)
    (tmp_path / "secret.txt").write_text("secret")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 3000)
    async with serve_process(root, "--token", TOKEN, "--max-upload", "2000") as (url, stderr, _):
        assert await run_cli("get", url, "hello.txt", str(tmp_path / "got.txt"), "--token", TOKEN) == 0
        assert await run_cli("get", url, "../secret.txt", "--token", TOKEN) == 1
        assert await run_cli("put", url, str(big), "big.bin", "--token", TOKEN) == 1
        assert await run_cli("ls", url, "--token", "wrong") == 1
        assert await run_cli("ls", url, "--token", TOKEN) == 0
        lines = await read_lines(stderr, 5)
    capsys.readouterr()
    date = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    who = r"127\.0\.0\.1 sid=[\w-]+"
    expected = [
        rf"{who} token=ok get 'hello.txt' 12000 B \d+\.\d{{3}} s [\d.]+ MB/s ok$",
        rf"{who} token=ok get '\.\./secret\.txt' - \d+\.\d{{3}} s refused: path '\.\./secret\.txt': "
        r"'\.\.' is not allowed$",
        rf"{who} token=ok put-status 'big\.bin' - \d+\.\d{{3}} s refused: big\.bin is larger than the "
        r"server's limit of 2000 bytes$",
        rf"{who} token=refused connect - - 0\.000 s refused: invalid token$",
        rf"{who} token=ok ls '' - \d+\.\d{{3}} s ok \(1 entry\)$",
    ]
    for line, pattern in zip(lines, expected, strict=True):
        assert re.match(rf"{date} {pattern}", line.rstrip("\n")), line


async def test_serve_quiet_keeps_no_log(tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello")
    async with serve_process(root, "--quiet") as (url, stderr, process):
        assert await run_cli("get", url, "hello.txt", str(tmp_path / "got.txt")) == 0
        assert await run_cli("get", url, "../x") == 1
        process.terminate()
        # Everything the server wrote to stderr, up to its exit.
        rest = b""
        with anyio.fail_after(30):
            try:
                while True:
                    rest += await stderr.receive()
            except anyio.EndOfStream:
                pass
    capsys.readouterr()
    assert rest == b""


def test_an_outcome_cannot_forge_a_second_log_line(caplog):
    import logging

    from sio_stream.cli import _access

    with caplog.at_level(logging.INFO, logger=_access.logger.name):
        request = _access.Request("127.0.0.1", "sid", "ok", "get", "x")
        request.refused("path 'a\n2026-12-01 00:00:00,000 127.0.0.1 sid=x token=ok get 'y' - ok'")
        _access.refused_connection("127.0.0.1", "sid", "bad\rtoken\x1b[2J")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert all("\n" not in line and "\r" not in line and "\x1b" not in line for line in lines)
    assert "\\n2026-12-01" in lines[0]
