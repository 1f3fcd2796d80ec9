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
  Beside each, the CPU the two nodes and Redis spent (the machines are shared: a rate follows
  the share of the cores a run gets, the CPU it needs does not), and the ceiling of the transport:
  Redis pub/sub alone carrying the same bytes in 512 KiB messages from one process to another,
  with the same 4 MiB in flight.
* **local with Redis**: an upload to A (which has the Redis manager) against the same upload to
  the server without it: local streams must not pay for the cluster. Nothing is published.

    python benchmarks/cluster.py --compare PATH [--compare-no-hiredis] [--quick] [--repeat N]

* the cross-node and one-node lines of both checkouts, their runs interleaved: the other
  checkout's nodes (and its clients) run its own code (``PYTHONPATH``), against their own Redis;
  with ``--compare-no-hiredis`` they cannot import hiredis (as before the cluster extra had it).

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
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _harness import PYTHON, MiB, Report, common_args, link, median, mode_of, ratio
from peer import cpu_seconds, memory_kib, pieces

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"full": 100 * MiB, "quick": 32 * MiB, "smoke": 4 * MiB}
LINK_SIZES = {"full": 256 * MiB, "quick": 96 * MiB, "smoke": 8 * MiB}
ROOM_SIZES = {"full": 64 * MiB, "quick": 16 * MiB, "smoke": 4 * MiB}
REPEATS = {"full": 3, "quick": 2, "smoke": 1}
CHUNK = 256 * 1024
RAW_IN_FLIGHT = 8
#: Bytes the ceiling's publisher keeps unconfirmed: a node's default (cluster/_node.py).
IN_FLIGHT = 4 * MiB


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
#: Set by --compare-no-hiredis: the other checkout's processes cannot import hiredis.
HIDE_HIREDIS = False


def code_env(root: Path) -> dict[str, str] | None:
    """The environment of processes that run the code of checkout ``root`` (None: this one)."""
    if root == ROOT:
        return None
    path = [str(root)] + ([str(ROOT / "benchmarks" / "no_hiredis")] if HIDE_HIREDIS else [])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def start_node(redis_url: str | None, root: Path = ROOT) -> tuple[subprocess.Popen[str], str]:
    script = str(root / "benchmarks" / "cluster.py")
    command = [PYTHON, script, "--role", "node"] + (["--redis", redis_url] if redis_url else [])
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=code_env(root)
    )
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


