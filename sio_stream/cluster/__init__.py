"""Streams across several server processes joined by Redis (python-socketio's AsyncRedisManager).

``ss(sio)`` on an ``AsyncServer`` whose client manager is an ``AsyncRedisManager`` joins this
process to the cluster on that Redis server: a stream emitted to a sid connected to another
node is forwarded there (see :mod:`sio_stream.cluster._node`). ``ss(sio, cluster=False)``
keeps every stream local.
"""

from __future__ import annotations

from typing import Any

from ..aio._socket import plug_relay
from ._node import DEFAULT_HEARTBEAT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_NODE_TIMEOUT, ClusterNode

_ATTRIBUTE = "_sio_stream_cluster"


def cluster_for(
    sio: Any,
    *,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    heartbeat: float = DEFAULT_HEARTBEAT,
    node_timeout: float = DEFAULT_NODE_TIMEOUT,
) -> ClusterNode | None:
    """The cluster node of ``sio`` (made on first use), or ``None`` when its client manager is
    not python-socketio's ``AsyncRedisManager``."""
    node: ClusterNode | None = getattr(sio, _ATTRIBUTE, None)
    if node is not None:
        return node
    import socketio

    manager = getattr(sio, "manager", None)
    if not isinstance(manager, socketio.AsyncRedisManager):
        return None
    node = ClusterNode(
        sio,
        manager.redis_url,
        manager.channel,
        max_in_flight=max_in_flight,
        heartbeat=heartbeat,
        node_timeout=node_timeout,
    )
    setattr(sio, _ATTRIBUTE, node)
    return node


# Every ss() on an AsyncServer whose client manager is an AsyncRedisManager joins the cluster.
plug_relay(cluster_for)

__all__ = ["ClusterNode", "cluster_for"]
