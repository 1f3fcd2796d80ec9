"""The sync API (sio_stream.sync) against hand-rolled chunked emits on the same sync stack.

    python benchmarks/sync.py [--quick | --smoke] [--repeat N] [--modes threading,eventlet,gevent]
                              [--malloc-kept]

A ``socketio.Server`` in a process of its own, in each async mode (threading behind werkzeug,
eventlet's and gevent's WSGI servers, monkey-patched there), and a sync ``socketio.Client``
(threading) in this process. Per mode, an upload and a download of the same bytes:

* **sio_stream**: a stream (``write()`` from a thread, ``read()`` on the other side), defaults;
* **raw-socketio**: the baseline an application writes by hand, binary events of 512 KiB (the
  default chunk) with acks, 4 in flight (the default window): ``emit("raw-up", chunk)`` and
  ``call``-like ``emit("raw-down", offset)`` whose ack carries the chunk. It runs on the same
  client and server, so it gets what ``ss()`` does to their transport (faster websocket masks,
  larger reads on threading and gevent servers) as sio_stream does.

Each line is sio_stream's MB/s with ``xN vs raw-socketio``: N above 1 means sio_stream is faster;
and ``xM vs raw-socketio's CPU``: the CPU both processes spent on the hand-rolled transfer over
what they spent on sio_stream's (M above 1: sio_stream costs less), read from each process's
``getrusage()`` (every thread, ended ones included). On a shared machine the CPU ratio moves
much less than the time ratio.

Under each upload and download line, a note splits both transfers' CPU between the client and
the server, with each process's page faults per transfer (a kernel count the machine's load does
not move): where sio_stream costs more than the hand-rolled emits, and how much of it is glibc
handing freed chunk memory back to the kernel and faulting it in again (the client's reader
keeps a window of chunks alive where the hand-rolled callback frees each at once), and the
packets the client sent per MiB (a download's are its credit: ``$stream-read`` events, against
the hand-rolled requests).

``--malloc-kept`` measures both transfers once more per mode in a server and a client process
that called ``sio_stream.keep_freed_buffers()`` first (the public opt-in; lines marked ``[malloc
kept]``, in the same run as the library's defaults): what an application that opts in gets, and
how much of the gap the faults were.

Per mode also an **upload ceiling**: the same chunks emitted without acks, as fast as the client
queues them (``emit("raw-blast", chunk)``, then one ``call`` that returns once the server counted
them all): what the sync stack carries with Socket.IO's framing and nothing waiting. Its line
gives both uploads as fractions of it (``x0.5 vs ...``: half the ceiling's rate); an upload
cannot be more than 1/N of N times the ceiling's.

Once, a **Flask-SocketIO relay** (tests/flask_relay.py, threading, in a process of its own): an
asyncio client uploads ``--room-size`` bytes (32 MiB) that the server relays to a room of 4 asyncio
clients, each checking the sha256; the line is the bytes delivered in all per second, with ``xN
vs 4 uploads`` (the same upload read by the server itself, 4 times one after the other).

Per mode also a **fan-out**: the server sends one stream to a room of ``--recipients`` sync
clients (10 by default, all in this process), against the same bytes sent to each of them as a
stream of its own, one after the other (the same stream code, N times). The line is the bytes
delivered in all per second, with ``xN vs N unicast sends`` (``--no-fanout`` skips it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _harness import DEFAULT_CHUNK, DEFAULT_WINDOW, PYTHON, MiB, Report, common_args, median, mode_of, ratio

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"full": 256 * MiB, "quick": 64 * MiB, "smoke": 4 * MiB}
#: Bytes each recipient of the fan-out gets.
FAN_SIZES = {"full": 32 * MiB, "quick": 8 * MiB, "smoke": 1 * MiB}
FAN_ROOM = "fan"
REPEATS = {"full": 3, "quick": 2, "smoke": 1}
#: Bytes of the Flask-SocketIO relay to a room of asyncio clients (the issue's target is 32 MiB).
ROOM_SIZES = {"full": 32 * MiB, "quick": 32 * MiB, "smoke": 2 * MiB}
ROOM_MEMBERS = 4
MODES = ("threading", "eventlet", "gevent")
TIMEOUT = 300


# -- the server ------------------------------------------------------------------------------------
def serve(mode: str, malloc_kept: bool = False) -> None:
    from tests.sync_peer import leave_with_parent, listen, monkey_patch

    monkey_patch(mode)
    import socketio

    import sio_stream
    from sio_stream import sync

    if malloc_kept and not sio_stream.keep_freed_buffers():
        print("NOT KEPT: keep_freed_buffers() changed nothing here", flush=True)
        return

    sio = socketio.Server(async_mode=mode, max_http_buffer_size=4 * MiB)
    streams = sync.ss(sio)
    blob = bytes(range(256)) * (DEFAULT_CHUNK // 256)

    @streams.on("sio-up")
    def sio_up(sid: str, stream: sync.IOStream) -> int:
        return sum(len(chunk) for chunk in stream)

    @streams.on("sio-down")
    def sio_down(sid: str, size: int) -> sync.IOStream:
        stream = sync.create_stream()
        sio.start_background_task(write_blob, stream, size)
        return stream

    def write_blob(stream: sync.IOStream, size: int) -> None:
        for offset in range(0, size, DEFAULT_CHUNK):
            stream.write(blob[: min(DEFAULT_CHUNK, size - offset)], timeout=TIMEOUT)
        stream.end(timeout=TIMEOUT)

    @sio.on("fan-join")
    def fan_join(sid: str) -> bool:
        sio.enter_room(sid, FAN_ROOM)
        return True

    @streams.on("fan-start")
    def fan_start(sid: str, size: int, to_room: bool) -> int:
        """Send ``size`` bytes to every member of the room: one fan-out, or one stream each."""
        if to_room:
            stream = sync.create_stream()
            acks = streams.call("fan-file", stream, to=FAN_ROOM, writer=lambda: write_blob(stream, size))
            return sum(acks.values())
        total = 0
        for member, _ in list(sio.manager.get_participants("/", FAN_ROOM)):
            one = sync.create_stream()
            total += streams.call("fan-file", one, to=member, writer=lambda one=one: write_blob(one, size))
        return int(total)

    @sio.on("usage")
    def usage(sid: str) -> list[float]:
        return process_usage()

    @sio.on("raw-up")
    def raw_up(sid: str, chunk: bytes) -> int:
        return len(chunk)

    @sio.on("raw-down")
    def raw_down(sid: str, offset: int, size: int) -> bytes:
        return blob[: min(DEFAULT_CHUNK, size - offset)]

    # The ceiling: chunks emitted without acks, as fast as the stack takes them. Each event's
    # handler runs in a thread (a green thread) of its own, in any order: they count, and the
    # final call waits until the count is complete.
    blasted: dict[str, int] = {}
    counted = threading.Condition()  # monkey-patched in eventlet and gevent modes

    @sio.on("raw-blast")
    def raw_blast(sid: str, chunk: bytes) -> None:
        with counted:
            blasted[sid] = blasted.get(sid, 0) + len(chunk)
            counted.notify_all()

    @sio.on("raw-blasted")
    def raw_blasted(sid: str, size: int) -> int:
        with counted:
            counted.wait_for(lambda: blasted.get(sid, 0) >= size, TIMEOUT)
            return blasted.pop(sid, 0)

    leave_with_parent(sio)
    listen(mode, socketio.WSGIApp(sio))


def start_server(mode: str, script: list[str] | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        script or [PYTHON, __file__, "--serve", mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LISTENING "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the {mode} server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}"


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()  # this pid only
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the client ------------------------------------------------------------------------------------
def sio_upload(streams: Any, data: bytes) -> None:
    from sio_stream import sync

    stream = sync.create_stream()

    def write() -> None:
        view = memoryview(data)
        for offset in range(0, len(data), DEFAULT_CHUNK):
            stream.write(bytes(view[offset : offset + DEFAULT_CHUNK]), timeout=TIMEOUT)
        stream.end(timeout=TIMEOUT)

    writer = threading.Thread(target=write)
    writer.start()
    assert streams.call("sio-up", stream, timeout=TIMEOUT) == len(data)
    writer.join()


def sio_download(streams: Any, size: int) -> None:
    stream = streams.call("sio-down", size, timeout=TIMEOUT)
    got = 0
    for chunk in stream:
        got += len(chunk)
    assert got == size


def _in_flight(client: Any, requests: list[tuple[Any, ...]], event: str) -> int:
    """Emit every request with an ack, ``DEFAULT_WINDOW`` in flight; the bytes acked or carried."""
    slots = threading.Semaphore(DEFAULT_WINDOW)
    done = threading.Event()
    total = [0, 0]  # bytes, acks
    lock = threading.Lock()

    def acked(value: Any) -> None:
        with lock:
            total[0] += value if isinstance(value, int) else len(value)
            total[1] += 1
            if total[1] == len(requests):
                done.set()
        slots.release()

    for args in requests:
        slots.acquire()
        client.emit(event, args, callback=acked)
    if not done.wait(TIMEOUT):
        raise RuntimeError(f"{event}: the acks did not arrive")
    return total[0]


def raw_upload(client: Any, data: bytes) -> None:
    view = memoryview(data)
    chunks = [(bytes(view[o : o + DEFAULT_CHUNK]),) for o in range(0, len(data), DEFAULT_CHUNK)]
    assert _in_flight(client, chunks, "raw-up") == len(data)


def raw_unacked_upload(client: Any, data: bytes) -> None:
    """The same chunks as :func:`raw_upload`, emitted without acks (nothing waits for the server
    but python-engineio's queue): what the sync stack carries at most, with Socket.IO's framing."""
    view = memoryview(data)
    for offset in range(0, len(data), DEFAULT_CHUNK):
        client.emit("raw-blast", bytes(view[offset : offset + DEFAULT_CHUNK]))
    assert client.call("raw-blasted", len(data), timeout=TIMEOUT) == len(data)


def raw_download(client: Any, size: int) -> None:
    assert _in_flight(client, [(o, size) for o in range(0, size, DEFAULT_CHUNK)], "raw-down") == size


def process_usage() -> list[float]:
    """[CPU seconds, page faults] of this process so far: every thread, those that ended too
    (a sync client or a threading server starts and ends threads during a transfer; summing the
    live threads' counters loses what the ended ones used, or counts it as negative)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return [usage.ru_utime + usage.ru_stime, float(usage.ru_minflt)]


#: Per job, medians of: CPU seconds of the client, of the server; page faults of each; packets
#: the client sent.
Split = dict[str, tuple[float, float, float, float, float]]


Measured = tuple[dict[str, float], dict[str, float], Split]


def measure(url: str, size: int, repeats: int) -> Measured:
    """Median seconds per job, median CPU seconds per job of both processes together (what
    a busy machine's noise moves much less than the time: the work each way costs), and the
    split of that CPU and of the page faults between client and server."""
    import socketio

    from sio_stream import sync

    client = socketio.Client(reconnection=False)
    streams = sync.ss(client)
    client.connect(url, transports=["websocket"], wait_timeout=30)
    # Packets the client sends (a stream's credit, the hand-rolled requests): counted where every
    # emit and ack of python-socketio's client goes through.
    sent = [0]
    send_packet = client._send_packet

    def counted_send(packet: Any) -> None:
        sent[0] += 1
        send_packet(packet)

    client._send_packet = counted_send  # type: ignore[method-assign]
    data = bytes(range(256)) * (size // 256)
    jobs = {
        "sio upload": lambda: sio_upload(streams, data),
        "raw upload": lambda: raw_upload(client, data),
        "unacked upload": lambda: raw_unacked_upload(client, data),
        "sio download": lambda: sio_download(streams, size),
        "raw download": lambda: raw_download(client, size),
    }
    times: dict[str, list[float]] = {name: [] for name in jobs}
    cpu: dict[str, list[float]] = {name: [] for name in jobs}
    split: dict[str, list[tuple[float, float, float, float, float]]] = {name: [] for name in jobs}

    def counters() -> tuple[float, float, float, float, float]:
        (client_cpu, client_faults), (server_cpu, server_faults) = process_usage(), client.call("usage")
        return client_cpu, server_cpu, client_faults, server_faults, float(sent[0])

    try:
        for _ in range(repeats):
            for name, job in jobs.items():
                before = counters()
                started = time.perf_counter()
                job()
                times[name].append(time.perf_counter() - started)
                used = tuple(after - was for after, was in zip(counters(), before, strict=True))
                cpu[name].append(used[0] + used[1])
                # The counters' own "usage" call is one packet, sent before the job's count ends.
                split[name].append((used[0], used[1], used[2], used[3], used[4] - 1))
    finally:
        client.disconnect()
    return (
        {name: median(values) for name, values in times.items()},
        {name: median(values) for name, values in cpu.items()},
        {
            name: (
                median([v[0] for v in values]),
                median([v[1] for v in values]),
                median([v[2] for v in values]),
                median([v[3] for v in values]),
                median([v[4] for v in values]),
            )
            for name, values in split.items()
        },
    )


def measure_kept(url: str, size: int, repeats: int) -> Measured:
    """:func:`measure` in a client process of its own that called ``keep_freed_buffers()``."""
    import json

    done = subprocess.run(
        [PYTHON, __file__, "--measure-kept", json.dumps([url, size, repeats])],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 5 * repeats,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the [malloc kept] client failed: {done.stderr[-2000:]}")
    seconds, cpu, split = json.loads(done.stdout.splitlines()[-1])
    return seconds, cpu, {name: tuple(values) for name, values in split.items()}


def _measure_kept_here(arguments: str) -> None:
    import json

    import sio_stream

    if not sio_stream.keep_freed_buffers():
        raise SystemExit("keep_freed_buffers() changed nothing in this process")
    url, size, repeats = json.loads(arguments)
    print(json.dumps(measure(url, size, repeats)))


def measure_fanout(url: str, size: int, recipients: int, repeats: int) -> dict[bool, float]:
    """Seconds to send ``size`` bytes to each of ``recipients`` clients: {to the room: s, one by one: s}."""
    import socketio

    from sio_stream import sync

    clients = []
    try:
        for _ in range(recipients):
            client = socketio.Client(reconnection=False)
            clients.append(client)
            sync.ss(client).on("fan-file", lambda stream: sum(len(chunk) for chunk in stream))
            client.connect(url, transports=["websocket"], wait_timeout=30)
            client.call("fan-join", timeout=30)
        starter = sync.ss(clients[0])
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for to_room in (True, False):
                started = time.perf_counter()
                got = starter.call("fan-start", size, to_room, timeout=TIMEOUT)
                times[to_room].append(time.perf_counter() - started)
                assert got == size * recipients, (got, size * recipients)
    finally:
        # At once: a sync client's disconnect can take seconds, ten of them one after the other
        # would make most of a smoke run.
        leaving = [threading.Thread(target=client.disconnect) for client in clients]
        for thread in leaving:
            thread.start()
        for thread in leaving:
            thread.join(TIMEOUT)
    return {to_room: median(values) for to_room, values in times.items()}


async def _flask_room(url: str, size: int, repeats: int) -> tuple[float, float]:
    """Median seconds of (the relay to the room, one plain upload) of ``size`` bytes."""
    import hashlib

    import socketio

    import sio_stream

    data = bytes(range(256)) * (size // 256)
    digest = hashlib.sha256(data).hexdigest()
    members = []
    for _ in range(ROOM_MEMBERS):
        member = socketio.AsyncClient(reconnection=False)

        async def on_file(stream: Any, meta: Any) -> str:
            check = hashlib.sha256()
            async for chunk in stream:
                check.update(chunk)
            return check.hexdigest()

        sio_stream.ss(member).on("file", on_file)
        await member.connect(url, transports=["websocket"], wait_timeout=30)
        assert await member.call("join", timeout=30) is True
        members.append(member)
    uploader = socketio.AsyncClient(reconnection=False)
    streams = sio_stream.ss(uploader)
    await uploader.connect(url, transports=["websocket"], wait_timeout=30)

    async def send(event: str) -> Any:
        stream = sio_stream.create_stream()

        async def write() -> None:
            view = memoryview(data)
            for offset in range(0, size, DEFAULT_CHUNK):
                await stream.write(bytes(view[offset : offset + DEFAULT_CHUNK]))
            await stream.end()

        return await streams.call(event, stream, writer=write(), timeout=TIMEOUT)

    times: dict[str, list[float]] = {"share": [], "sha": []}
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            acks = await send("share")
            times["share"].append(time.perf_counter() - started)
            assert sorted(acks.values()) == [digest] * ROOM_MEMBERS, acks  # every member intact
            started = time.perf_counter()
            assert list(await send("sha")) == [digest, size]
            times["sha"].append(time.perf_counter() - started)
    finally:
        for client in [uploader, *members]:
            await client.disconnect()
    return median(times["share"]), median(times["sha"])


def measure_flask_room(size: int, repeats: int) -> tuple[float, float]:
    import asyncio

    proc, url = start_server("flask", [PYTHON, str(ROOT / "tests" / "flask_relay.py")])
    try:
        return asyncio.run(_flask_room(url, size, repeats))
    finally:
        stop_server(proc)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    mode = mode_of(args)
    report = Report("sync", mode)
    size = SIZES[mode]
    repeats = args.repeat or REPEATS[mode]
    if not args.no_room:
        relay, one = measure_flask_room(ROOM_SIZES[mode], repeats)
        report.line(
            f"Flask-SocketIO relay {ROOM_SIZES[mode] // MiB}MiB to {ROOM_MEMBERS} asyncio clients (intact)",
            ROOM_MEMBERS * ROOM_SIZES[mode] / relay / 1e6,
            "MB/s",
            {f"{ROOM_MEMBERS} uploads": ratio(ROOM_MEMBERS * one, relay)},
            mode="threading",
            op="flask-room",
        )
    for server_mode in args.modes.split(","):
        proc, url = start_server(server_mode)
        try:
            seconds, cpu, split = measure(url, size, repeats)
            fan = None if args.no_fanout else measure_fanout(url, FAN_SIZES[mode], args.recipients, repeats)
        finally:
            stop_server(proc)
        transfer_lines(report, server_mode, size, (seconds, cpu, split))
        if args.malloc_kept:
            proc, url = start_server(server_mode, [PYTHON, __file__, "--serve", server_mode, "--malloc-kept"])
            try:
                kept = measure_kept(url, size, repeats)
            finally:
                stop_server(proc)
            transfer_lines(report, server_mode, size, kept, " [malloc kept]")
        ceiling, ours, raw = seconds["unacked upload"], seconds["sio upload"], seconds["raw upload"]
        report.line(
            f"{server_mode} server, sync client: upload ceiling (unacked emits)",
            size / ceiling / 1e6,
            "MB/s",
            {"raw-socketio": ratio(raw, ceiling), "sio_stream": ratio(ours, ceiling)},
            mode=server_mode,
            op="upload-ceiling",
        )
        if fan is None:
            continue
        report.line(
            f"{server_mode} server: fan-out {FAN_SIZES[mode] // MiB}MiB to {args.recipients} sync clients",
            args.recipients * FAN_SIZES[mode] / fan[True] / 1e6,
            "MB/s",
            {f"{args.recipients} unicast sends": ratio(fan[False], fan[True])},
            mode=server_mode,
            op="fan-out",
        )
    return report.finish(args.json)


def transfer_lines(report: Report, server_mode: str, size: int, measured: Measured, tag: str = "") -> None:
    """The upload and download lines of one mode, each with its CPU and page-fault note."""
    seconds, cpu, split = measured
    for op in ("upload", "download"):
        ours, raw = seconds[f"sio {op}"], seconds[f"raw {op}"]
        report.line(
            f"{server_mode} server, sync client: {op} {size // MiB}MiB{tag}",
            size / ours / 1e6,
            "MB/s",
            {
                "raw-socketio": ratio(raw, ours),
                "raw-socketio's CPU": ratio(cpu[f"raw {op}"], cpu[f"sio {op}"]),
            },
            mode=server_mode,
            op=op + tag.replace(" [malloc kept]", "-malloc-kept"),
        )
        report.note(split_note(split[f"sio {op}"], split[f"raw {op}"], size))


def split_note(ours: tuple[float, ...], raw: tuple[float, ...], size: int) -> str:
    """Client and server CPU (ms), page faults, and the client's packets sent per MiB of one
    transfer, sio_stream's -> raw-socketio's."""
    per_mib = MiB / size
    return (
        f"  client {ours[0] * 1000:.0f} -> {raw[0] * 1000:.0f} ms CPU (x{ratio(raw[0], ours[0]):.2f}), "
        f"{ours[2]:.0f} -> {raw[2]:.0f} page faults; "
        f"server {ours[1] * 1000:.0f} -> {raw[1] * 1000:.0f} ms CPU (x{ratio(raw[1], ours[1]):.2f}), "
        f"{ours[3]:.0f} -> {raw[3]:.0f} page faults; "
        f"client sent {ours[4] * per_mib:.2f} -> {raw[4] * per_mib:.2f} packets/MiB "
        "(sio_stream -> raw-socketio)"
    )


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--modes", default=",".join(MODES), help="server async modes, comma-separated")
    p.add_argument("--recipients", type=int, default=10, help="sync clients in the fan-out's room")
    p.add_argument("--no-room", action="store_true", help="skip the Flask-SocketIO relay to a room")
    p.add_argument("--no-fanout", action="store_true", help="skip the fan-out to --recipients clients")
    p.add_argument(
        "--malloc-kept",
        action="store_true",
        help="also measure both transfers with sio_stream.keep_freed_buffers() in both processes",
    )
    p.add_argument("--serve", choices=MODES, default=None, help=argparse.SUPPRESS)
    p.add_argument("--measure-kept", default=None, help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    if arguments.serve:
        sys.path.insert(0, str(ROOT))
        serve(arguments.serve, arguments.malloc_kept)
    elif arguments.measure_kept:
        sys.path.insert(0, str(ROOT))
        _measure_kept_here(arguments.measure_kept)
    else:
        run(arguments)