def run_clients(job: dict[str, Any], root: Path = ROOT) -> dict[str, Any]:
    done = subprocess.run(
        [PYTHON, str(root / "benchmarks" / "cluster.py"), "--role", "clients", "--job", json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=code_env(root),
    )
    if done.returncode != 0:
        raise RuntimeError(f"clients failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_measured(job: dict[str, Any], pids: list[int], root: Path = ROOT) -> tuple[dict[str, Any], float]:
    """The clients' result for ``job``, and the CPU seconds the processes ``pids`` spent on it."""
    before = sum(cpu_seconds(pid) for pid in pids)
    result = run_clients(job, root)
    return result, sum(cpu_seconds(pid) for pid in pids) - before


async def publish_ceiling(job: dict[str, Any]) -> dict[str, Any]:
    """Redis pub/sub alone: ``size`` bytes in ``CHUNK * 2`` messages from this process to a
    subscriber process, at most ``IN_FLIGHT`` bytes unconfirmed (the subscriber confirms every
    MiB on a channel of its own), as a node's sender publishes (cluster/_sender.py)."""
    import redis.asyncio

    size, url, message = job["size"], job["redis"], os.urandom(2 * CHUNK)
    client = redis.asyncio.Redis.from_url(url, protocol=2)
    listener = client.pubsub(ignore_subscribe_messages=True)
    await listener.subscribe("ceiling:credit")
    subscriber = await asyncio.create_subprocess_exec(
        PYTHON, __file__, "--role", "subscribe", "--job", json.dumps(job), stdout=asyncio.subprocess.PIPE
    )
    assert subscriber.stdout is not None
    await subscriber.stdout.readline()  # subscribed
    confirmed = asyncio.Event()
    state = {"unconfirmed": 0}

    async def credits() -> None:
        async for entry in listener.listen():
            if entry.get("type") == "message":
                state["unconfirmed"] -= int(entry["data"])
                confirmed.set()

    reader = asyncio.create_task(credits())
    # Published as a node's sender does: on a connection with Redis's replies off.
    publisher = client.connection_pool.make_connection()
    await publisher.connect()
    await publisher.send_command("CLIENT", "REPLY", "OFF", check_health=False)
    command = publisher.pack_command("PUBLISH", "ceiling:data", message)
    started = time.perf_counter()
    sent = 0
    while sent < size:
        while state["unconfirmed"] >= IN_FLIGHT:
            confirmed.clear()
            await confirmed.wait()
        await publisher.send_packed_command(command, check_health=False)
        sent += len(message)
        state["unconfirmed"] += len(message)
    while state["unconfirmed"] > 0:  # the subscriber confirms the rest once it has it all
        confirmed.clear()
        await confirmed.wait()
    seconds = time.perf_counter() - started
    await subscriber.wait()
    await publisher.disconnect()
    reader.cancel()
    await listener.aclose()  # type: ignore[no-untyped-call]
    await client.aclose()
    return {"seconds": seconds, "bytes": sent}


async def subscribe_ceiling(job: dict[str, Any]) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(job["redis"], protocol=2)
    listener = client.pubsub(ignore_subscribe_messages=True)
    await listener.subscribe("ceiling:data")
    print("SUBSCRIBED", flush=True)
    received = owed = 0
    async for entry in listener.listen():
        if entry.get("type") != "message":
            continue
        received += len(entry["data"])
        owed += len(entry["data"])
        if owed >= MiB or received >= job["size"]:
            await client.publish("ceiling:credit", owed)
            owed = 0
        if received >= job["size"]:
            break
    await listener.aclose()  # type: ignore[no-untyped-call]
    await client.aclose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.redis_support import redis_process

    mode = mode_of(args)
    report = Report("cluster", mode)
    size = SIZES[mode]
    repeats = args.repeat or REPEATS[mode]
    roots = [ROOT] + ([Path(args.compare).resolve()] if args.compare else [])
    times: dict[tuple[Path, str], list[float]] = {}
    cpu: dict[tuple[Path, str], list[float]] = {}
    peaks: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        setups: dict[Path, tuple[str, int, list[tuple[subprocess.Popen[str], str]]]] = {}
        for root in roots:
            redis_url, redis_proc = stack.enter_context(redis_process())
            procs = [start_node(redis_url, root), start_node(redis_url, root)]
            stack.callback(stop_nodes, procs)
            setups[root] = (redis_url, redis_proc.pid, procs)
        plain = [start_node(None)]
        stack.callback(stop_nodes, plain)
        redis_url, redis_pid, procs = setups[ROOT]
        (a, a_url), (b, b_url) = procs
        idle = {proc.pid: memory_kib(proc.pid)["VmRSS"] for proc, _ in [*procs, *plain]}
        jobs: dict[str, dict[str, Any]] = {
            "raw": {"kind": "raw", "sender": a_url, "receiver": b_url},
            "raw1": {"kind": "raw", "sender": a_url, "receiver": b_url, "in_flight": 1},
            "local+redis": {"kind": "local", "sender": a_url},
            "local": {"kind": "local", "sender": plain[0][1]},
        }
        for _ in range(repeats):
            for root in roots:  # interleaved: each checkout's runs beside the other's
                _url, pid, ((node_a, url_a), (node_b, url_b)) = setups[root]
                pids = [node_a.pid, node_b.pid, pid]
                for name, receiver in (("cross-node", url_b), ("one node", url_a)):
                    job = {"kind": "stream", "sender": url_a, "receiver": receiver, "size": size}
                    result, spent = run_measured(job, pids, root)
                    times.setdefault((root, name), []).append(result["seconds"])
                    cpu.setdefault((root, name), []).append(spent)
            for name, job in jobs.items():
                result, spent = run_measured(dict(job, size=size), [a.pid, b.pid, redis_pid])
                times.setdefault((ROOT, name), []).append(result["seconds"])
                cpu.setdefault((ROOT, name), []).append(spent)
            ceiling = asyncio.run(publish_ceiling({"size": size, "redis": redis_url}))
            times.setdefault((ROOT, "ceiling"), []).append(ceiling["seconds"])
        for proc, _ in [*procs, *plain]:
            peaks[str(proc.pid)] = (memory_kib(proc.pid)["VmHWM"] - idle[proc.pid]) / 1024
    label = f"{size // MiB}MiB"

    def seconds(name: str, root: Path = ROOT) -> float:
        return median(times[(root, name)])

    def cpu_per_gib(name: str, root: Path = ROOT) -> float:
        return median(cpu[(root, name)]) * 1024 * MiB / size

    raw, raw1, ceiling_s = seconds("raw"), seconds("raw1"), seconds("ceiling")
    for root in roots:
        cross, one = seconds("cross-node", root), seconds("one node", root)
        which = "" if root == ROOT else f" ({root})"
        report.line(
            f"client on A -> client on B over Redis {label}{which}",
            size / cross / 1e6,
            "MB/s",
            {
                "hand-rolled relay, acked emits 1 in flight": ratio(raw1, cross),
                "8 in flight": ratio(raw, cross),
                "relay on one node": ratio(one, cross),
                "Redis pub/sub alone": ratio(ceiling_s, cross),
            },
            target=">=4x hand-rolled (1 and 8 in flight), >=0.6x one node",
            met=raw1 / cross >= 4 and raw / cross >= 4 and one / cross >= 0.6,
        )
        report.note(
            f"CPU of both nodes and Redis per GiB{which}: "
            f"cross-node {cpu_per_gib('cross-node', root):.2f} s, "
            f"relay on one node {cpu_per_gib('one node', root):.2f} s"
            + (f", hand-rolled relay (8 in flight) {cpu_per_gib('raw'):.2f} s" if root == ROOT else "")
        )
    report.line(
        f"Redis pub/sub alone, {2 * CHUNK // 1024} KiB messages, {IN_FLIGHT // MiB} MiB in flight {label}",
        size / ceiling_s / 1e6,
        "MB/s",
        note="the transport's ceiling: one publishing process, Redis, one subscribing process",
    )
    local, plain_s = seconds("local+redis"), seconds("local")
    report.line(
        f"upload {label} to a node with the Redis manager",
        size / local / 1e6,
        "MB/s",
        {"without the manager": ratio(plain_s, local)},
        target=">=0.95x",
        met=plain_s / local >= 0.95,
    )
    node_a, node_b, plain_server = (peaks[str(proc.pid)] for proc, _ in [*procs, *plain])
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
    p.add_argument("--compare", default=None, help="also run this checkout's code, interleaved with ours")
    p.add_argument(
        "--compare-no-hiredis", action="store_true", help="the other checkout's processes without hiredis"
    )
    p.add_argument(
        "--role", choices=("node", "clients", "soak", "subscribe"), default=None, help=argparse.SUPPRESS
    )
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
    elif arguments.role == "subscribe":
        asyncio.run(subscribe_ceiling(json.loads(arguments.job)))
    else:
        os.chdir(os.path.dirname(os.path.abspath(__file__)))
        HIDE_HIREDIS = arguments.compare_no_hiredis
        if arguments.rooms:
            run_rooms(arguments)
        elif arguments.link_rtt:
            run_link(arguments)
        else:
            run_soak(arguments) if arguments.soak else run(arguments)
