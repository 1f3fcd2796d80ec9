"""Negotiated ``resume`` for the events and answers that belong to streams, end to end (an
AsyncServer and an AsyncClient through ``benchmarks/link.py``'s cutting relay): a ``call()``
whose answer is lost in a drop gets it after the resume, with the stream it carries; under a
relay that cuts every connection again and again, every event (with its stream) is handled
exactly once and every ``call()`` gets exactly one answer, with no error reaching the
application."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import Counter
from typing import Any

import pytest

from sio_stream import IOStream, create_stream
from tests.support import wait_for
from tests.test_session_resume import session

pytestmark = pytest.mark.anyio


async def test_a_call_whose_answer_is_lost_in_a_drop_gets_it_after_the_resume() -> None:
    async with session() as setup:
        release = asyncio.Event()
        runs: list[str] = []
        data = os.urandom(300_000)
        ends: list[asyncio.Future[None]] = []

        @setup.streams.on("slow")
        async def slow(sid: str, name: str) -> Any:
            runs.append(name)
            await release.wait()  # the answer goes to python-socketio after the drop
            stream = create_stream()
            ends.append(asyncio.ensure_future(stream.end(data)))
            return {"name": name}, stream

        call = asyncio.ensure_future(setup.client_streams.call("slow", "a", timeout=30))
        await wait_for(lambda: runs == ["a"])
        assert setup.link.cut() == 1
        await wait_for(lambda: setup.client_streams.statistics().resumes == 1)
        release.set()  # after the resume: the server sends the answer the client waits for
        meta, stream = await asyncio.wait_for(call, 30)
        assert meta == {"name": "a"}
        assert await asyncio.wait_for(stream.read(), 30) == data
        await asyncio.wait_for(ends[0], 30)
        assert runs == ["a"]  # the handler ran once


async def test_an_answer_given_while_the_client_is_away_arrives_once() -> None:
    async with session(client_timeout=30) as setup:
        release = asyncio.Event()
        runs: list[int] = []

        @setup.streams.on("slow")
        async def slow(sid: str, n: int) -> int:
            runs.append(n)
            await release.wait()
            return n * 10

        call = asyncio.ensure_future(setup.client_streams.call("slow", 4, timeout=30))
        await wait_for(lambda: runs == [4])
        assert setup.link.cut() == 1
        await wait_for(lambda: setup.streams.statistics().suspended >= 1 or setup.streams.resumes >= 1)
        release.set()  # the server answers as soon as it can: before or after the client is back
        assert await asyncio.wait_for(call, 30) == 40
        assert runs == [4]


async def test_events_and_answers_exactly_once_under_a_relay_that_keeps_cutting() -> None:
    async with session(rate=50e6) as setup:
        handled: Counter[int] = Counter()
        digests: dict[int, str] = {}

        @setup.streams.on("item")
        async def item(sid: str, n: int, stream: IOStream) -> int:
            handled[n] += 1
            digests[n] = hashlib.sha256(await stream.read()).hexdigest()
            return n

        answers: Counter[int] = Counter()
        sent: dict[int, str] = {}

        async def one(n: int) -> None:
            stream = create_stream()
            data = os.urandom(20_000 + 997 * n)
            sent[n] = hashlib.sha256(data).hexdigest()
            ended = asyncio.ensure_future(stream.end(data))
            answers[await setup.client_streams.call("item", n, stream, timeout=60)] += 1
            await ended

        cuts = 0
        total = 120
        tasks = []
        for n in range(total):
            tasks.append(asyncio.ensure_future(one(n)))
            if n % 8 == 7:
                # A cut while events, their streams and answers are in flight.
                await asyncio.sleep(0.005 * (n % 5))  # spreads the cut points; not a synchronisation
                cuts += setup.link.cut()
                await wait_for(lambda cuts=cuts: setup.client_streams.statistics().resumes >= cuts, 30)
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        assert cuts >= 14
        assert handled == Counter(range(total))  # every event once
        assert answers == Counter(range(total))  # every answer once
        assert digests == sent
