import hashlib
import os

import pytest

from sio_stream import create_stream

pytestmark = pytest.mark.anyio


async def test_upload_and_download(pair):
    data = os.urandom(3_000_000)

    @pair.server_streams.on("upload")
    async def upload(sid, stream, meta):
        got = await stream.read()
        return hashlib.sha256(got).hexdigest(), len(got), meta

    stream = create_stream()
    result = pair.client_streams.call("upload", stream, {"name": "a"})
    import asyncio

    task = asyncio.ensure_future(result)
    for i in range(0, len(data), 100_000):
        await stream.write(data[i : i + 100_000])
    await stream.end()
    digest, n, meta = await task
    assert digest == hashlib.sha256(data).hexdigest()
    assert n == len(data)
    assert meta == {"name": "a"}
