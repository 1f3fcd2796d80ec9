"""A server that joins a cluster offers no initial credit, whatever ``ss(initial_credit=)``
says, and logs that it turned it off (docs/protocol.md, ``initial-credit``: the known issue
across nodes). Real redis-server; the same server without the cluster offers it (the control:
the hello seen here does carry an offer when one is made)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import socketio

from sio_stream import ss
from sio_stream.cluster import cluster_for
from sio_stream.core._config import INITIAL_KEY, OUR_FEATURES
from sio_stream.core._core import DEFAULT_MAX_CHUNK
from tests.support import start_server
from tests.test_session_resume import hello_answer

pytestmark = pytest.mark.anyio

ASKED = 4 * 1024 * 1024
#: A client's hello that can take an offer (the features the offer needs among them).
HELLO = {"version": 1, "features": sorted(OUR_FEATURES)}
WARNING = "initial_credit is off on a server that joins a cluster"


async def offer_of(manager: Any) -> Any:
    """The ``initial`` entry of the hello a server with ``manager`` answers, asked for
    ``ASKED`` bytes of initial credit (``None``: no offer)."""
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    ss(sio, initial_credit=ASKED)
    runner, url = await start_server(sio)
    node = cluster_for(sio)
    try:
        if node is not None:
            await node.ready()
        return (await hello_answer(url, HELLO)).get(INITIAL_KEY)
    finally:
        if node is not None:
            await node.close()
        await sio.shutdown()
        await runner.cleanup()


async def test_a_cluster_node_offers_no_initial_credit_and_says_so(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sio_stream"):
        alone = await offer_of(None)
        assert not any(WARNING in record.getMessage() for record in caplog.records)
        clustered = await offer_of(socketio.AsyncRedisManager(redis_url))
    assert alone == {"credits": ASKED // DEFAULT_MAX_CHUNK, "size": DEFAULT_MAX_CHUNK}
    assert clustered is None
    warned = [record for record in caplog.records if WARNING in record.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
