"""Agent killed → ``Running`` again, vs PM2's ``online`` on its bus; exit detection beside it.

One agent (one PM2 app) restarted at once by policy; rounds alternate between Actant and PM2. Each round:
SIGKILL the pid, then time the arrival of Actant's ``Crashed`` / PM2's ``exit`` event (exit detected) and of
Actant's ``Running`` / PM2's ``online`` event (restarted). Actant persists each transition before announcing
it (Crashed, Restarting, Starting, Running: four crash-safe state writes); PM2 persists nothing.
"""

from __future__ import annotations

import os
import signal
import time

from bench import pm2
from bench.actant import CRASH_TEMPLATE, ActantDaemon
from bench.context import Ctx
from bench.figures.crash import AGENT, _is
from bench.procs import pid_alive
from bench.report import Row, verdict
from bench.stats import ms, percentile

NAME = "restart"
ROWS = (("agent killed → `Running` again", "p50 ≤ PM2's (`online` on its bus)"),)
BUDGET = 600.0
PAUSE = 0.05


def run(ctx: Ctx) -> list[Row]:
    rounds = ctx.pick(60, 15)
    row = Row(NAME, *ROWS[0])
    modules = pm2.install()
    daemon = ActantDaemon(ctx.workdir("restart-actant"), ctx.procs)
    daemon.start()
    peer: pm2.Pm2 | None = None
    if modules is not None:
        peer = pm2.Pm2(ctx.workdir("restart-pm2"), ctx.procs, modules, [pm2.crash_app(AGENT)])
        peer.start()
    a_exit: list[float] = []
    a_run: list[float] = []
    p_exit: list[float] = []
    p_run: list[float] = []
    try:
        with daemon.rpc() as events, daemon.rpc() as rpc:
            events.call("events.subscribe", {"agent": AGENT, "types": ["transition"]})
            rpc.call("agent.create", {"name": AGENT, "template": CRASH_TEMPLATE})
            rpc.call("agent.start", {"name": AGENT, "wait": False})
            events.wait_event(_is("Running"), timeout=30)
            for i in range(3 + rounds):
                status = rpc.call("agent.status", {"name": AGENT})["agent"]
                if status["status"] != "Running" or not pid_alive(status["pid"]):
                    events.wait_event(_is("Running"), timeout=30)
                    status = rpc.call("agent.status", {"name": AGENT})["agent"]
                events.drain_events()
                t0 = time.perf_counter()
                os.kill(status["pid"], signal.SIGKILL)
                crashed, _ = events.wait_event(_is("Crashed"), timeout=30)
                running, _ = events.wait_event(_is("Running"), timeout=30)
                if i >= 3:
                    a_exit.append(crashed - t0)
                    a_run.append(running - t0)
                time.sleep(PAUSE)
                if peer is not None:
                    pid = peer.pid(AGENT)
                    t0 = time.perf_counter()
                    os.kill(pid, signal.SIGKILL)
                    exited = peer.wait_for(AGENT, "exit")
                    online = peer.wait_for(AGENT, "online")
                    if i >= 3:
                        p_exit.append(exited - t0)
                        p_run.append(online - t0)
                    time.sleep(PAUSE)
    finally:
        if peer is not None:
            peer.stop()
        daemon.stop()
    a50 = percentile(a_run, 50)
    row.actant = f"p50 {ms(a50)}, p99 {ms(percentile(a_run, 99))}"
    row.notes = [
        f"{rounds} SIGKILLs each after 3 warm-ups, alternating Actant and PM2, {PAUSE * 1000:.0f} ms apart; "
        f"restart policy Always without delay on both. Kill → exit seen (Actant `Crashed` persisted and "
        f"delivered): Actant p50 {ms(percentile(a_exit, 50))}, p99 {ms(percentile(a_exit, 99))}"
        + (f"; PM2 `exit` p50 {ms(percentile(p_exit, 50))}, p99 {ms(percentile(p_exit, 99))}." if p_exit else ".")
    ]
    if modules is None or not p_run:
        row.peer = "PM2 not available (npm or its registry unreachable)"
        row.result = "SKIP"
        return [row]
    p50 = percentile(p_run, 50)
    row.peer = f"PM2 {pm2.version(modules)}: p50 {ms(p50)}, p99 {ms(percentile(p_run, 99))} ({a50 / p50:.2f} x)"
    row.result = verdict(a50 <= p50)
    return [row]
