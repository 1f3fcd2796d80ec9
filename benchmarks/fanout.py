"""One stream to many, and relays between clients: sio_stream vs baselines in the same run.

    python benchmarks/fanout.py [--quick | --smoke] [--repeat N] [--recipients N]
                                [--sizes MIB,MIB] [--fanout-only] [--recipient-processes N[,N]]

A server process (this script, ``--role server``) relays. The clients run in processes of their
own, each Socket.IO connection its own client: the sender alone in one (``--role sender``), the
recipients spread over ``--recipient-processes`` others (``--role recipients``; 1 by default).
With everything on loopback every process is CPU-bound, so a client process that holds more work
than the server caps the ratio instead of the library; ``0`` puts the sender and every recipient
in one process (``--role clients``), the layout this script had before, to compare.

* **fan-out**: the sender uploads one stream that the server relays to a room of N recipients,
  against N relays of the same bytes one recipient at a time (the same stream code, N times),
  run back to back in each round: the ratio is the median of the rounds' ratios;
  for each size of ``--sizes``, and each layout, with what every process's event loop thread did
  meanwhile: its time on a core and its time waiting for one (``/proc/PID/task/PID/schedstat``),
  as a share of the job's wall time. A process near 100% in all never waited for its peers: it
  is the bound.
* **slow recipient**: the same fan-out with one recipient that stops reading, with ``max_lag``;
  the others' rate against the fan-out without the slow one.
* **relay**: one sender, one recipient, through the server; against a hand-rolled relay with
  python-socketio (acked binary emits, several in flight, the server forwarding each chunk with
  an acked emit to the recipient). The server's peak RSS above idle is printed with each.

Times are read with ``time.monotonic()`` in each process: one clock for the whole machine on
Linux, so the sender's start and the recipients' ends can be subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from _harness import PYTHON, MiB, Report, common_args, median, mode_of, ratio
from peer import memory_kib, pieces, reset_peak

SIZES = {"full": 100 * MiB, "quick": 32 * MiB, "smoke": 2 * MiB}
RELAY_SIZES = {"full": 1024 * MiB, "quick": 128 * MiB, "smoke": 4 * MiB}
REPEATS = {"full": 3, "quick": 2, "smoke": 1}
CHUNK = 256 * 1024
RAW_IN_FLIGHT = 8
MAX_LAG = 4 * MiB
#: Recipient processes by default. The recipients receive as many bytes as the server sends, so
#: on 2 cores their CPU and the server's share the machine whatever the layout; measured there
#: (2026-12-07), one recipient process beside the sender's lifts the ceiling of the one-process
#: layout (its busiest process did the sender's and every recipient's work), while two add per-
#: process overhead that 2 cores pay for. With 4 cores or more, 2 leave the server the only bound.
RECIPIENT_PROCESSES = 1
#: Generous: a 1 GiB relay on a busy 2-core machine takes minutes.
JOB_TIMEOUT = 1800


def loop_times() -> tuple[float, float]:
    """(seconds on a core, seconds runnable but waiting for one) of this process's main thread,
    which runs the event loop; from the scheduler's statistics, so a busy machine shows as waiting."""
    pid = os.getpid()
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        on_cpu, waiting = f.read().split()[:2]
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def since(before: tuple[float, float]) -> list[float]:
    now = loop_times()
    return [now[0] - before[0], now[1] - before[1]]


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

    @sio.on("bench-done")
    async def bench_done(sid: str) -> None:
        # A recipient has the whole stream: tell the sender, which may be in another process.
        await sio.emit("bench-done", to="senders")

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
        return {"rss_kib": mem["VmRSS"], "hwm_kib": mem["VmHWM"], "loop": loop_times()}

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"LISTENING {runner.addresses[0][1]}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


