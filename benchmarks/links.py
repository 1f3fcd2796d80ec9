"""Throughput over an emulated link: 100 MB/s at 0, 20, 50 and 150 ms of RTT, beside raw TCP.

    python benchmarks/links.py [--quick | --smoke] [--rtt 0,20,50,150] [--rate 100M] [--mib N]
                               [--repeat N] [--browser]

For each RTT, two link emulators (``link.py``, each its own process, the same rate, delay and
queue: one bandwidth-delay product per direction) stand in front of the Python peer (aiohttp +
python-socketio + ``ss()``, ``peer.py``) and of the raw TCP peer (``tcpbulk.py``). Through them,
each client in its own process:

* raw TCP, one connection per transfer: a ping-pong (the link's RTT as an application sees it),
  an upload and a download: the baseline, what the link gives a plain TCP application;
* sio_stream, one stream: an upload and a download;
* sio_stream, 8 streams at once on the one Socket.IO connection: uploads, downloads (a
  transfer's bytes split between them).

Every line gives MB/s and the ratio to raw TCP in the same direction, over the same link
settings, in the same run (the median of ``--repeat`` rounds). Every timing includes the
transfer's request / acknowledgement round trip; the raw TCP lines also say what fraction of
the rate the link delivered once that round trip is taken out (the emulator's accuracy). The
one-stream lines also give each process's peak RSS over its idle RSS (target: the reader within
twice ``max_window``) and the target of issue 20 (one stream >= 0.8x raw TCP through a link with
a delay). ``--mib`` sets one transfer size for every RTT: at 150 ms the default 48 MiB is about
three bandwidth-delay products, so the stream's opening round trips and the window's ramp weigh
on it (the initial credit each hello offers, negotiated ``initial-credit``, takes most of them
away: each client process's first upload and first download take it); a full run also moves
one stream of 256 MiB there (the rate once the window has grown).
``ramp.py`` traces where a stream's opening round trips go.

``--browser`` adds our JavaScript client in Chromium at each RTT above 0 (``browser.py
--link-rtt``, its own links, 48 and 256 MiB in a full run): in turn, raw TCP, Chromium's bare
WebSocket against aiohttp (the most this browser moves over any WebSocket) and our client, both
ways; one line per direction and size with the medians of the rounds' ratios. Target (issue 20):
>= 0.6x raw TCP, or >= 0.9x the bare WebSocket where that moves less than 0.6x raw TCP.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import link as link_emulator
from _harness import (
    DEFAULT_CHUNK,
    SIO,
    MiB,
    Report,
    common_args,
    link,
    mb_s,
    median,
    mode_of,
    ratio,
    run_client,
    run_tcp_client,
    server,
    size_label,
    tcp_server,
)

RTTS = {"full": (0.0, 20.0, 50.0, 150.0), "quick": (0.0, 50.0, 150.0), "smoke": (20.0,)}
REPEATS = {"full": 3, "quick": 1, "smoke": 1}
#: MiB per transfer by RTT (about 1-3 s each at the rates expected today).
SIZES = {
    "full": {0.0: 128, 20.0: 128, 50.0: 96, 150.0: 48},
    "quick": {0.0: 32, 20.0: 32, 50.0: 24, 150.0: 24},
    "smoke": {0.0: 4, 20.0: 4, 50.0: 4, 150.0: 4},
}
#: Full runs also move one stream of this many MiB at 150 ms: the rate once the window has
#: grown (at 48 MiB the stream's opening round trips and its window's ramp weigh on it).
STEADY_MIB = 256
STREAMS = 8
#: Peak RSS over idle allowed to the one-stream reader: twice the largest read window.
MEMORY_TARGET_MIB = 2 * 32
#: One stream through a link with a delay, against raw TCP through the same link (issue 20).
ONE_STREAM_TARGET = 0.8
DIRECTIONS = ("upload", "download")
#: The raw TCP lines check the emulator: at least this fraction of the rate, one RTT taken out.
ACCURACY_TARGET = 0.8
PINGS = 10
#: Transfer sizes of the browser lines (``--browser``), as ``browser.py --link-size`` takes them.
BROWSER_SIZES = {"full": "48M,256M", "quick": "24M", "smoke": "2M"}
BROWSER_SCRIPT = Path(__file__).resolve().parent / "browser.py"


def size_for(mode: str, rtt: float, mib: int | None = None) -> int:
    if mib:
        return mib * MiB
    table = SIZES[mode]
    return table[min(table, key=lambda r: abs(r - rtt))] * MiB


def sizes_for(mode: str, rtt: float, mib: int | None = None) -> list[int]:
    """The transfer sizes at ``rtt``: the table's (or ``--mib``), and the steady one at 150 ms."""
    sizes = [size_for(mode, rtt, mib)]
    if mode == "full" and rtt >= 150 and not mib:
        sizes.append(STEADY_MIB * MiB)
    return sizes


