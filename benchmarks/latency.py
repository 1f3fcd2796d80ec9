"""Throughput over a slow link: a TCP delay proxy adds 0, 5, 20 or 50 ms of round-trip time.

    python benchmarks/latency.py [--rtt 0,5,20,50] [--quick | --smoke] [--repeat N]

The proxy (``link.py`` without a rate, its own process) holds each direction's bytes for RTT/2
and does not limit bandwidth, so what is measured is how much data each protocol keeps in flight per round
trip: socket.io-stream 0.9.1 is stop-and-wait (one 64 KiB write per RTT), sio_stream keeps a
window of chunks in flight, the raw python-socketio baseline keeps 8 acked emits in flight. The
0 ms row also goes through the proxy, so every row pays the same extra hop. Transfer sizes shrink
for the slow contestant at high RTT so that each run takes about a second.
"""

from __future__ import annotations

import argparse
from typing import Any

from _harness import (
    DEFAULT_CHUNK,
    DEFAULT_WINDOW,
    JS,
    JS_WRITE,
    LABELS,
    RAW,
    SIO,
    MiB,
    Report,
    common_args,
    delay_proxy,
    ensure_node,
    mb_s,
    median,
    mode_of,
    ratio,
    run_client,
    server,
    size_label,
)

RTTS = (0.0, 5.0, 20.0, 50.0)
REPEATS = {"full": 3, "quick": 1, "smoke": 1}
#: Bytes per transfer by mode, implementation and RTT (about 1 s each at the expected rates).
SCALE = {"full": 2, "quick": 1, "smoke": 0.25}
BASE_SIZE = {
    SIO: {0: 32, 5: 32, 20: 24, 50: 16},
    RAW: {0: 32, 5: 32, 20: 24, 50: 16},
    JS: {0: 8, 5: 4, 20: 2, 50: 1},
}
DIRECTIONS = ("upload", "download")
TARGET_RTT = 20.0
TARGET_VS_JS = 20.0


def size_for(impl: str, rtt: float, mode: str) -> int:
    mib = BASE_SIZE[impl][min(BASE_SIZE[impl], key=lambda r: abs(r - rtt))]
    return max(int(mib * SCALE[mode] * MiB) // 65536 * 65536, 65536)


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("latency", mode)
    repeats = args.repeat or REPEATS[mode]
    rtts = [float(x) for x in args.rtt.split(",")] if args.rtt else list(RTTS)
    impls = [SIO, RAW] + ([JS] if not args.no_js and ensure_node() else [])
    rates: dict[tuple[float, str, str], list[float]] = {}
    with server(SIO) as py, server(JS) if JS in impls else _Null() as js:
        targets = {SIO: py.port, RAW: py.port, JS: js.port if js else 0}
        for rtt in rtts:
            for _ in range(repeats):
                for impl in impls:
                    size = size_for(impl, rtt, mode)
                    write = JS_WRITE if impl == JS else DEFAULT_CHUNK
                    jobs = [
                        {"op": op, "size": size, "write": write, "window": DEFAULT_WINDOW}
                        for op in DIRECTIONS
                    ]
                    with delay_proxy(targets[impl], rtt) as url:
                        for result in run_client(impl, url, jobs):
                            rates.setdefault((rtt, impl, result["op"]), []).append(mb_s(result))
    for rtt in rtts:
        for op in DIRECTIONS:
            rate = {impl: median(rates[(rtt, impl, op)]) for impl in impls}
            for impl in impls:
                ratios = {LABELS[b]: ratio(rate[impl], rate[b]) for b in impls if b != impl}
                target = met = None
                if impl == SIO and rtt == TARGET_RTT and JS in impls:
                    target = f">={TARGET_VS_JS:g}x {LABELS[JS]}"
                    met = ratio(rate[SIO], rate[JS]) >= TARGET_VS_JS
                report.line(
                    f"rtt={rtt:g}ms {op} {LABELS[impl]} {size_label(size_for(impl, rtt, mode))}",
                    rate[impl],
                    "MB/s",
                    ratios,
                    target,
                    met,
                    impl=impl,
                    op=op,
                    rtt_ms=rtt,
                )
    return report.finish(args.json)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--rtt", default=None, help="comma-separated RTTs in ms (default 0,5,20,50)")
    p.add_argument("--no-js", action="store_true", help="skip the JavaScript baseline")
    return p


if __name__ == "__main__":
    run(parser().parse_args())
