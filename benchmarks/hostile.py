"""Issue 16's attack: hostile clients spend every credit on large objects and chunks while the
server's handler reads nothing; what does the server hold, and does an honest client still move?

    python benchmarks/hostile.py [--quick | --smoke] [--conns N] [--streams S]

The server (benchmarks/peer.py, its own process) runs with the default budgets (64 MiB per
connection, 512 MiB per process; smaller in --quick and --smoke, printed). Hostile client
processes (this script with ``--attack``) open ``--conns`` raw python-socketio connections, each
with ``--streams`` streams to a handler that reads one chunk and stops: half object mode answered
with 900 kB strings, half byte mode answered with 900 kB chunks, one write per credit (with
``--reopen N``, N more streams per connection as streams are refused: that turns the attack into
a bandwidth flood, which costs the server CPU whatever its memory rules). Reported, beside a
baseline measured in the same run: the server's peak RSS above idle against the process budget,
and an honest sio_stream client's upload and download speed under attack against alone.
Targets: peak RSS within the process budget + 64 MiB of fixed overhead; honest >= 0.5x alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import socketio
from _harness import PYTHON, SIO, MiB, Report, common_args, mb_s, mode_of, ratio, run_client, server

HERE = os.path.dirname(os.path.abspath(__file__))
OBJECT = "o" * 900_000
CHUNK = b"c" * 900_000
#: (process budget, connection budget, hostile connections, honest MiB) by mode.
SETUP = {
    "full": (512 * MiB, 64 * MiB, 12, 64),
    "quick": (256 * MiB, 64 * MiB, 8, 32),
    "smoke": (32 * MiB, 8 * MiB, 4, 4),
}
SETTLE = {"full": 5.0, "quick": 3.0, "smoke": 1.0}
OVERHEAD_TARGET = 64 * MiB
HONEST_TARGET = 0.5


async def attack(url: str, conns: int, streams: int, seconds: float, reopen: int) -> None:
    """Run hostile connections for ``seconds``; print the writes sent and streams refused."""
    reopen_limit = streams + reopen
    totals = {"writes": 0, "refused": 0}

    async def one() -> None:
        sio = socketio.AsyncClient()
        objects: set[str] = set()
        opened = 0
        stopped = False

        async def open_stream() -> None:
            nonlocal opened
            stream_id = str(uuid.uuid4())
            placeholder: dict[str, Any] = {"$stream": stream_id}
            if opened % 2 == 0:
                objects.add(stream_id)
                placeholder["options"] = {"objectMode": True}
            opened += 1
            await sio.emit("$stream", ("slow", placeholder))

        @sio.on("$stream-read")
        async def on_read(stream_id: str, *args: Any) -> None:
            if stopped:
                return
            totals["writes"] += 1
            chunk: Any = (OBJECT, "utf8") if stream_id in objects else (CHUNK, "buffer")
            await sio.emit("$stream-write", (stream_id, *chunk), callback=lambda *a: None)

        @sio.on("$stream-error")
        async def on_error(stream_id: str, *args: Any) -> None:
            totals["refused"] += 1
            if not stopped and opened < reopen_limit:
                await open_stream()

        await sio.connect(url, transports=["websocket"])
        for _ in range(streams):
            await open_stream()
        await asyncio.sleep(seconds)
        stopped = True
        await sio.disconnect()

    await asyncio.gather(*(one() for _ in range(conns)))
    print(f"ATTACK writes={totals['writes']} refused={totals['refused']}", flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("hostile", mode)
    process_limit, connection_limit, conns, honest_mib = SETUP[mode]
    conns = args.conns or conns
    size = honest_mib * MiB
    os.environ["SIO_BENCH_PROCESS_LIMIT"] = str(process_limit)
    os.environ["SIO_BENCH_MAX_BUFFERED"] = str(connection_limit)
    jobs = [{"op": "upload", "size": size}, {"op": "download", "size": size}]
    with server(SIO) as py:
        run_client(SIO, py.url, [{"op": "upload", "size": 4 * MiB}])  # warm-up
        alone = run_client(SIO, py.url, jobs)
        idle_kib = alone[0]["server_mem"]["VmRSS"]
        # The attackers run in two processes (two cores' worth of flood at most); they hold their
        # connections for the whole honest run.
        procs = [
            subprocess.Popen(
                [
                    PYTHON,
                    __file__,
                    "--attack",
                    py.url,
                    str(max(1, conns // 2)),
                    str(args.streams),
                    "600",
                    str(args.reopen),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            time.sleep(args.settle or SETTLE[mode])  # a benchmark: let the flood fill the budgets first
            attacked = run_client(SIO, py.url, jobs)
            peak_kib = attacked[-1]["server_mem"]["VmHWM"]
        finally:
            for proc in procs:
                proc.terminate()  # our own children, by pid
            for proc in procs:
                proc.wait(timeout=30)
    peak = (peak_kib - idle_kib) * 1024
    report.line(
        f"server peak RSS above idle, {conns} hostile conns x {args.streams} streams",
        peak / MiB,
        "MiB",
        {"process budget": ratio(peak, process_limit)},
        f"<= budget + {OVERHEAD_TARGET // MiB} MiB",
        peak <= process_limit + OVERHEAD_TARGET,
        note=f"process budget {process_limit // MiB} MiB, connection budget {connection_limit // MiB} MiB, "
        f"idle {idle_kib // 1024} MiB",
    )
    for before, after in zip(alone, attacked, strict=True):
        report.line(
            f"honest {after['op']} {honest_mib} MiB under attack",
            mb_s(after),
            "MB/s",
            {"alone": ratio(mb_s(after), mb_s(before))},
            f">={HONEST_TARGET}x alone",
            mb_s(after) >= HONEST_TARGET * mb_s(before),
            note=f"alone {mb_s(before):.0f} MB/s",
        )
    return report.finish(args.json)


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--conns", type=int, default=None, help="hostile connections (default by mode)")
    p.add_argument("--streams", type=int, default=20, help="streams per hostile connection")
    p.add_argument(
        "--reopen", type=int, default=0, help="streams a connection opens again as they are refused"
    )
    p.add_argument("--settle", type=float, default=None, help="seconds of flood before the honest run")
    return p


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--attack":
        asyncio.run(
            attack(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
        )
    else:
        run(parser().parse_args())
