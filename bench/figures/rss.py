"""Figure 7: daemon RSS with 100 running agents, and whether it stays flat over a stop/start churn.

100 ``sleep`` agents are started; then, for the churn duration, batches of 10 agents are stopped and started
again (pipelined on one connection), round-robin over all 100, as fast as the daemon answers. The daemon's
own VmRSS (agents not included) is sampled about twice a second. "Flat" means the second half of the churn
added at most 1 MiB (or 2 %) over the RSS at its midpoint: early growth (warming caches, SQLite's page cache)
is allowed, steady growth is not. supervisord's RSS with 100 running programs is given for context.
"""

from __future__ import annotations

import time

from actantd.eventloop import LOOP_ENV, chosen_loop
from bench.actant import SLEEP_TEMPLATE, ActantDaemon, create_many, start_all
from bench.context import Ctx
from bench.procs import pid_alive, rss_split, thread_count
from bench.report import Row, verdict
from bench.stats import mib
from bench.supervisor import Supervisord

NAME = "rss"
ROWS = (("daemon RSS with 100 running agents", "≤ 1.1 x supervisord's, flat over the churn"),)
BUDGET = 300.0
"""Plus the churn duration."""
COUNT = 100
BATCH = 10
LIMIT = 40 * 2**20
SAMPLE_EVERY = 0.5


def _slope(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope in bytes per second."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return sum((t - mt) * (r - mr) for t, r in samples) / den if den else 0.0


def run(ctx: Ctx) -> list[Row]:
    duration = ctx.churn_seconds
    row = Row(NAME, *ROWS[0])
    daemon = ActantDaemon(ctx.workdir("rss"), ctx.procs)
    daemon.start()
    names = [f"agent-{i:03d}" for i in range(COUNT)]
    samples: list[tuple[float, int]] = []
    cycles = 0
    with daemon.rpc() as rpc:
        rpc.call("events.subscribe", {"types": ["transition"]})
        rss_idle = daemon.rss()
        create_many(rpc, names, SLEEP_TEMPLATE)
        start_all(rpc, names)
        time.sleep(1.0)
        rpc.events.clear()
        rss_start = daemon.rss()
        t0 = time.monotonic()
        samples.append((0.0, rss_start))
        next_sample = t0 + SAMPLE_EVERY
        i = 0
        while time.monotonic() - t0 < duration:
            batch = [names[(i + k) % COUNT] for k in range(BATCH)]
            i = (i + BATCH) % COUNT
            rpc.call_many([("agent.stop", {"name": n}) for n in batch], timeout=120)
            rpc.call_many([("agent.start", {"name": n, "wait": False}) for n in batch], timeout=120)
            rpc.events.clear()
            cycles += BATCH
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - t0, daemon.rss()))
                next_sample = now + SAMPLE_EVERY
        samples.append((time.monotonic() - t0, daemon.rss()))
        anon, mapped = rss_split(daemon.pid)
        threads = thread_count(daemon.pid)
        agents = rpc.call("agent.list")["agents"]
        running = [a for a in agents if a["status"] == "Running" and a["pid"] and pid_alive(a["pid"])]
        if len(running) != COUNT:
            raise RuntimeError(f"after the churn only {len(running)} of {COUNT} agents are Running")
        journal_dropped = rpc.call("daemon.status").get("journalDropped")
    elapsed = samples[-1][0]
    daemon.stop()

    sup = Supervisord(ctx.workdir("rss-supervisord"), ctx.procs, COUNT)
    sup.start()
    sup.start_all()
    time.sleep(1.0)
    sup_rss = sup.rss()
    sup.stop()

    rss_end = samples[-1][1]
    rss_max = max(r for _, r in samples)
    half = [s for s in samples if s[0] >= elapsed / 2]
    rss_mid = half[0][1]
    growth = rss_end - rss_mid
    flat = growth <= max(2**20, 0.02 * rss_mid)
    slope = _slope(half) * 60
    row.actant = f"start {mib(rss_start)}, max {mib(rss_max)}, end {mib(rss_end)}"
    row.actant += f" ({rss_start / sup_rss:.2f} x at the start)"
    row.peer = f"supervisord {mib(sup_rss)}"
    row.result = verdict(rss_start <= 1.1 * sup_rss and rss_max <= LIMIT and flat)
    row.notes = [
        f"{elapsed:.0f} s of churn: {cycles:,} stop+start cycles ({cycles / elapsed:.0f}/s) in batches of {BATCH} "
        f"over {COUNT} running `sleep` agents; daemon VmRSS sampled every {SAMPLE_EVERY} s ({len(samples)} samples).",
        f"Idle daemon (no instances) {mib(rss_idle)}; second half of the churn: {mib(rss_mid)} → {mib(rss_end)} "
        f"({growth / 2**20:+.2f} MiB, trend {slope / 2**20:+.2f} MiB/min); journal entries dropped: "
        f"{journal_dropped}. At the end {mib(anon)} anonymous (heap, stacks) + {mib(mapped)} file-backed "
        f"(the interpreter and extension modules mapped from disk, shared with other processes); {threads} threads; "
        f"the {chosen_loop()} event loop (`{LOOP_ENV}`).",
    ]
    if rss_start > 1.1 * sup_rss:
        row.notes.append(f"Over 1.1 x supervisord's by {rss_start / (1.1 * sup_rss) - 1:.1%} at the start.")
    if rss_max > LIMIT:
        row.notes.append(f"Max RSS over the limit by {rss_max / LIMIT - 1:.1%}.")
    if not flat:
        row.notes.append("Not flat: the RSS kept growing in the second half of the churn.")
    if duration < 120:
        row.notes.append(f"A {duration:.0f} s churn is a smoke test: too short to judge flatness (full run: 600 s).")
    return [row]
