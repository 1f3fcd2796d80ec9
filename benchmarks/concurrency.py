"""Many streams at once: 1, 10 and 100 uploads on one connection, and N clients uploading at once.

    python benchmarks/concurrency.py [--streams 1,10,100] [--clients 100] [--client-mib 10]
                                     [--download] [--small-rtt 50] [--quick | --smoke] [--repeat N]

Streams: one client process, one connection, N sio_stream uploads started together that share a
fixed total (so every row moves the same bytes); aggregate MB/s is total / wall time, per-stream
MB/s is each stream's bytes / its own duration. Baseline: the 1-stream row of the same run.
Targets: 100 streams >= 0.9x one stream's aggregate, slowest/fastest per-stream rate within 1.5x.
``--download``: the same rows for downloads (the server writes, the client reads).

Small streams over a link (``--small-rtt MS``, 0 = skip): 100 uploads of 40 KiB started together
on one connection through the link emulator (``link.py``, MS round trip, no rate limit), against
one upload of the same 4,000 KiB through the same link: many short streams must each get their
credit within a round trip or two, not wait in turns for a connection window sized for bulk.

Beside bulk: a 1 MiB upload started while 4 bulk uploads run on the same connection, against the
same upload alone; its fair share is 5x its time alone (5 streams share the connection). Target:
within 2x its fair share (issue 16: 2.4x before the connection window).

Clients: N python-socketio AsyncClients (in one client process, separate from the server), each
uploading ``--client-mib`` MiB at once; sio_stream vs the raw python-socketio baseline with the
same N clients.
"""

from __future__ import annotations

import argparse
from typing import Any

from _harness import (
    DEFAULT_CHUNK,
    DEFAULT_WINDOW,
    LABELS,
    RAW,
    SIO,
    MiB,
    Report,
    common_args,
    cpu_per_gib,
    link,
    mb_s,
    median,
    mode_of,
    ratio,
    run_client,
    server,
    size_label,
)

