"""Scale mode: one daemon with 1,000 running agents (200 with ``--quick``), the figures that grow with N.

(Idle CPU at 0, 100 and N agents is its own figure, :mod:`bench.figures.idle`, so it can be run alone.)

- Exit detection: SIGKILL of one agent (restarted at once by policy) to the ``Crashed`` event, first with it
  the only running agent, then with N running; the target is on the ratio of the p99s.
- ``agent.list`` over the socket with N *running* agents: sequential calls, timed to the reply's last byte.
- RSS with 500 running agents vs supervisord with 500 running programs.
- ``daemon.shutdown`` (SIGTERM) with N running agents: until the daemon exited and every agent pid is gone.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

from bench.actant import CRASH_TEMPLATE, ActantDaemon, generate_instances, start_all
from bench.context import Ctx
from bench.procs import pid_alive
from bench.report import Row, verdict
from bench.rpc import Event, Rpc
from bench.stats import median, mib, ms, percentile, secs
from bench.supervisor import Supervisord

NAME = "scale"
ROWS = (
    ("agent killed → `Crashed` event, p99 with 1,000 running", "≤ 3 x p99 with one running"),
    ("`agent.list` over the socket, 1,000 running agents", "p50 ≤ 5 ms, p99 ≤ 10 ms"),
    ("daemon RSS with 500 running agents", "≤ supervisord's with 500 programs"),
    ("daemon shutdown with 1,000 running agents", "≤ 3 s"),
)
BUDGET = 1500.0
CRASHY = "crashy"


def _is(to: str) -> Callable[[Event], bool]:
    return lambda e: e.get("type") == "transition" and e.get("agent") == CRASHY and e.get("to") == to


def _crash_p99(rpc: Rpc, events: Rpc, rounds: int) -> tuple[float, float]:
    lat: list[float] = []
    for i in range(rounds + 3):
        events.drain_events()
        status = rpc.call("agent.status", {"name": CRASHY})["agent"]
        if status["status"] != "Running" or not status["pid"] or not pid_alive(status["pid"]):
            events.wait_event(_is("Running"), timeout=30)
            status = rpc.call("agent.status", {"name": CRASHY})["agent"]
        t0 = time.perf_counter()
        os.kill(status["pid"], signal.SIGKILL)
        at, _ = events.wait_event(_is("Crashed"), timeout=30)
        events.wait_event(_is("Running"), timeout=30)
        if i >= 3:
            lat.append(at - t0)
        time.sleep(0.05)
    return percentile(lat, 50), percentile(lat, 99)


def _list_times(rpc: Rpc, count: int, calls: int) -> list[float]:
    request = rpc.encode(1, "agent.list", {})
    out: list[float] = []
    for i in range(10 + calls):
        t0 = time.perf_counter()
        rpc.sock.sendall(request)
        at, line = rpc.read_line(time.monotonic() + 30)
        if i == 0:
            running = sum(a["status"] == "Running" for a in json.loads(line)["result"]["agents"])
            if running < count - 1:  # the crash agent may be between its crash and its restart
                raise RuntimeError(f"agent.list shows {running} of {count} agents Running")
        if i >= 10:
            out.append(at - t0)
    return out


def run(ctx: Ctx) -> list[Row]:
    n = ctx.pick(1000, 200)
    mid = min(500, n)
    rounds = ctx.pick(100, 20)
    keys = ("exit", "list", "rss", "shutdown")
    rows = {k: Row(NAME, *r) for k, r in zip(keys, ROWS, strict=True)}
    daemon = ActantDaemon(ctx.workdir("scale-actant"), ctx.procs)
    names = generate_instances(daemon.home, n - 1)
    daemon.start()
    notes: list[str] = []
    with daemon.rpc(timeout=600) as rpc, daemon.rpc() as events:
        rpc.call("events.subscribe", {"types": ["transition"]})
        events.call("events.subscribe", {"agent": CRASHY, "types": ["transition"]})
        rpc.call("agent.create", {"name": CRASHY, "template": CRASH_TEMPLATE})
        rpc.call("agent.start", {"name": CRASHY, "wait": False})
        events.wait_event(_is("Running"), timeout=30)
        one_p50, one_p99 = _crash_p99(rpc, events, rounds)

        start_all(rpc, names[: mid - 1], timeout=600)
        sup500 = Supervisord(ctx.workdir("scale-supervisord-500"), ctx.procs, mid, startsecs=0)
        sup500.start()
        sup500.start_all()
        time.sleep(2)
        rss_a, rss_s = [], []
        for _ in range(5):
            rss_a.append(daemon.rss())
            rss_s.append(sup500.rss())
            time.sleep(0.2)
        sup500.stop_all()
        sup500.stop()

        start_all(rpc, names[mid - 1 :], timeout=600)
        time.sleep(2)
        n_p50, n_p99 = _crash_p99(rpc, events, rounds)
        with daemon.rpc() as lister:  # not subscribed: every line is a reply
            listed = _list_times(lister, n, ctx.pick(300, 50))
        pids = [a["pid"] for a in rpc.call("agent.list")["agents"] if a.get("pid")]
    if len(pids) != n:
        raise RuntimeError(f"{len(pids)} of {n} agents running before the shutdown")
    t0 = time.perf_counter()
    code = daemon.stop(timeout=120)
    while any(pid_alive(p) for p in pids):
        time.sleep(0.001)
    shutdown = time.perf_counter() - t0

    rows["exit"].figure = rows["exit"].figure.replace("1,000", f"{n:,}")
    rows["exit"].actant = f"p99 {ms(n_p99)} (one running: {ms(one_p99)}; {n_p99 / one_p99:.2f} x)"
    rows["exit"].result = verdict(n_p99 <= 3 * one_p99)
    rows["list"].figure = rows["list"].figure.replace("1,000", f"{n:,}")
    rows["list"].actant = f"p50 {ms(percentile(listed, 50))}, p99 {ms(percentile(listed, 99))}"
    rows["list"].result = verdict(percentile(listed, 50) <= 0.005 and percentile(listed, 99) <= 0.010)
    a_rss, s_rss = median(rss_a), median(rss_s)
    rows["rss"].figure = rows["rss"].figure.replace("500", f"{mid}")
    rows["rss"].actant = f"{mib(a_rss)} ({a_rss / s_rss:.2f} x)"
    rows["rss"].peer = f"supervisord {mib(s_rss)}"
    rows["rss"].result = verdict(a_rss <= s_rss)
    rows["shutdown"].figure = rows["shutdown"].figure.replace("1,000", f"{n:,}")
    rows["shutdown"].actant = f"{secs(shutdown)} (exit code {code})"
    rows["shutdown"].result = verdict(shutdown <= 3.0 and code == 0)
    notes.append(
        f"Exit detection: {rounds} SIGKILLs after 3 warm-ups each, "
        f"one running p50 {ms(one_p50)}, {n:,} running p50 {ms(n_p50)}."
    )
    for row in rows.values():
        row.notes = list(notes) if row is rows["exit"] else []
    return list(rows.values())
