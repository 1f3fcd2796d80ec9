"""CPU seconds per GiB moved, client and server process, sio_stream vs raw python-socketio.

    python benchmarks/cpu.py [--size MiB] [--quick | --smoke] [--repeat N]

The same transfers as ``throughput.py`` (which prints these lines too); CPU is utime+stime from
``/proc/<pid>/stat`` read by each process before and after a transfer, summed over the rounds
(the kernel counts in 10 ms ticks). Target: sio_stream's total <= 1.2x the raw baseline's.
"""

from __future__ import annotations

import throughput

if __name__ == "__main__":
    throughput.run(throughput.parser().parse_args(), cpu_only=True)