# -- the recipients --------------------------------------------------------------------------------
class Recipients:
    """Recipients ``first`` .. ``first + count - 1`` of a job, each its own connection, in the room.

    The first ``job["slow"]`` of the job's recipients never read. Each reading recipient stamps
    the time it has the whole stream and tells the sender through the server (``bench-done``);
    one whose stream failed (dropped for lagging, say) tells it too, without a stamp, so that a
    failed run ends with an error instead of a sender waiting forever."""

    def __init__(self, job: dict[str, Any], first: int, count: int) -> None:
        self.size: int = job["size"]
        self.slow = [i < job.get("slow", 0) for i in range(first, first + count)]
        self.done: list[dict[str, Any]] = [{"bytes": 0, "end": None, "over": False} for _ in range(count)]
        self.clients: list[Any] = []
        self.sids: list[str] = []
        self._progress = asyncio.Event()  # set whenever a recipient finishes

    async def open(self, url: str) -> None:
        import socketio

        from sio_stream import ss

        never = asyncio.Event()  # never set: what a slow recipient waits for
        for done, slow in zip(self.done, self.slow, strict=True):
            client = socketio.AsyncClient()
            streams = ss(client)

            async def finish(done: dict[str, Any] = done, client: Any = client, whole: bool = True) -> int:
                if whole:
                    done["end"] = time.monotonic()
                done["over"] = True
                self._progress.set()
                await client.emit("bench-done")
                return int(done["bytes"])

            @streams.on("file")
            async def on_file(
                stream: Any, done: dict[str, Any] = done, slow: bool = slow, end: Any = finish
            ) -> int:
                if slow:
                    await never.wait()
                try:
                    async for chunk in stream:
                        done["bytes"] += len(chunk)
                except Exception:
                    await end(whole=False)
                    raise  # the library logs why the handler stopped
                return int(await end())

            @client.on("raw-chunk")
            def raw_chunk(data: bytes, done: dict[str, Any] = done) -> bool:
                done["bytes"] += len(data)
                return True

            @client.on("raw-end")
            async def raw_end(end: Any = finish) -> int:
                return int(await end())

            await client.connect(url, transports=["websocket"])
            await client.call("join", "room")
            self.clients.append(client)
            self.sids.append(client.get_sid())

    async def finished(self) -> None:
        """Wait until every reading recipient has had its whole stream, or its stream failed."""
        while not all(done["over"] for done, slow in zip(self.done, self.slow, strict=True) if not slow):
            self._progress.clear()
            await self._progress.wait()

    def result(self) -> dict[str, Any]:
        readers = [done for done, slow in zip(self.done, self.slow, strict=True) if not slow]
        ends = [done["end"] for done in readers if done["end"] is not None]
        return {"ends": ends, "bytes": [done["bytes"] for done in readers]}

    async def close(self) -> None:
        for client in self.clients:
            await client.disconnect()


