"""Figure 6: daemon start-up scan with 1,000 and 10,000 instances, from exec to ``READY=1``.

Instances are written straight to disk in the daemon's record format, all ``Stopped`` (so nothing is
recovered or re-adopted: this is the scan itself). The time runs from just before ``exec`` of
``python -m actantd`` to the ``READY=1`` datagram on its ``NOTIFY_SOCKET``, which the daemon sends only once
every instance is loaded and the socket listens. The files are in the page cache (just written, or read by
the previous start): a warm scan. An empty home gives the fixed cost (interpreter, imports, configs).
"""

from __future__ import annotations

from bench.actant import ActantDaemon, generate_instances, make_configs
from bench.context import Ctx
from bench.report import Row, verdict
from bench.stats import median, secs

NAME = "startup-scan"
SIZES = ((1000, 1.0), (10_000, 10.0))
ROWS = tuple((f"daemon startup scan, {count:,} instances", f"≤ {target:g} s") for count, target in SIZES)
BUDGET = 900.0


def _startups(ctx: Ctx, count: int, reps: int) -> tuple[list[float], int]:
    root = ctx.workdir(f"startup-{count}")
    daemon = ActantDaemon(root, ctx.procs, make_configs(root))
    if count:
        generate_instances(daemon.home, count)
    times: list[float] = []
    rss = 0
    for _ in range(reps):
        times.append(daemon.start(timeout=120))
        with daemon.rpc() as rpc:
            total = rpc.call("daemon.status")["instances"]["total"]
        if total != count:
            raise RuntimeError(f"daemon loaded {total} instances, not {count}")
        rss = daemon.rss()
        code = daemon.stop()
        if code != 0:
            raise RuntimeError(f"actantd exited {code} on SIGTERM:\n{daemon.log_tail()}")
    return times, rss


def run(ctx: Ctx) -> list[Row]:
    reps = ctx.pick(5, 1)
    empty, empty_rss = _startups(ctx, 0, reps)
    rows = []
    for (count, target), labels in zip(SIZES, ROWS, strict=True):
        row = Row(NAME, *labels)
        times, rss = _startups(ctx, count, reps)
        value = median(times)
        row.actant = secs(value)
        row.result = verdict(value <= target)
        row.notes = [
            f"Exec to READY=1, median of {reps} (range {secs(min(times))} to {secs(max(times))}); all `Stopped`, warm "
            f"page cache; empty home: {secs(median(empty))}. Daemon RSS after the scan {rss / 2**20:.1f} MiB "
            f"(empty home {empty_rss / 2**20:.1f} MiB).",
        ]
        if value > target:
            row.notes.append(f"Missed by {value / target - 1:.1%}.")
        rows.append(row)
    return rows