#: Bytes shared by the streams of one row. Each of the 100 streams must carry several read windows
#: (8 x 256 KiB = 2 MiB): a stream's first window is handed to python-socketio as soon as its credit
#: arrives, so the first windows go out in the order the reader's credits arrive (first come, first
#: served) and only later windows are interleaved round-robin. With one window per stream (the old
#: 200 MiB quick total) the per-stream spread measured that start-up order, 6.9x; measured with
#: 100 streams: 2 MiB each 0.07-0.39 s (5.6x), 4 MiB 1.8x, 8 MiB 1.33x, 16 MiB 1.15x.
TOTAL = {"full": 1600 * MiB, "quick": 800 * MiB, "smoke": 4 * MiB}
CLIENTS = {"full": (100, 10), "quick": (100, 1), "smoke": (10, 0.5)}
REPEATS = {"full": 3, "quick": 2, "smoke": 1}
AGGREGATE_TARGET = 0.9
BESIDE_BULK = 4
BESIDE_SMALL = 1 * MiB
BESIDE_BULK_SIZE = {"full": 256 * MiB, "quick": 128 * MiB, "smoke": 8 * MiB}
BESIDE_REPEATS = {"full": 7, "quick": 5, "smoke": 1}
BESIDE_TARGET = 2.0
SPREAD_TARGET = 1.5
SMALL_STREAMS = 100
SMALL_SIZE = 40 * 1024
SMALL_REPEATS = {"full": 5, "quick": 3, "smoke": 1}


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("concurrency", mode)
    repeats = args.repeat or REPEATS[mode]
    counts = [int(x) for x in args.streams.split(",") if x]
    total = args.total * MiB if args.total else TOTAL[mode]
    n_clients = CLIENTS[mode][0] if args.clients is None else args.clients
    per_client = int((args.client_mib or CLIENTS[mode][1]) * MiB)
    directions = ("upload", "download") if args.download else ("upload",)
    agg: dict[tuple[str, int], list[float]] = {}
    spread: dict[tuple[str, int], list[tuple[float, float]]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    # Each process on its own too: a many-streams cost may sit on either side.
    side_cpu: dict[tuple[str, int, str], list[float]] = {}
    small: dict[str, list[float]] = {"many": [], "one": []}
    clients: dict[str, list[dict[str, Any]]] = {}
    beside: dict[int, list[float]] = {0: [], BESIDE_BULK: []}
    with server(SIO) as py:
        run_client(SIO, py.url, [{"op": "upload", "size": 4 * MiB}])  # warm-up
        if args.beside:
            for _ in range(args.repeat or BESIDE_REPEATS[mode]):
                for bulk in (0, BESIDE_BULK):
                    job = {
                        "op": "beside",
                        "bulk": bulk,
                        "size": BESIDE_BULK_SIZE[mode],
                        "small": BESIDE_SMALL,
                    }
                    job["expect"] = BESIDE_SMALL + bulk * job["size"]
                    (result,) = run_client(SIO, py.url, [job])
                    beside[bulk].append(result["small_seconds"])
        if args.small_rtt:
            small = run_small(py.port, args.small_rtt, args.repeat or SMALL_REPEATS[mode])
        for _ in range(repeats):
            # Directions and counts interleaved: a busy machine's drift hits every row alike.
            for direction in directions:
                for n in counts:
                    job = {
                        "op": "multi",
                        "streams": n,
                        "size": total // n,
                        "write": DEFAULT_CHUNK,
                        "expect": total // n * n,
                        "download": direction == "download",
                    }
                    (result,) = run_client(SIO, py.url, [job])
                    agg.setdefault((direction, n), []).append(mb_s(result))
                    per = result["per_stream_mb_s"]
                    spread.setdefault((direction, n), []).append((min(per), max(per)))
                    both = cpu_per_gib(result, "client") + cpu_per_gib(result, "server")
                    cpu.setdefault((direction, n), []).append(both)
                    for side in ("client", "server"):
                        side_cpu.setdefault((direction, n, side), []).append(cpu_per_gib(result, side))
            if n_clients:
                for impl in (SIO, RAW):
                    job = {
                        "op": "clients",
                        "clients": n_clients,
                        "size": per_client,
                        "write": DEFAULT_CHUNK,
                        "window": DEFAULT_WINDOW,
                        "expect": per_client * n_clients,
                    }
                    (result,) = run_client(impl, py.url, [job])
                    clients.setdefault(impl, []).append(result)
    if beside[0]:
        alone, shared = median(beside[0]), median(beside[BESIDE_BULK])
        fair = alone * (BESIDE_BULK + 1)
        report.line(
            f"{size_label(BESIDE_SMALL)} upload beside {BESIDE_BULK} bulk uploads, 1 conn",
            shared * 1000,
            "ms",
            {"fair share": ratio(shared, fair)},
            f"<={BESIDE_TARGET}x fair share",
            shared <= BESIDE_TARGET * fair,
            note=f"alone {alone * 1000:.1f} ms, fair share {fair * 1000:.1f} ms "
            f"(medians of {len(beside[0])})",
        )
    if args.small_rtt:
        many, one = median(small["many"]), median(small["one"])
        report.line(
            f"{SMALL_STREAMS} x {SMALL_SIZE // 1024}KiB streams/1 conn, {args.small_rtt:g} ms link",
            many,
            "MB/s",
            {"1 stream": ratio(many, one)},
            note=f"1 stream of {SMALL_STREAMS * SMALL_SIZE // 1024} KiB {one:.1f} MB/s "
            f"(medians of {len(small['many'])})",
        )
    for direction in directions if counts else ():
        base = median(agg[(direction, 1)] if 1 in counts else agg[(direction, counts[0])])
        for n in counts:
            key = (direction, n)
            value = median(agg[key])
            lo = median([s[0] for s in spread[key]])
            hi = median([s[1] for s in spread[key]])
            spread_ratio = median([s[1] / s[0] for s in spread[key]])
            gated = n == max(counts) and n > 1
            report.line(
                f"{n} streams/1 conn, {size_label(total)} total, {direction}s",
                value,
                "MB/s",
                {"1 stream": ratio(value, base)},
                f">={AGGREGATE_TARGET}x 1 stream" if gated else None,
                ratio(value, base) >= AGGREGATE_TARGET if gated else None,
                streams=n,
                direction=direction,
                note=f"CPU {median(cpu[key]):.2f} s/GiB, both processes "
                f"(client {median(side_cpu[(direction, n, 'client')]):.2f}, "
                f"server {median(side_cpu[(direction, n, 'server')]):.2f})",
            )
            if n > 1:
                report.line(
                    f"{n} streams/1 conn, per-stream max/min, {direction}s",
                    spread_ratio,
                    "x",
                    {},
                    f"<={SPREAD_TARGET}",
                    spread_ratio <= SPREAD_TARGET,
                    streams=n,
                    direction=direction,
                    note=f"per-stream min {lo:.1f} MB/s, max {hi:.1f} MB/s",
                )
    if clients:
        rate = {impl: median([mb_s(r) for r in rs]) for impl, rs in clients.items()}
        for impl in (SIO, RAW):
            per = [(min(r["per_stream_mb_s"]), max(r["per_stream_mb_s"])) for r in clients[impl]]
            report.line(
                f"{n_clients} clients x {size_label(per_client)} {LABELS[impl]} aggregate",
                rate[impl],
                "MB/s",
                {LABELS[RAW]: ratio(rate[SIO], rate[RAW])}
                if impl == SIO
                else {"1 stream (sio)": ratio(rate[impl], median(agg.get(("upload", 1), [])))},
                impl=impl,
                clients=n_clients,
                note=f"per-client min {median([p[0] for p in per]):.1f} MB/s, "
                f"max {median([p[1] for p in per]):.1f} MB/s",
            )
    return report.finish(args.json)


def run_small(port: int, rtt_ms: float, repeats: int) -> dict[str, list[float]]:
    """MB/s of SMALL_STREAMS uploads of SMALL_SIZE at once, and of one upload of their total,
    through a link of ``rtt_ms`` in front of the server's ``port`` (alternated, ``repeats`` each)."""
    total = SMALL_STREAMS * SMALL_SIZE
    out: dict[str, list[float]] = {"many": [], "one": []}
    with link(port, rtt_ms=rtt_ms) as link_port:
        url = f"http://127.0.0.1:{link_port}"
        for _ in range(repeats):
            for key, streams in (("many", SMALL_STREAMS), ("one", 1)):
                job = {
                    "op": "multi",
                    "streams": streams,
                    "size": total // streams,
                    "write": DEFAULT_CHUNK,
                    "expect": total,
                }
                (result,) = run_client(SIO, url, [job])
                out[key].append(mb_s(result))
    return out


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--streams", default="1,10,100", help="stream counts on one connection ('' = skip)")
    p.add_argument("--no-beside", dest="beside", action="store_false", help="skip the small-beside-bulk row")
    p.add_argument(
        "--total", type=int, default=None, help="MiB shared by the streams (default 1600; quick 800)"
    )
    p.add_argument("--download", action="store_true", help="also the stream rows for downloads")
    p.add_argument(
        "--small-rtt", type=float, default=50, help="RTT (ms) of the small-streams row's link (0 = skip)"
    )
    p.add_argument("--clients", type=int, default=None, help="concurrent clients (default 100; 0 = skip)")
    p.add_argument("--client-mib", type=float, default=None, help="MiB per client (default 10; quick 1)")
    return p


if __name__ == "__main__":
    run(parser().parse_args())