async def recipients(url: str, job: dict[str, Any]) -> None:
    """``--role recipients``: print ``READY <sids>``, then the result line once every reading
    recipient is done; disconnect when stdin closes."""
    group = Recipients(job, job["first"], job["count"])
    await group.open(url)
    print("READY " + json.dumps(group.sids), flush=True)
    before = loop_times()
    await group.finished()
    print(json.dumps(group.result() | {"loop": since(before)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await group.close()


# -- the sender ------------------------------------------------------------------------------------
async def send(url: str, job: dict[str, Any], to: Any) -> dict[str, Any]:
    """Upload ``job["size"]`` bytes to ``to`` (the room, a sid, or a list of sids one at a time)
    through the server; return once every reading recipient said it has them all."""
    import socketio

    from sio_stream import create_stream, ss

    size = job["size"]
    readers = job["recipients"] - job.get("slow", 0)
    sender = socketio.AsyncClient()
    sender_streams = ss(sender)
    heard = asyncio.Event()
    finished = [0]

    @sender.on("bench-done")
    def bench_done() -> None:
        finished[0] += 1
        heard.set()

    await sender.connect(url, transports=["websocket"])
    await sender.call("join", "senders")
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

    async def one_by_one(sids: list[str]) -> None:
        for sid in sids:
            await upload(sid)

    server_before = (await sender.call("stats"))["loop"]
    before = loop_times()
    started = time.monotonic()
    kind = job["kind"]
    if kind == "fanout":
        reply = asyncio.create_task(upload(to, job.get("max_lag")))
    elif kind == "one-by-one":
        reply = asyncio.create_task(one_by_one(to))
    elif kind == "relay":
        reply = asyncio.create_task(upload(to))
    else:  # raw-relay
        reply = asyncio.create_task(raw_upload(to))
    reply.add_done_callback(lambda _task: heard.set())
    while finished[0] < readers and not reply.done():
        heard.clear()
        await heard.wait()
    if reply.done():
        reply.result()  # raises what went wrong
    if not job.get("slow"):
        await asyncio.wait_for(reply, 600)
    else:  # the stalled recipient never acks
        reply.cancel()
    mine = since(before)
    server = await sender.call("stats")
    await sender.disconnect()
    return {
        "start": started,
        "server_hwm_kib": server["hwm_kib"],
        # Until the reply (a little after the last byte): the server's loop and this process's.
        "server_loop": [after - was for after, was in zip(server["loop"], server_before, strict=True)],
        "sender_loop": mine,
    }


def target(job: dict[str, Any], sids: list[str]) -> Any:
    return {"fanout": "room", "one-by-one": sids}.get(job["kind"], sids[0])


async def clients(url: str, job: dict[str, Any]) -> dict[str, Any]:
    """``--role clients``: the sender and every recipient in this one process (the old layout)."""
    group = Recipients(job, 0, job["recipients"])
    await group.open(url)
    sent = await send(url, job, target(job, group.sids))
    await group.finished()
    await group.close()
    return group.result() | sent


# -- the orchestration -----------------------------------------------------------------------------
def _role(role: str, url: str, job: dict[str, Any]) -> list[str]:
    return [PYTHON, __file__, "--role", role, url, json.dumps(job)]


def _last_json(stdout: str, what: str, returncode: int, stderr: str = "") -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed ({returncode}):\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_job(url: str, job: dict[str, Any], processes: int) -> dict[str, Any]:
    """One job in the given layout: the recipients' ends, the sender's start and every process's
    loop figures (``loops``: name -> [on a core, waiting for one] in seconds)."""
    n = job["recipients"]
    if processes == 0:
        done = subprocess.run(_role("clients", url, job), capture_output=True, text=True, timeout=JOB_TIMEOUT)
        out = _last_json(done.stdout, "clients", done.returncode, done.stderr)
        out["loops"] = {"server": out["server_loop"], "clients": out["sender_loop"]}
        return out
    processes = min(processes, n)
    bounds = [n * i // processes for i in range(processes + 1)]
    with contextlib.ExitStack() as files:
        groups = []
        try:
            for first, last in itertools.pairwise(bounds):
                # Their stderr to a file: read only after a failure, and a pipe nobody reads meanwhile
                # could fill up and stop them.
                errors = files.enter_context(tempfile.TemporaryFile("w+"))
                proc = subprocess.Popen(
                    _role("recipients", url, job | {"first": first, "count": last - first}),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    text=True,
                )
                groups.append((f"recipients {first + 1}-{last}", proc, errors))
            sids: list[str] = []
            for name, proc, errors in groups:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line.startswith("READY "):
                    proc.kill()
                    proc.wait()
                    errors.seek(0)
                    raise RuntimeError(f"{name} did not start: {line!r}\n{errors.read()[-3000:]}")
                sids += json.loads(line.split(" ", 1)[1])
            done = subprocess.run(
                _role("sender", url, job | {"to": target(job, sids)}),
                capture_output=True,
                text=True,
                timeout=JOB_TIMEOUT,
            )
            out = _last_json(done.stdout, "sender", done.returncode, done.stderr)
            out |= {
                "ends": [],
                "bytes": [],
                "loops": {"server": out["server_loop"], "sender": out["sender_loop"]},
            }
            for name, proc, errors in groups:
                # Closing stdin lets the recipients disconnect; they printed their result already.
                stdout, _ = proc.communicate(timeout=60)
                errors.seek(0)
                part = _last_json(stdout, name, proc.returncode, errors.read())
                out["ends"] += part["ends"]
                out["bytes"] += part["bytes"]
                out["loops"][name] = part["loop"]
            return out
        finally:
            for _name, proc, _errors in groups:
                if proc.poll() is None:  # only after a failure are they still running
                    proc.kill()
                    proc.wait()


def measure(url: str, job: dict[str, Any], processes: int) -> dict[str, Any]:
    out = run_job(url, job, processes)
    size = job["size"]
    if any(value != size for value in out["bytes"]):
        raise RuntimeError(f"{job['kind']}: recipients got {out['bytes']}, expected {size} bytes each")
    seconds = max(out["ends"]) - out["start"]
    return {
        "seconds": seconds,
        "bytes": size * len(out["bytes"]),
        "server_hwm_kib": out["server_hwm_kib"],
        "spread": max(out["ends"]) - min(out["ends"]),  # from the first recipient to have it all to the last
        "loops": out["loops"],
    }


def loops_note(rows: list[dict[str, Any]]) -> str:
    """Each process's loop thread in a job (medians over the repeats): CPU seconds, and the share
    of the job's wall time it spent on a core + waiting for one."""
    parts = []
    for name in rows[0]["loops"]:
        on_cpu = median([r["loops"][name][0] for r in rows])
        on = median([100 * r["loops"][name][0] / r["seconds"] for r in rows])
        waiting = median([100 * r["loops"][name][1] / r["seconds"] for r in rows])
        parts.append(f"{name} {on_cpu:.2f}s ({on:.0f}+{waiting:.0f}%)")
    return ", ".join(parts)


def layout_label(processes: int) -> str:
    return "1 client process" if processes == 0 else f"sender + {processes} recipient processes"


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("fanout", mode)
    sizes = [int(mib) * MiB for mib in args.sizes.split(",")] if args.sizes else [SIZES[mode]]
    layouts = [int(p) for p in args.recipient_processes.split(",")]
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
        jobs: dict[str, tuple[dict[str, Any], int]] = {}
        for size in sizes:
            for layout in layouts:  # alternated: the layouts see the same machine
                jobs[f"fanout {size} {layout}"] = ({"kind": "fanout", "size": size, "recipients": n}, layout)
                jobs[f"one-by-one {size} {layout}"] = (
                    {"kind": "one-by-one", "size": size, "recipients": n},
                    layout,
                )
        if not args.fanout_only:
            size, layout = sizes[0], layouts[-1]
            slow_job = {"kind": "fanout", "size": size, "recipients": n, "slow": 1, "max_lag": MAX_LAG}
            jobs["slow+max_lag"] = (slow_job, layout)
            jobs["relay"] = ({"kind": "relay", "size": relay_size, "recipients": 1}, layout)
            jobs["raw-relay"] = ({"kind": "raw-relay", "size": relay_size, "recipients": 1}, layout)
        for _ in range(repeats):
            for name, (job, layout) in jobs.items():
                result = measure(url, job, layout)
                result["hwm_mib"] = (result["server_hwm_kib"] - idle_kib) / 1024
                results.setdefault(name, []).append(result)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=30)

    def mid(name: str, key: str = "seconds") -> float:
        return median([r[key] for r in results[name]])

    for size in sizes:
        for layout in layouts:
            fan_name, seq_name = f"fanout {size} {layout}", f"one-by-one {size} {layout}"
            fan = mid(fan_name)
            # Each round's fan-out and one-at-a-time ran back to back: their ratio, round by round,
            # sees the same load on a shared machine; the median of those is the figure.
            rounds = zip(results[seq_name], results[fan_name], strict=True)
            times = median([seq_row["seconds"] / fan_row["seconds"] for seq_row, fan_row in rounds])
            peak = max(r["hwm_mib"] for r in results[fan_name])
            suffix = f" ({layout_label(layout)})" if len(layouts) > 1 else ""
            report.line(
                f"fan-out {size // MiB}MiB to {n} recipients{suffix}",
                size * n / fan / 1e6,
                "MB/s",
                {"one at a time": times},
                target=">=2x one at a time, server peak RSS <= +64 MiB",
                met=times >= 2 and peak <= 64,
                server_peak_mib=peak,
                layout=layout_label(layout),
            )
            # Both ways are CPU-bound on loopback: the process whose loop thread is on a core or
            # waiting for one nearly all the time is the bound. One at a time the sender uploads
            # n times, the fan-out once; the recipients download n times either way. The server's
            # CPU ratio is the library's own, whatever the cores and the load.
            server_cpu = [
                median([r["loops"]["server"][0] for r in results[name]]) for name in (seq_name, fan_name)
            ]
            report.note(
                f"{size // MiB}MiB, {layout_label(layout)}, each loop thread's CPU (its share of the "
                f"wall time on a core + waiting for one): fan-out {loops_note(results[fan_name])}; "
                f"one at a time {loops_note(results[seq_name])}; the server's CPU one at a time "
                f"x{ratio(*server_cpu):.2f} the fan-out's; the fan-out's slowest recipient "
                f"finished {1000 * max(r['spread'] for r in results[fan_name]):.0f} ms after its fastest"
            )
    if not args.fanout_only:
        size = sizes[0]
        fan = mid(f"fanout {size} {layouts[-1]}")
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
        words = name.split()
        label = name
        if len(words) == 3:  # a fan-out job: kind, size, layout
            label = f"{words[0]} {int(words[1]) // MiB}MiB, {layout_label(int(words[2]))}"
        report.note(f"server peak RSS above idle, {label}: {max(r['hwm_mib'] for r in rows):.1f} MiB")
    return report.finish(args.json)


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--recipients", type=int, default=10)
    p.add_argument(
        "--sizes", default=None, help="fan-out sizes in MiB, comma-separated (default: the mode's)"
    )
    p.add_argument("--fanout-only", action="store_true", help="skip the stalled-recipient and relay lines")
    p.add_argument(
        "--recipient-processes",
        default=str(RECIPIENT_PROCESSES),
        help="processes the recipients are spread over, the sender in one more; 0: the sender and "
        "every recipient in one process; comma-separated to measure several layouts in one run "
        f"(default {RECIPIENT_PROCESSES})",
    )
    p.add_argument(
        "--role", choices=("server", "clients", "sender", "recipients"), default=None, help=argparse.SUPPRESS
    )
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    if arguments.role == "server":
        asyncio.run(serve())
    elif arguments.role == "recipients":
        url, job = arguments.rest
        asyncio.run(recipients(url, json.loads(job)))
    elif arguments.role == "sender":
        url, job = arguments.rest
        parsed = json.loads(job)
        print(json.dumps(asyncio.run(send(url, parsed, parsed["to"]))))
    elif arguments.role == "clients":
        url, job = arguments.rest
        print(json.dumps(asyncio.run(clients(url, json.loads(job)))))
    else:
        os.chdir(os.path.dirname(os.path.abspath(__file__)))
        run(arguments)
