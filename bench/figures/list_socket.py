"""Figure 2: ``agent.list`` over the socket with 1,000 instances, p50 of sequential calls on one connection.

The 1,000 instances are written to disk in the daemon's record format (all ``Stopped``) before it starts.
A call is timed from just before the request is sent to the arrival of the reply's last byte (the daemon's
side of the exchange: decode, list, encode, transfer). Decoding the 0.5 MB reply is the client's own CPU
time and depends on its language and library, so the time including a stdlib ``json.loads`` is in the notes.
"""

from __future__ import annotations

import json
import time

from bench.actant import ActantDaemon, generate_instances
from bench.context import Ctx
from bench.report import Row, verdict
from bench.stats import ms, percentile

NAME = "list-1000"
ROWS = (("`agent.list` over the socket, 1,000 instances", "p50 ≤ 5 ms, p99 ≤ 10 ms"),)
BUDGET = 300.0
COUNT = 1000
TARGET = 0.005
TARGET_P99 = 0.010


def run(ctx: Ctx) -> list[Row]:
    calls = ctx.pick(300, 50)
    warmup = 10
    row = Row(NAME, *ROWS[0])
    root = ctx.workdir("list-1000")
    daemon = ActantDaemon(root, ctx.procs)
    generate_instances(daemon.home, COUNT)
    daemon.start()
    total: list[float] = []
    wire: list[float] = []
    size = 0
    with daemon.rpc() as rpc:
        request = rpc.encode(1, "agent.list", {})
        for i in range(warmup + calls):
            t0 = time.perf_counter()
            rpc.sock.sendall(request)
            at, line = rpc.read_line(time.monotonic() + 30)
            reply = json.loads(line)
            t2 = time.perf_counter()
            agents = reply["result"]["agents"]
            if len(agents) != COUNT:
                raise RuntimeError(f"agent.list returned {len(agents)} agents, not {COUNT}")
            if i >= warmup:
                total.append(t2 - t0)
                wire.append(at - t0)
            size = len(line)
    rss = daemon.rss()
    daemon.stop()
    p50, p99 = percentile(wire, 50), percentile(wire, 99)
    decode = [t - w for t, w in zip(total, wire, strict=True)]
    row.actant = f"p50 {ms(p50)}, p99 {ms(p99)}"
    row.result = verdict(p50 <= TARGET and p99 <= TARGET_P99)
    row.notes = [
        f"{calls} sequential calls on one NDJSON connection after {warmup} warm-ups; reply {size / 1024:.0f} KiB; "
        f"timed to the reply's last byte (p90 {ms(percentile(wire, 90))}, p99 {ms(percentile(wire, 99))}).",
        f"Including the client's stdlib `json.loads` of the reply (p50 {ms(percentile(decode, 50))} by itself): "
        f"p50 {ms(percentile(total, 50))}, p99 {ms(percentile(total, 99))}"
        f"{'' if percentile(total, 50) <= TARGET else ', over the target'}. "
        f"Daemon RSS with 1,000 instances loaded: {rss / 2**20:.1f} MiB.",
    ]
    if p50 > TARGET or p99 > TARGET_P99:
        row.notes.append(f"Missed: p50 by {max(0, p50 / TARGET - 1):.1%}, p99 by {max(0, p99 / TARGET_P99 - 1):.1%}.")
    return [row]
