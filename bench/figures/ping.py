"""Figure 3: ``daemon.ping`` throughput with 16 concurrent connections.

16 client *processes* (``bench.ping_client``), one connection each, count the replies that arrive within a
common interval. Run twice: pipelined (a window of requests in flight per connection, which JSON-RPC allows
since replies carry their id) and strictly sequential (one request in flight per connection). The table
reports the pipelined figure; both are in the notes. Clients and daemon share the machine's CPUs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from actantd.eventloop import LOOP_ENV, chosen_loop
from bench.actant import ActantDaemon
from bench.context import Ctx
from bench.procs import child_env
from bench.report import Row, verdict

NAME = "ping"
ROWS = (("`daemon.ping`, 16 concurrent connections", "≥ 20,000 requests/s"),)
BUDGET = 300.0
CLIENTS = 16
TARGET = 20_000
WINDOW = 16


def _load(ctx: Ctx, daemon: ActantDaemon, window: int, seconds: float) -> tuple[float, int]:
    lead = 8.0  # time for 16 interpreters to start and connect before the interval opens
    start_at = time.monotonic() + lead
    end_at = start_at + seconds
    argv = [sys.executable, "-m", "bench.ping_client", "--socket", str(daemon.socket), "--start-at", str(start_at),
            "--end-at", str(end_at), "--window", str(window)]  # fmt: skip
    clients = [
        subprocess.Popen(argv, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(CLIENTS)
    ]
    total = errors = late = 0
    try:
        for proc in clients:
            out, err = proc.communicate(timeout=lead + seconds + 60)
            if proc.returncode != 0:
                raise RuntimeError(f"ping client failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
            result = json.loads(out)
            total += result["count"]
            errors += result["errors"]
            late += result["connectedAt"] > start_at
    finally:
        for proc in clients:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if errors:
        raise RuntimeError(f"{errors} error replies to daemon.ping")
    if late:
        raise RuntimeError(f"{late} clients connected after the interval opened; raise the lead time")
    return total / seconds, total


def run(ctx: Ctx) -> list[Row]:
    seconds = 2.0 if ctx.quick else 5.0
    row = Row(NAME, *ROWS[0])
    daemon = ActantDaemon(ctx.workdir("ping"), ctx.procs)
    daemon.start()
    pipelined, n_pipe = _load(ctx, daemon, WINDOW, seconds)
    sequential, n_seq = _load(ctx, daemon, 1, seconds)
    daemon.stop()
    row.actant = f"{pipelined:,.0f} req/s"
    row.result = verdict(pipelined >= TARGET)
    row.notes = [
        f"{CLIENTS} client processes, one NDJSON connection each, pipelined with {WINDOW} requests in flight per "
        f"connection: {pipelined:,.0f} req/s ({n_pipe:,} replies in {seconds:.0f} s).",
        f"Strictly sequential (1 in flight per connection, 16 in total): {sequential:,.0f} req/s "
        f"({n_seq:,} replies in {seconds:.0f} s){'' if sequential >= TARGET else ', below the target'}.",
        f"Clients and daemon share the same CPUs; the daemon is one asyncio thread, on the {chosen_loop()} loop "
        f"(`{LOOP_ENV}`).",
    ]
    if pipelined < TARGET:
        row.notes.append(f"Missed by {1 - pipelined / TARGET:.1%}.")
    return [row]
