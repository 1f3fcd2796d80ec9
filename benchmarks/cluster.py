"""Streams across server nodes joined by Redis, against baselines measured in the same run.

    python benchmarks/cluster.py [--quick | --smoke] [--repeat N]

Processes: a redis-server (Debian's, on a free port, persistence off), two server nodes with
python-socketio's AsyncRedisManager (A and B), a third server without it, and one process for
the clients. Lines:

* **cross-node**: a client of A sends a stream that A relays to a client of B (sio_stream over
  Redis), against a hand-rolled relay through python-socketio's own Redis path (acked binary
  emits to A, one in flight as the issue measured it, and 8 in flight; A emits each chunk to
  B's sid, which python-socketio publishes to every node base64-encoded in JSON), and against a
  relay of the same stream on one node.
* **local with Redis**: an upload to A (which has the Redis manager) against the same upload to
  the server without it: local streams must not pay for the cluster. Nothing is published.

    python benchmarks/cluster.py --link-rtt MS [--quick | --smoke] [--repeat N]

* **cross-node on a long link**: the clients reach A and B through link emulators
  (``link.py``, a delay of MS round trip, no rate limit); the same cross-node stream, against the
  same relay on one node through the same link and against what windows that never grow could
  carry (window x chunk per round trip); the note gives the read windows both ends of the path
  reached (A's for the sender's upload, the receiving client's for B's stream).

    python benchmarks/cluster.py --rooms [--quick | --smoke] [--repeat N]

* **room across nodes**: a client of A uploads a stream that A relays to a room of 3 members on
  A and 3 on B (every member returns the sha256 it read), against the same room with all 6
  members on A; and the bytes Redis received meanwhile (``INFO stats``
  ``total_net_input_bytes``, heartbeats included) against the payload.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _harness import PYTHON, MiB, Report, common_args, link, median, mode_of, ratio
from peer import memory_kib, pieces

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"full": 100 * MiB, "quick": 32 * MiB, "smoke": 4 * MiB}
LINK_SIZES = {"full": 256 * MiB, "quick": 96 * MiB, "smoke": 8 * MiB}
ROOM_SIZES = {"full": 64 * MiB, "quick": 16 * MiB, "smoke": 4 * MiB}
REPEATS = {"full": 3, "quick": 2, "smoke": 1}
CHUNK = 256 * 1024
RAW_IN_FLIGHT = 8


# -- a server node -----------------------------------------------------------------------------------
async def node(redis_url: str | None) -> None:
    import socketio
    from aiohttp import web

    from sio_stream import ss
    from sio_stream.cluster import cluster_for

    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    kwargs: dict[str, Any] = {"client_manager": manager} if manager else {}
    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=4 * MiB, **kwargs)
    streams = ss(sio)

    @streams.on("send-to")
    async def send_to(sid: str, stream: Any, target: str) -> Any:
        return await streams.call("file", stream, to=target, timeout=None)

    @streams.on("send-to-window")
    async def send_to_window(sid: str, stream: Any, target: str) -> int:
        # As send-to, answering with this node's read window for the upload (chunks) at its end.
        await streams.call("file", stream, to=target, timeout=None)
        window = stream._core.window
        return window.size if window is not None else 0

    @streams.on("upload")
    async def upload(sid: str, stream: Any) -> int:
        size = 0
        async for chunk in stream:
            size += len(chunk)
        return size

    @streams.on("send-to-room")
    async def send_to_room(sid: str, stream: Any, room: str) -> Any:
        answers = await streams.call("file", stream, to=room, timeout=None)
        return {member: str(value) for member, value in answers.items()}

    @sio.on("join")
    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True

    @sio.on("knows")
    def knows(sid: str, target: str) -> bool:
        return streams._host.is_local(target) or streams._is_remote(target)

    @sio.on("raw-chunk")
    async def raw_chunk(sid: str, target: str, data: bytes) -> bool:
        await sio.emit("raw-chunk", data, to=target)  # python-socketio's cross-node path
        return True

    @sio.on("raw-end")
    async def raw_end(sid: str, target: str) -> bool:
        await sio.emit("raw-end", to=target)
        return True

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    cluster = cluster_for(sio)
    if cluster is not None:
        await cluster.ready()
    print(f"LISTENING {runner.addresses[0][1]}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if cluster is not None:
        await cluster.close()
    await runner.cleanup()


# -- the clients -------------------------------------------------------------------------------------
async def clients(job: dict[str, Any]) -> dict[str, Any]:
    import socketio

    from sio_stream import create_stream, ss

    size, kind = job["size"], job["kind"]
    if kind == "room":
        return await room_clients(job)
    sender = socketio.AsyncClient()
    await sender.connect(job["sender"], transports=["websocket"])
    sender_streams = ss(sender)
    if kind == "local":
        stream = create_stream()
        started = time.perf_counter()
        reply = asyncio.create_task(sender_streams.call("upload", stream, timeout=None))
        for piece in pieces(size, CHUNK):
            await stream.write(piece)
        await stream.end()
        got = await reply
        seconds = time.perf_counter() - started
        await sender.disconnect()
        return {"seconds": seconds, "bytes": got}

    receiver = socketio.AsyncClient()
    done = asyncio.Event()
    received = {"bytes": 0, "window": 0}

    @ss(receiver).on("file")
    async def on_file(stream: Any) -> int:
        async for chunk in stream:
            received["bytes"] += len(chunk)
        window = stream._core.window  # this client's read window for the stream at its end
        received["window"] = window.size if window is not None else 0
        done.set()
        return received["bytes"]

    @receiver.on("raw-chunk")
    def raw_chunk(data: bytes) -> None:
        received["bytes"] += len(data)

    @receiver.on("raw-end")
    def raw_end() -> None:
        done.set()

    await receiver.connect(job["receiver"], transports=["websocket"])
    target = receiver.get_sid()
    for _ in range(600):  # until the join broadcast reached node A (polled: a benchmark)
        if await sender.call("knows", target):
            break
        await asyncio.sleep(0.05)
    started = time.perf_counter()
    if kind == "raw":
        slots = asyncio.Semaphore(job.get("in_flight", RAW_IN_FLIGHT))
        pending: set[asyncio.Task[Any]] = set()
        for piece in pieces(size, CHUNK):
            await slots.acquire()
            task = asyncio.create_task(sender.call("raw-chunk", (target, piece), timeout=600))
            task.add_done_callback(lambda _t: slots.release())
            pending = {t for t in pending if not t.done()} | {task}
        await asyncio.gather(*pending)
        await sender.call("raw-end", target, timeout=600)
    else:
        stream = create_stream()
        event = "send-to-window" if job.get("windows") else "send-to"
        reply = asyncio.create_task(sender_streams.call(event, stream, target, timeout=None))
        for piece in pieces(size, CHUNK):
            await stream.write(piece)
        await stream.end()
        sender_window = await reply
    await asyncio.wait_for(done.wait(), 600)
    seconds = time.perf_counter() - started
    await receiver.disconnect()
    await sender.disconnect()
    if received["bytes"] != size:
        raise RuntimeError(f"{kind}: received {received['bytes']} of {size} bytes")
    out = {"seconds": seconds, "bytes": received["bytes"]}
    if job.get("windows"):
        out.update(sender_window=sender_window, receiver_window=received["window"])
    return out


async def room_clients(job: dict[str, Any]) -> dict[str, Any]:
    """Members on the nodes of ``job["members"]`` join a room; a client of ``job["sender"]``
    uploads ``size`` bytes, which its node relays to the room; every member acks its sha256."""
    import hashlib

    import redis.asyncio
    import socketio

    from sio_stream import create_stream, ss

    size = job["size"]
    members: list[socketio.AsyncClient] = []
    for url in job["members"]:
        member = socketio.AsyncClient()

        @ss(member).on("file")
        async def on_file(stream: Any) -> str:
            digest = hashlib.sha256()
            async for chunk in stream:
                digest.update(chunk)
            return digest.hexdigest()

        await member.connect(url, transports=["websocket"])
        await member.call("join", "room", timeout=60)
        members.append(member)
    sender = socketio.AsyncClient()
    await sender.connect(job["sender"], transports=["websocket"])
    for member in members:
        for _ in range(600):  # until the sender's node knows every node (polled: a benchmark)
            if await sender.call("knows", member.get_sid()):
                break
            await asyncio.sleep(0.05)
    expected = hashlib.sha256()
    for piece in pieces(size, CHUNK):
        expected.update(piece)
    spy = redis.asyncio.Redis.from_url(job["redis"])
    before = (await spy.info("stats"))["total_net_input_bytes"]
    started = time.perf_counter()
    stream = create_stream()
    reply = asyncio.create_task(ss(sender).call("send-to-room", stream, "room", timeout=None))
    for piece in pieces(size, CHUNK):
        await stream.write(piece)
    await stream.end()
    answers = await reply
    seconds = time.perf_counter() - started
    carried = (await spy.info("stats"))["total_net_input_bytes"] - before
    await spy.aclose()
    intact = sum(1 for value in answers.values() if value == expected.hexdigest())
    for client in [*members, sender]:
        await client.disconnect()
    return {"seconds": seconds, "intact": intact, "members": len(members), "redis_bytes": carried}


async def soak(job: dict[str, Any]) -> dict[str, Any]:
    """Two clients per node; every client keeps sending streams to random clients of any node
    (relayed by its own node) until the time is up; each receiver acks the sha256 it read."""
    import hashlib
    import random

    import socketio

    from sio_stream import create_stream, ss

    clients: list[tuple[socketio.AsyncClient, str]] = []
    for url in job["nodes"]:
        for _ in range(2):
            client = socketio.AsyncClient()

            @ss(client).on("file")
            async def on_file(stream: Any) -> str:
                digest = hashlib.sha256()
                async for chunk in stream:
                    digest.update(chunk)
                return digest.hexdigest()

            await client.connect(url, transports=["websocket"])
            clients.append((client, client.get_sid() or ""))
    for client, _ in clients:
        for _, target in clients:
            for _ in range(600):  # until every node knows every client (polled: a benchmark)
                if await client.call("knows", target):
                    break
                await asyncio.sleep(0.05)
    deadline = time.monotonic() + job["seconds"]
    totals = {"streams": 0, "bytes": 0, "mismatches": 0}
    rng = random.Random(7)

    async def run(client: socketio.AsyncClient, me: str) -> None:
        while time.monotonic() < deadline:
            target = rng.choice([sid for _, sid in clients if sid != me])
            size = rng.randrange(1, job["max_size"])
            data = os.urandom(size)
            stream = create_stream()
            reply = asyncio.create_task(ss(client).call("send-to", stream, target, timeout=120))
            await stream.end(data)
            if await reply != hashlib.sha256(data).hexdigest():
                totals["mismatches"] += 1
            totals["streams"] += 1
            totals["bytes"] += size

    await asyncio.gather(*(run(client, sid) for client, sid in clients))
    for client, _ in clients:
        await client.disconnect()
    return totals


def redis_pubsub_peak(redis_url: str, stop: Any, peak: dict[str, int]) -> None:
    """In a thread: the largest output buffer Redis held for a pub/sub client (CLIENT LIST omem)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    while not stop.wait(0.2):
        for entry in client.client_list():
            if int(entry.get("sub", 0)) or int(entry.get("psub", 0)):
                peak["omem"] = max(peak["omem"], int(entry.get("omem", 0)))
    client.close()


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    import threading

    sys.path.insert(0, str(ROOT))
    from tests.redis_support import redis_server

    mode = mode_of(args)
    report = Report("cluster", mode)
    seconds = args.soak
    with redis_server() as redis_url:
        procs = [start_node(redis_url) for _ in range(3)]
        stop, peak = threading.Event(), {"omem": 0}
        watcher = threading.Thread(target=redis_pubsub_peak, args=(redis_url, stop, peak))
        watcher.start()
        try:
            idle = {proc.pid: memory_kib(proc.pid)["VmRSS"] for proc, _ in procs}
            job = {"nodes": [url for _, url in procs], "seconds": seconds, "max_size": 4 * MiB}
            done = subprocess.run(
                [PYTHON, __file__, "--role", "soak", "--job", json.dumps(job)],
                capture_output=True,
                text=True,
                timeout=seconds + 600,
            )
            if done.returncode != 0:
                raise RuntimeError(f"soak clients failed ({done.returncode}):\n{done.stderr[-3000:]}")
            totals = json.loads(done.stdout.strip().splitlines()[-1])
            growth = max((memory_kib(proc.pid)["VmRSS"] - idle[proc.pid]) / 1024 for proc, _ in procs)
        finally:
            stop.set()
            watcher.join()
            stop_nodes(procs)
    report.line(
        f"3 nodes x 2 clients, streams in every direction for {seconds:g} s",
        totals["streams"],
        "streams",
        target="nothing lost, RSS flat, Redis pub/sub buffers < 8 MiB",
        met=totals["mismatches"] == 0 and growth < 64 and peak["omem"] < 8 * MiB,
        note=f"{totals['bytes'] / MiB:.0f} MiB, {totals['mismatches']} mismatches, RSS growth at most "
        f"{growth:.1f} MiB, largest pub/sub output buffer {peak['omem'] / MiB:.2f} MiB",
    )
    return report.finish(args.json)