def sio_jobs(size: int, multi: bool = True) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = [
        {"op": op, "size": size, "write": DEFAULT_CHUNK, "reset_peak": True} for op in DIRECTIONS
    ]
    if not multi:
        return jobs
    share = size // STREAMS
    jobs += [
        {
            "op": "multi",
            "streams": STREAMS,
            "size": share,
            "expect": share * STREAMS,
            "write": DEFAULT_CHUNK,
            "download": op == "download",
        }
        for op in DIRECTIONS
    ]
    return jobs


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("links", mode)
    repeats = args.repeat or REPEATS[mode]
    rtts = [float(x) for x in args.rtt.split(",")] if args.rtt else list(RTTS[mode])
    rate = link_emulator.parse_size(args.rate)
    options = "its defaults"
    if args.initial_credit is not None:
        size = link_emulator.parse_size(args.initial_credit)
        credit = int(size) if size < float("inf") else 0  # parse_size reads "0" as unlimited
        os.environ["SIO_BENCH_INITIAL_CREDIT"] = str(credit)  # read by peer.py, both roles
        options = f"initial_credit={credit} on both ends"
    report.note(
        f"link {rate / 1e6:g} MB/s per direction, queue one bandwidth-delay product (the emulator's "
        f"default), median of {repeats}; sio_stream with {options}, {STREAMS} streams share a transfer"
    )
    rates: dict[tuple[float, int, str], list[float]] = {}
    accuracy: dict[tuple[float, int, str], list[float]] = {}
    pings: dict[float, list[float]] = {}
    peaks: dict[tuple[float, int, str], list[tuple[float, float]]] = {}
    with server(SIO) as py, tcp_server() as tcp_port:
        run_client(SIO, py.url, sio_jobs(4 * MiB)[:2])  # warm-up: a first connection, the pools
        for rtt in rtts:
            with (
                link(py.port, rate=rate, rtt_ms=rtt) as sio_port,
                link(tcp_port, rate=rate, rtt_ms=rtt) as raw_port,
            ):
                for _ in range(repeats):
                    for n, size in enumerate(sizes_for(mode, rtt, args.mib)):
                        ping = [{"op": "ping", "count": PINGS}] if n == 0 else []
                        raw = run_tcp_client(raw_port, ping + [{"op": op, "size": size} for op in DIRECTIONS])
                        if ping:
                            pings.setdefault(rtt, []).extend(raw.pop(0)["rtts"])
                        for result in raw:
                            rates.setdefault((rtt, size, f"raw {result['op']}"), []).append(mb_s(result))
                            busy = result["seconds"] - rtt / 1000
                            of_rate = result["bytes"] / busy / rate
                            accuracy.setdefault((rtt, size, result["op"]), []).append(of_rate)
                        jobs = sio_jobs(size, multi=n == 0)
                        results = run_client(SIO, f"http://127.0.0.1:{sio_port}", jobs)
                        for job, result in zip(jobs, results, strict=True):
                            op = "download" if job.get("download") or job["op"] == "download" else "upload"
                            kind = "multi" if job["op"] == "multi" else "one"
                            rates.setdefault((rtt, size, f"{kind} {op}"), []).append(mb_s(result))
                            if "server_idle" in result:
                                peaks.setdefault((rtt, size, op), []).append(
                                    (
                                        (result["server_mem"]["VmHWM"] - result["server_idle"]["rss_kib"])
                                        / 1024,
                                        (result["client_mem"]["VmHWM"] - result["client_idle"]["rss_kib"])
                                        / 1024,
                                    )
                                )
        for rtt in rtts:
            report.line(
                f"rtt={rtt:g}ms ping raw-tcp",
                median(pings[rtt]) * 1000,
                "ms",
                rtt_ms=rtt,
                runs=[round(p * 1000, 2) for p in pings[rtt]],
            )
            for size in sizes_for(mode, rtt, args.mib):
                for op in DIRECTIONS:
                    lines(report, mode, rtt, size, op, rates, accuracy, peaks)
    if args.browser and [r for r in rtts if r > 0]:
        browser_lines(report, mode, [r for r in rtts if r > 0], args, repeats)
    return report.finish(args.json)


