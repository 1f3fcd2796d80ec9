"""Small JSON messages per second: an object-mode stream vs plain python-socketio emits.

    python benchmarks/objects.py [--count N] [--quick | --smoke] [--repeat N]

sio_stream: one object-mode stream, ``count`` writes of a small JSON object, then ``end()``
(which returns once the peer acknowledged everything). Baseline: ``count`` plain
``emit("raw-obj", message)`` calls (no ack, no flow control: the cheapest python-socketio can
do), then one acked event so that the server has received them all. Client to server.
"""

from __future__ import annotations

import argparse
from typing import Any

from _harness import LABELS, RAW, SIO, Report, common_args, median, mode_of, ratio, run_client, server

COUNTS = {"full": 100_000, "quick": 20_000, "smoke": 2_000}
REPEATS = {"full": 3, "quick": 3, "smoke": 1}
MESSAGE = {"id": 12345, "sensor": "temp-7", "value": 21.5, "ok": True, "tags": ["a", "b"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("objects", mode)
    count = args.count or COUNTS[mode]
    repeats = args.repeat or REPEATS[mode]
    rates: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    job = {"op": "objects", "count": count, "message": MESSAGE, "expect": count}
    with server(SIO) as py:
        for impl in (SIO, RAW):  # warm-up
            run_client(impl, py.url, [dict(job, count=count // 10, expect=count // 10)])
        for _ in range(repeats):
            for impl in (SIO, RAW):
                (result,) = run_client(impl, py.url, [job])
                rates.setdefault(impl, []).append(count / result["seconds"])
                cpu.setdefault(impl, []).append((result["client_cpu"] + result["server_cpu"]) / count * 1e6)
    for impl in (SIO, RAW):
        other = RAW if impl == SIO else SIO
        value = median(rates[impl])
        report.line(
            f"{count} objects {LABELS[impl]}",
            value,
            "msg/s",
            {LABELS[other]: ratio(value, median(rates[other]))},
            impl=impl,
            runs=[round(r) for r in rates[impl]],
            cpu_us_per_msg=median(cpu[impl]),
        )
    for impl in (SIO, RAW):
        report.line(
            f"cpu per object {LABELS[impl]} (both processes)",
            median(cpu[impl]),
            "cpu-us",
            {LABELS[RAW]: ratio(median(cpu[impl]), median(cpu[RAW]))} if impl == SIO else {},
            impl=impl,
        )
    return report.finish(args.json)


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=None, help="messages per run (default 100000; quick 20000)")
    return p


if __name__ == "__main__":
    run(parser().parse_args())