# -- the run -----------------------------------------------------------------------------------------
def start_node(redis_url: str | None) -> tuple[subprocess.Popen[str], str]:
    command = [PYTHON, __file__, "--role", "node"] + (["--redis", redis_url] if redis_url else [])
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LISTENING "):
        proc.kill()
        raise RuntimeError(f"node did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def stop_nodes(procs: list[tuple[subprocess.Popen[str], str]]) -> None:
    """Close each node's stdin (it then stops); kill one still running after 30 s."""
    for proc, _ in procs:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_clients(job: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [PYTHON, __file__, "--role", "clients", "--job", json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"clients failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.redis_support import redis_server

    mode = mode_of(args)
    report = Report("cluster", mode)
    size = SIZES[mode]
    repeats = args.repeat or REPEATS[mode]
    times: dict[str, list[float]] = {}
    peaks: dict[str, float] = {}
    with redis_server() as redis_url:
        procs = [start_node(redis_url), start_node(redis_url), start_node(None)]
        (_a, a_url), (_b, b_url), (_plain, plain_url) = procs
        try:
            idle = {proc.pid: memory_kib(proc.pid)["VmRSS"] for proc, _ in procs}
            jobs = {
                "cross-node": {"kind": "stream", "sender": a_url, "receiver": b_url},
                "raw": {"kind": "raw", "sender": a_url, "receiver": b_url},
                "raw1": {"kind": "raw", "sender": a_url, "receiver": b_url, "in_flight": 1},
                "one node": {"kind": "stream", "sender": a_url, "receiver": a_url},
                "local+redis": {"kind": "local", "sender": a_url},
                "local": {"kind": "local", "sender": plain_url},
            }
            for _ in range(repeats):
                for name, job in jobs.items():
                    result = run_clients(dict(job, size=size))
                    times.setdefault(name, []).append(result["seconds"])
            for proc, _ in procs:
                peaks[str(proc.pid)] = (memory_kib(proc.pid)["VmHWM"] - idle[proc.pid]) / 1024
        finally:
            stop_nodes(procs)
    label = f"{size // MiB}MiB"
    cross, raw, one = median(times["cross-node"]), median(times["raw"]), median(times["one node"])
    raw1 = median(times["raw1"])
    report.line(
        f"client on A -> client on B over Redis {label}",
        size / cross / 1e6,
        "MB/s",
        {
            "hand-rolled relay, acked emits 1 in flight": ratio(raw1, cross),
            "8 in flight": ratio(raw, cross),
            "relay on one node": ratio(one, cross),
        },
        target=">=4x hand-rolled (1 in flight, as the issue measured), >=0.3x one node",
        met=raw1 / cross >= 4 and one / cross >= 0.3,
    )
    local, plain = median(times["local+redis"]), median(times["local"])
    report.line(
        f"upload {label} to a node with the Redis manager",
        size / local / 1e6,
        "MB/s",
        {"without the manager": ratio(plain, local)},
        target=">=0.95x",
        met=plain / local >= 0.95,
    )
    node_a, node_b, plain_server = (peaks[str(proc.pid)] for proc, _ in procs)
    report.note(
        f"peak RSS above idle: node A {node_a:.1f} MiB, node B {node_b:.1f} MiB, "
        f"plain server {plain_server:.1f} MiB"
    )
    return report.finish(args.json)


def run_link(args: argparse.Namespace) -> dict[str, Any]:
    """Cross-node and one-node relays with the clients behind a link of ``--link-rtt`` ms."""
    sys.path.insert(0, str(ROOT))
    from sio_stream.core._config import DEFAULT_MAX_CHUNK, DEFAULT_WINDOW
    from tests.redis_support import redis_server

    mode = mode_of(args)
    report = Report("cluster", mode)
    size = LINK_SIZES[mode]
    rtt = args.link_rtt / 1000
    repeats = args.repeat or REPEATS[mode]
    results: dict[str, list[dict[str, Any]]] = {}
    with redis_server() as redis_url:
        procs = [start_node(redis_url), start_node(redis_url)]
        (_a, a_url), (_b, b_url) = procs
        try:
            with (
                link(int(a_url.rsplit(":", 1)[1]), rtt_ms=args.link_rtt) as a_port,
                link(int(b_url.rsplit(":", 1)[1]), rtt_ms=args.link_rtt) as b_port,
            ):
                a_far, b_far = f"http://127.0.0.1:{a_port}", f"http://127.0.0.1:{b_port}"
                jobs = {
                    "cross-node": {"kind": "stream", "sender": a_far, "receiver": b_far},
                    "one node": {"kind": "stream", "sender": a_far, "receiver": a_far},
                }
                for _ in range(repeats):
                    for name, job in jobs.items():
                        result = run_clients(dict(job, size=size, windows=True))
                        results.setdefault(name, []).append(result)
        finally:
            stop_nodes(procs)
    label = f"{size // MiB}MiB"
    fixed = DEFAULT_WINDOW * DEFAULT_MAX_CHUNK / rtt / 1e6  # MB/s of windows that never grow
    cross, one = results["cross-node"], results["one node"]
    seconds = median([r["seconds"] for r in cross])
    rate = size / seconds / 1e6
    windows = {
        name: (max(r["sender_window"] for r in rs), max(r["receiver_window"] for r in rs))
        for name, rs in results.items()
    }
    report.line(
        f"client on A -> client on B over Redis {label}, clients {args.link_rtt:g} ms away",
        rate,
        "MB/s",
        {
            "relay on one node": ratio(median([r["seconds"] for r in one]), seconds),
            f"fixed {DEFAULT_WINDOW}-chunk windows' bound": ratio(rate, fixed),
        },
        target="windows grow on both client links (above the fixed windows' bound)",
        met=rate > fixed and min(windows["cross-node"]) > DEFAULT_WINDOW,
        note="largest read windows (chunks), A's for the upload / the receiver's: "
        + ", ".join(f"{name} {a} / {b}" for name, (a, b) in windows.items()),
    )
    return report.finish(args.json)


def run_rooms(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.redis_support import redis_server

    mode = mode_of(args)
    report = Report("cluster", mode)
    size = ROOM_SIZES[mode]
    repeats = args.repeat or REPEATS[mode]
    results: dict[str, list[dict[str, Any]]] = {}
    with redis_server() as redis_url:
        procs = [start_node(redis_url), start_node(redis_url)]
        (_a, a_url), (_b, b_url) = procs
        try:
            jobs = {
                "two nodes": {"members": [a_url] * 3 + [b_url] * 3},
                "one node": {"members": [a_url] * 6},
            }
            for _ in range(repeats):
                for name, job in jobs.items():
                    job = dict(job, kind="room", size=size, sender=a_url, redis=redis_url)
                    results.setdefault(name, []).append(run_clients(job))
        finally:
            stop_nodes(procs)
    label = f"{size // MiB}MiB"
    spanning, local = results["two nodes"], results["one node"]
    seconds = median([r["seconds"] for r in spanning])
    intact = min(r["intact"] for r in spanning)
    carried = max(r["redis_bytes"] for r in spanning) / size
    report.line(
        f"upload relayed to a room of 3 + 3 members on 2 nodes {label}",
        size / seconds / 1e6,
        "MB/s",
        {"all 6 on one node": ratio(median([r["seconds"] for r in local]), seconds)},
        target="all 6 intact, Redis carries <= 1.5x the payload",
        met=intact == 6 and carried <= 1.5,
        note=f"{intact} of 6 intact in every run; Redis received {carried:.2f}x the payload "
        f"(one node: {max(r['redis_bytes'] for r in local) / size:.3f}x)",
    )
    return report.finish(args.json)


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--soak", type=float, default=0, help="run the 3-node soak for this many seconds instead")
    p.add_argument("--rooms", action="store_true", help="run the room-across-nodes line instead")
    p.add_argument(
        "--link-rtt", type=float, default=0, help="run the cross-node line with the clients this many ms away"
    )
    p.add_argument("--role", choices=("node", "clients", "soak"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--redis", default=None, help=argparse.SUPPRESS)
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    if arguments.role == "node":
        sys.path.insert(0, str(ROOT))
        asyncio.run(node(arguments.redis))
    elif arguments.role == "clients":
        print(json.dumps(asyncio.run(clients(json.loads(arguments.job)))))
    elif arguments.role == "soak":
        print(json.dumps(asyncio.run(soak(json.loads(arguments.job)))))
    else:
        os.chdir(os.path.dirname(os.path.abspath(__file__)))
        if arguments.rooms:
            run_rooms(arguments)
        elif arguments.link_rtt:
            run_link(arguments)
        else:
            run_soak(arguments) if arguments.soak else run(arguments)