def browser_lines(
    report: Report, mode: str, rtts: list[float], args: argparse.Namespace, repeats: int
) -> None:
    """Our JavaScript client in Chromium through links at ``rtts`` (``browser.py --link-rtt``, in
    a process of its own): one line per RTT, size and direction against raw TCP and Chromium's
    bare WebSocket measured in turn with it."""
    sizes = f"{args.mib}M" if args.mib else BROWSER_SIZES[mode]
    command = [sys.executable, str(BROWSER_SCRIPT), "--skip-original", "--link-only", "--json-lines"]
    command += [
        "--link-rtt",
        ",".join(f"{r:g}" for r in rtts),
        "--link-size",
        sizes,
        "--link-rate",
        args.rate,
    ]
    command += ["--size", sizes.split(",")[0], "--repeat", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(
            f"browser.py failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
    for text in done.stdout.splitlines():
        if not text.startswith("JSON "):
            continue
        v = json.loads(text.removeprefix("JSON "))
        rates = v["mb_s"]
        report.line(
            f"rtt={v['rtt_ms']:g}ms {v['op']} chromium sio-stream.js {size_label(v['size'])}",
            rates["ours"],
            "MB/s",
            {"raw-tcp": v["ours_tcp"], "bare-ws": v["ours_ws"]},
            target=None if mode == "smoke" else v["target"],
            met=None if mode == "smoke" else v["met"],
            note=f"bare WebSocket {rates['bare-ws']:.1f} MB/s, {v['ws_tcp']:.2f}x raw-tcp; "
            f"raw-tcp {rates['raw-tcp']:.1f} MB/s; median of {v['rounds']}",
            impl="sio-stream.js",
            op=v["op"],
            rtt_ms=v["rtt_ms"],
            runs=v["rounds"],
        )


def lines(
    report: Report,
    mode: str,
    rtt: float,
    size: int,
    op: str,
    rates: dict[tuple[float, int, str], list[float]],
    accuracy: dict[tuple[float, int, str], list[float]],
    peaks: dict[tuple[float, int, str], list[tuple[float, float]]],
) -> None:
    """The lines of one RTT, size and direction: raw TCP, then sio_stream beside it."""
    base = median(rates[(rtt, size, f"raw {op}")])
    of_rate = median(accuracy[(rtt, size, op)])
    report.line(
        f"rtt={rtt:g}ms {op} raw-tcp {size_label(size)}",
        base,
        "MB/s",
        # Smoke sizes are too small to judge the emulator (a few round trips).
        target=None if mode == "smoke" else f">={ACCURACY_TARGET:g}x the link rate, one RTT out",
        met=None if mode == "smoke" else of_rate >= ACCURACY_TARGET,
        note=f"{of_rate:.2f}x the link rate, one RTT out",
        impl="raw-tcp",
        op=op,
        rtt_ms=rtt,
        of_rate=of_rate,
        runs=[round(r, 1) for r in rates[(rtt, size, f"raw {op}")]],
    )
    for kind, label in (("one", "sio_stream 1 stream"), ("multi", f"sio_stream {STREAMS} streams")):
        if (rtt, size, f"{kind} {op}") not in rates:
            continue
        value = median(rates[(rtt, size, f"{kind} {op}")])
        checks: dict[str, Any] = {}
        if kind == "one" and peaks.get((rtt, size, op)):
            server_peak = max(p[0] for p in peaks[(rtt, size, op)])
            client_peak = max(p[1] for p in peaks[(rtt, size, op)])
            reader = server_peak if op == "upload" else client_peak
            # Smoke sizes are a few round trips; without a delay the rate target is throughput.py's.
            rated = rtt > 0 and mode != "smoke"
            rate_target = f">={ONE_STREAM_TARGET:g}x raw-tcp, " if rated else ""
            checks = dict(
                target=f"{rate_target}reader <=idle+{MEMORY_TARGET_MIB}MiB",
                met=(not rated or value >= ONE_STREAM_TARGET * base) and reader <= MEMORY_TARGET_MIB,
                note=f"peak RSS over idle: server {server_peak:.0f} MiB, client {client_peak:.0f} MiB",
            )
        report.line(
            f"rtt={rtt:g}ms {op} {label} {size_label(size)}",
            value,
            "MB/s",
            {"raw-tcp": ratio(value, base)},
            **checks,
            impl=SIO,
            op=op,
            rtt_ms=rtt,
            streams=1 if kind == "one" else STREAMS,
            runs=[round(r, 1) for r in rates[(rtt, size, f"{kind} {op}")]],
        )


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument(
        "--rtt", default=None, help="comma-separated RTTs in ms (default 0,20,50,150; quick 0,50,150)"
    )
    p.add_argument("--rate", default="100M", help="the link's rate per direction, bytes/s (default 100M)")
    p.add_argument("--mib", type=int, default=None, help="MiB per transfer at every RTT (default: by RTT)")
    p.add_argument(
        "--initial-credit",
        default=None,
        help="ss(initial_credit=) for both Python ends, bytes (e.g. 16Mi; default off, as the library)",
    )
    p.add_argument(
        "--browser",
        action="store_true",
        help="also our JavaScript client in Chromium at RTTs above 0 (browser.py)",
    )
    return p


if __name__ == "__main__":
    run(parser().parse_args())
