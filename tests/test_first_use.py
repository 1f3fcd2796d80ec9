"""What a new user hits first (issue 9): bad values refused when they are given, with an error
that names what the user called. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import anyio
import pytest

from sio_stream import (
    InvalidChunkError,
    InvalidOptionError,
    IOStream,
    LocalProtocolError,
    StreamBrokenError,
    TransferTooLarge,
    create_stream,
    receive_file,
    send_file,
)
from sio_stream.core._chunks import decode_chunk
from tests.support import wait_for

pytestmark = pytest.mark.anyio


def collector(pair: Any, event: str) -> asyncio.Future[list[Any]]:
    """A server handler for ``event`` that reads one object-mode stream to its end."""
    received: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    @pair.server_streams.on(event)
    async def collect(sid: str, stream: IOStream) -> None:
        received.set_result([value async for value in stream])

    return received


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def names_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def self_containing() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


# -- object mode: non-JSON values are refused by write(), nothing queued -----------------------------
@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({1, 2}, "set"),
        (object(), "object"),
        ({"a": {1, 2}}, "set at ['a']"),
        ([1, {"x": object()}], "object at [1]['x']"),
        ({1: "one"}, "dict key 1 (keys must be str)"),
        ({"view": memoryview(b"x")}, "memoryview at ['view']"),
        ({"stream": create_stream()}, "IOStream at ['stream']"),
        (nested(600), "deeper than"),
        (self_containing(), "deeper than"),
        (Path("x"), "PosixPath"),
        ({"t": (1, b"x")}, "bytes inside a tuple at ['t'][1] (use a list)"),
    ],
    ids=[
        *("set", "object", "nested-set", "nested-object", "int-key"),
        *("memoryview", "stream", "deep", "cycle", "path", "bytes-in-tuple"),
    ],
)
async def test_object_write_refuses_non_json_values_at_write_time(
    pair: Any, capfd: pytest.CaptureFixture[str], bad: Any, words: str
) -> None:
    received = collector(pair, "objects")
    stream = create_stream(object_mode=True)
    await pair.client_streams.emit("objects", stream)
    await stream.write(1)
    with pytest.raises(InvalidChunkError, match="not a JSON value") as caught:
        await stream.write(bad)
    assert words in str(caught.value)
    # Nothing was queued: the stream goes on and the peer receives only the good values.
    await stream.write({"after": True})
    with anyio.fail_after(20):
        await stream.end()
        assert await received == [1, {"after": True}]
    assert stream.error is None
    assert capfd.readouterr().err == ""


async def test_object_write_accepts_every_json_value(pair: Any) -> None:
    received = collector(pair, "objects")
    stream = create_stream(object_mode=True)
    await pair.client_streams.emit("objects", stream)
    values: list[Any] = [
        0,
        False,
        "",
        -1.5,
        math.inf,
        10**30,
        "text",
        [1, None, "two", [3.0, {"four": 4}]],
        (5, 6),
        {"nested": {"list": [True, None], "bytes": b"\x00\xff"}},
        b"raw",
        bytearray(b"mutable"),
        memoryview(b"view"),
        nested(100),
    ]
    for value in values:
        await stream.write(value)
    with anyio.fail_after(20):
        await stream.end()
        got = await received
    expected = [*values[:8], [5, 6], values[9], b"raw", b"mutable", b"view", values[13]]
    assert got == expected


async def test_a_memoryview_object_is_copied_at_write_time() -> None:
    # Written before the stream is sent: the value waits in the buffer meanwhile.
    stream = create_stream(object_mode=True)
    buffer = bytearray(b"before")
    await stream.write(memoryview(buffer))
    buffer[:] = b"AFTER!"
    assert list(stream._core.pending) == [b"before"]
    stream.destroy()


# -- encodings: Node's names, case-insensitively; anything else refused ------------------------------
NODE_ENCODINGS = [
    "utf8",
    "utf-8",
    "ascii",
    "latin1",
    "binary",
    "base64",
    "base64url",
    "hex",
    "ucs2",
    "ucs-2",
    "utf16le",
    "utf-16le",
]


@pytest.mark.parametrize("encoding", [*NODE_ENCODINGS, "UTF8", "Utf-8", "HEX", "Base64Url", "UCS-2"])
def test_create_stream_accepts_nodes_encodings(encoding: str) -> None:
    stream = create_stream(encoding=encoding)
    assert stream.options == {"encoding": encoding}


@pytest.mark.parametrize("encoding", ["klingon", "utf-16", "utf32", "", " utf8", "latin-1", "cp1252"])
def test_create_stream_refuses_unknown_encodings(encoding: str) -> None:
    with pytest.raises(InvalidOptionError, match="unknown encoding") as caught:
        create_stream(encoding=encoding)
    assert "utf8" in str(caught.value)  # the message lists what is accepted


@pytest.mark.parametrize(
    ("chunk", "encoding", "data"),
    [
        ("aGk=", "BASE64", b"hi"),
        ("-_8", "base64url", b"\xfb\xff"),
        ("-_8=", "Base64URL", b"\xfb\xff"),
        ("6869", "HEX", b"hi"),
        ("h\xe9", "Latin1", b"h\xe9"),
        ("hi", "UTF-8", b"hi"),
    ],
)
def test_chunks_in_any_of_nodes_encodings_are_decoded(chunk: str, encoding: str, data: bytes) -> None:
    assert decode_chunk(chunk, encoding, object_mode=False) == data


# -- files: the wrong kind of stream, or no stream at all ------------------------------------------
async def test_receive_file_refuses_an_object_mode_stream(pair: Any, tmp_path: Path) -> None:
    outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: IOStream) -> None:
        try:
            await receive_file(stream, tmp_path / "stored.json")
        except Exception as exc:
            outcome.set_result(exc)

    stream = create_stream(object_mode=True)
    await pair.client_streams.emit("upload", stream)
    await stream.write({"not": "bytes"})
    with anyio.fail_after(20):
        error = await outcome
        # The sender learns at once (the stream was destroyed) and why.
        with pytest.raises(StreamBrokenError, match=r"receive_file\(\)"):
            await stream.end()
    assert isinstance(error, InvalidChunkError)
    assert "receive_file() writes bytes to a file" in str(error)
    assert "object mode" in str(error)
    assert names_in(tmp_path) == []


async def test_send_file_refuses_an_object_mode_stream(tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"data")
    stream = create_stream(object_mode=True)
    with pytest.raises(InvalidChunkError, match=r"send_file\(\) reads bytes from a file.*object mode"):
        await send_file(stream, source)
    assert stream.error is not None  # destroyed, as on any send_file failure


@pytest.mark.parametrize("function", [receive_file, send_file])
async def test_file_functions_name_themselves_when_not_given_a_stream(function: Any, tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"data")
    name = function.__name__
    with pytest.raises(TypeError, match=rf"^{name}\(\) takes an IOStream as its first argument, not str"):
        await function(str(source), tmp_path / "b.bin")
    stream = create_stream()
    # The arguments swapped: the same message, and the stream is left alone.
    with pytest.raises(
        TypeError, match=rf"^{name}\(\) takes an IOStream as its first argument, not PosixPath"
    ):
        await function(source, stream)
    assert stream.error is None
    stream.destroy()
    assert names_in(tmp_path) == ["a.bin"]


async def test_receive_file_refuses_an_announced_size_above_max_bytes_before_reading(
    pair: Any, tmp_path: Path
) -> None:
    outcome: asyncio.Future[BaseException | int] = asyncio.get_running_loop().create_future()

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: IOStream) -> None:
        try:
            outcome.set_result(await receive_file(stream, tmp_path / "big.bin", size=5000, max_bytes=1000))
        except Exception as exc:
            outcome.set_result(exc)

    stream = create_stream()
    await pair.client_streams.emit("upload", stream)
    # The sender has written nothing yet: the refusal cannot wait for data.
    with anyio.fail_after(20):
        error = await outcome
        await wait_for(lambda: stream.error is not None)
    assert isinstance(error, TransferTooLarge)
    assert str(error) == "announced size of 5000 bytes is above the limit of 1000 bytes"
    with pytest.raises(StreamBrokenError, match="above the limit of 1000 bytes"):
        await stream.write(b"x")
    assert names_in(tmp_path) == []


# -- say what `to=` named (rooms themselves: tests/test_rooms.py) --------------------
async def test_emitting_a_stream_to_a_sid_that_left_says_it_is_not_connected(pair: Any) -> None:
    other = await pair.new_client()
    await wait_for(lambda: len(pair.connected) == 2)
    gone = pair.connected[-1]
    await other.disconnect()
    await wait_for(lambda: not pair.server.manager.is_connected(gone, "/"))
    with pytest.raises(LocalProtocolError, match=rf"client {gone!r} is not connected to namespace '/'"):
        await pair.server_streams.emit("file", create_stream(), to=gone)


@pytest.mark.parametrize("target", ["nobody", 42, ""])
async def test_emitting_a_stream_to_anything_else_says_what_to_means(pair: Any, target: Any) -> None:
    with pytest.raises(LocalProtocolError, match="neither a client") as caught:
        await pair.server_streams.emit("file", create_stream(), to=target)
    assert "nor a room" in str(caught.value)
    assert "pass to=sid, a room" in str(caught.value)
