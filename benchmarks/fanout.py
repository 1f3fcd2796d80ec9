"""One stream to many, and relays between clients: sio_stream vs baselines in the same run.

    python benchmarks/fanout.py [--quick | --smoke] [--repeat N] [--recipients N]
                                [--sizes MIB,MIB] [--fanout-only]

A server process (this script, ``--role server``) relays; one client process (this script,
``--role clients``) holds the sender and every recipient, each its own Socket.IO connection.

* **fan-out**: the sender uploads one stream that the server relays to a room of N recipients,
  against N relays of the same bytes one recipient at a time (the same stream code, N times);
  for each size of ``--sizes``, with the CPU the server and the clients' process spent on each.
* **slow recipient**: the same fan-out with one recipient that stops reading, with ``max_lag``;
  the others' rate against the fan-out without the slow one.
* **relay**: one sender, one recipient, through the server; against a hand-rolled relay with
  python-socketio (acked binary emits, several in flight, the server forwarding each chunk with
  an acked emit to the recipient). The server's peak RSS above idle is printed with each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from _harness import PYTHON, MiB, Report, common_args, median, mode_of, ratio
from peer import cpu_seconds, memory_kib, pieces, reset_peak

SIZES = {"full": 100 * MiB, "quick": 32 * MiB, "smoke": 2 * MiB}
RELAY_SIZES = {"full": 1024 * MiB, "quick": 128 * MiB, "smoke": 4 * MiB}
REPEATS = {"full": 3, "quick": 2, "smoke": 1}
CHUNK = 256 * 1024
RAW_IN_FLIGHT = 8
MAX_LAG = 4 * MiB


# -- the server ------------------------------------------------------------------------------------
async def serve() -> None:
    import socketio
    from aiohttp import web

    from sio_stream import ss

    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=4 * MiB)
    streams = ss(sio)

    @sio.on("join")
    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True

    @streams.on("relay")
    async def relay(sid: str, stream: Any, to: Any, max_lag: int | None) -> Any:
        acks = await streams.call("file", stream, to=to, max_lag=max_lag, timeout=None)
        if isinstance(acks, dict):  # a room: {sid: ack or the exception that stands for it}
            return {
                key: str(value) if isinstance(value, BaseException) else value for key, value in acks.items()
            }
        return acks

    @sio.on("raw-chunk")
    async def raw_chunk(sid: str, to: str, data: bytes) -> bool:
        # The hand-rolled relay: forward, and ack the sender once the recipient acked.
        await sio.call("raw-chunk", data, to=to, timeout=600)
        return True

    @sio.on("raw-end")
    async def raw_end(sid: str, to: str) -> Any:
        return await sio.call("raw-end", to=to, timeout=600)

    @sio.on("stats")
    def stats(sid: str, reset: bool = False) -> dict[str, Any]:
        if reset:
            reset_peak()
        mem = memory_kib()
        return {"rss_kib": mem["VmRSS"], "hwm_kib": mem["VmHWM"], "cpu": cpu_seconds()}

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"LISTENING {runner.addresses[0][1]}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


# -- the clients -----------------------------------------------------------------------------------
async def clients(url: str, job: dict[str, Any]) -> dict[str, Any]:
    import socketio

    from sio_stream import create_stream, ss

    size = job["size"]
    recipients = []
    stalled = asyncio.Event()
    progress = asyncio.Event()  # set whenever a recipient finishes
    for i in range(job["recipients"]):
        client = socketio.AsyncClient()
        streams = ss(client)
        done: dict[str, Any] = {"bytes": 0, "end": None}
        slow = i < job.get("slow", 0)

        @streams.on("file")
        async def on_file(stream: Any, done: dict[str, Any] = done, slow: bool = slow) -> int:
            if slow:
                await stalled.wait()  # never set: this recipient stops reading
            async for chunk in stream:
                done["bytes"] += len(chunk)
            done["end"] = time.perf_counter()
            progress.set()
            return int(done["bytes"])

        @client.on("raw-chunk")
        def raw_chunk(data: bytes, done: dict[str, Any] = done) -> bool:
            done["bytes"] += len(data)
            return True

        @client.on("raw-end")
        def raw_end(done: dict[str, Any] = done) -> int:
            done["end"] = time.perf_counter()
            progress.set()
            return int(done["bytes"])

        await client.connect(url, transports=["websocket"])
        await client.call("join", "room")
        recipients.append((client, done, slow))
    sender = socketio.AsyncClient()
    sender_streams = ss(sender)
    await sender.connect(url, transports=["websocket"])
    await sender.call("stats", True)

    async def upload(to: Any, max_lag: int | None = None) -> Any:
        stream = create_stream()
        reply = asyncio.create_task(sender_streams.call("relay", stream, to, max_lag, timeout=None))
        for piece in pieces(size, CHUNK):
            await stream.write(piece)
        await stream.end()
        return await reply

    async def raw_upload(to: str) -> Any:
        slots = asyncio.Semaphore(RAW_IN_FLIGHT)
        pending: set[asyncio.Task[Any]] = set()
        for piece in pieces(size, CHUNK):
            await slots.acquire()
            task = asyncio.create_task(sender.call("raw-chunk", (to, piece), timeout=600))
            task.add_done_callback(lambda _t: slots.release())
            pending.add(task)
            pending = {t for t in pending if not t.done()}
        await asyncio.gather(*pending)
        return await sender.call("raw-end", to, timeout=600)

    sids = [client.get_sid() for client, _, _ in recipients]
    server_cpu = (await sender.call("stats"))["cpu"]
    clients_cpu = cpu_seconds()
    started = time.perf_counter()
    kind = job["kind"]
    if kind == "fanout":
        reply = asyncio.create_task(upload("room", job.get("max_lag")))
    elif kind == "one-by-one":

        async def one_by_one() -> None:
            for sid in sids:
                await upload(sid)

        reply = asyncio.create_task(one_by_one())
    elif kind == "relay":
        reply = asyncio.create_task(upload(sids[0]))
    else:  # raw-relay
        reply = asyncio.create_task(raw_upload(sids[0]))
    fast = [done for _, done, slow in recipients if not slow]
    # Done when every recipient that reads has the whole stream (the stalled one never acks).
    reply.add_done_callback(lambda _task: progress.set())
    while not all(done["end"] is not None and done["bytes"] >= size for done in fast) and not reply.done():
        progress.clear()
        await progress.wait()
    if reply.done():
        reply.result()  # raises what went wrong
    seconds = max(done["end"] for done in fast) - started
    clients_cpu = cpu_seconds() - clients_cpu
    spread = max(done["end"] for done in fast) - min(done["end"] for done in fast)
    got = [done["bytes"] for done in fast]
    if any(value != size for value in got):
        raise RuntimeError(f"{kind}: recipients got {got}, expected {size} bytes each")
    if not job.get("slow"):
        await asyncio.wait_for(reply, 600)
    else:
        reply.cancel()
    server = await sender.call("stats")
    for client, _, _ in recipients:
        await client.disconnect()
    await sender.disconnect()
    return {
        "seconds": seconds,
        "bytes": size * len(got),
        "server_hwm_kib": server["hwm_kib"],
        # CPU until the reply (a little after the last byte): the server's and this process's
        "server_cpu": server["cpu"] - server_cpu,
        "clients_cpu": clients_cpu,
        "spread": spread,  # from the first recipient to have it all to the last
    }


def run_clients(url: str, job: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [PYTHON, __file__, "--role", "clients", url, json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"clients failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("fanout", mode)
    sizes = [int(mib) * MiB for mib in args.sizes.split(",")] if args.sizes else [SIZES[mode]]
    relay_size = RELAY_SIZES[mode]
    n = args.recipients
    repeats = args.repeat or REPEATS[mode]
    proc = subprocess.Popen(
        [PYTHON, __file__, "--role", "server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        assert proc.stdout is not None
        url = f"http://127.0.0.1:{int(proc.stdout.readline().split()[1])}"
        idle_kib = memory_kib(proc.pid)["VmRSS"]
        jobs: dict[str, dict[str, Any]] = {}
        for size in sizes:
            jobs[f"fanout {size}"] = {"kind": "fanout", "size": size, "recipients": n}
            jobs[f"one-by-one {size}"] = {"kind": "one-by-one", "size": size, "recipients": n}
        if not args.fanout_only:
            size = sizes[0]
            jobs["slow+max_lag"] = {
                "kind": "fanout",
                "size": size,
                "recipients": n,
                "slow": 1,
                "max_lag": MAX_LAG,
            }
            jobs["relay"] = {"kind": "relay", "size": relay_size, "recipients": 1}
            jobs["raw-relay"] = {"kind": "raw-relay", "size": relay_size, "recipients": 1}
        for _ in range(repeats):
            for name, job in jobs.items():
                result = run_clients(url, job)
                result["hwm_mib"] = (result["server_hwm_kib"] - idle_kib) / 1024
                results.setdefault(name, []).append(result)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=30)

    def mid(name: str, key: str = "seconds") -> float:
        return median([r[key] for r in results[name]])

    for size in sizes:
        fan, seq = mid(f"fanout {size}"), mid(f"one-by-one {size}")
        report.line(
            f"fan-out {size // MiB}MiB to {n} recipients",
            size * n / fan / 1e6,
            "MB/s",
            {"one at a time": ratio(seq, fan)},
            target=">=2x one at a time, server peak RSS <= +64 MiB",
            met=seq / fan >= 2 and max(r["hwm_mib"] for r in results[f"fanout {size}"]) <= 64,
            server_peak_mib=max(r["hwm_mib"] for r in results[f"fanout {size}"]),
        )
        # Both ways are CPU-bound on loopback. The clients' process holds the sender and every
        # recipient on one thread: one at a time it uploads n times, the fan-out once, but both
        # download n times, so its CPU ratio caps the wall ratio whenever it has a core to itself
        # (an idle machine); on a busy one the processes' sum counts.
        fan_cpu = [mid(f"fanout {size}", key) for key in ("server_cpu", "clients_cpu")]
        seq_cpu = [mid(f"one-by-one {size}", key) for key in ("server_cpu", "clients_cpu")]
        report.note(
            f"{size // MiB}MiB, CPU s server / clients' process: fan-out {fan_cpu[0]:.2f} / "
            f"{fan_cpu[1]:.2f}, one at a time {seq_cpu[0]:.2f} / {seq_cpu[1]:.2f} "
            f"(x{ratio(seq_cpu[0], fan_cpu[0]):.2f} / x{ratio(seq_cpu[1], fan_cpu[1]):.2f}); "
            f"the fan-out's slowest recipient finished "
            f"{1000 * max(r['spread'] for r in results[f'fanout {size}']):.0f} ms after its fastest"
        )
    if not args.fanout_only:
        size = sizes[0]
        fan = mid(f"fanout {size}")
        slow = mid("slow+max_lag")
        # The slow recipient is dropped: the others' rate, against theirs without it.
        others_rate = size * (n - 1) / slow
        report.line(
            f"fan-out with 1 stalled recipient, max_lag {MAX_LAG // MiB}MiB",
            others_rate / 1e6,
            "MB/s",
            {"no stalled": ratio(others_rate, size * n / fan)},
            target=">=0.8x no stalled",
            met=others_rate / (size * n / fan) >= 0.8,
        )
        relay, raw = mid("relay"), mid("raw-relay")
        report.line(
            f"relay {relay_size // MiB}MiB client->server->client",
            relay_size / relay / 1e6,
            "MB/s",
            {"hand-rolled python-socketio relay": ratio(raw, relay)},
            target=">=1x hand-rolled",
            met=raw / relay >= 1,
        )
    for name, rows in results.items():
        label = " ".join(f"{int(word) // MiB}MiB" if word.isdigit() else word for word in name.split())
        report.note(f"server peak RSS above idle, {label}: {max(r['hwm_mib'] for r in rows):.1f} MiB")
    return report.finish(args.json)


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--recipients", type=int, default=10)
    p.add_argument(
        "--sizes", default=None, help="fan-out sizes in MiB, comma-separated (default: the mode's)"
    )
    p.add_argument("--fanout-only", action="store_true", help="skip the stalled-recipient and relay lines")
    p.add_argument("--role", choices=("server", "clients"), default=None, help=argparse.SUPPRESS)
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    if arguments.role == "server":
        asyncio.run(serve())
    elif arguments.role == "clients":
        url, job = arguments.rest
        print(json.dumps(asyncio.run(clients(url, json.loads(job)))))
    else:
        os.chdir(os.path.dirname(os.path.abspath(__file__)))
        run(arguments)
