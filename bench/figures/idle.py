"""Idle daemon CPU with 0, 100 and N running agents (1,000; 200 with ``--quick``), supervisord beside it.

An idle supervisor should cost nothing per agent: its agents' exits arrive as events, so whatever it still
does while nobody asks is a timer, and a timer whose work grows with N shows here. The figure is the
daemon's own CPU time (user + system of all its threads, ``/proc/PID/stat``) over a quiet window after
everything settled, so it depends little on how busy the rest of the machine is. supervisord with the same
number of ``sleep`` programs idles in the same window, for context. The notes add the daemon's wake-ups
(context switches of all its threads per second): they show what still runs periodically.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.actant import ActantDaemon, generate_instances, start_all
from bench.context import Ctx
from bench.report import Row, verdict
from bench.supervisor import Supervisord

NAME = "idle"
ROWS = (
    ("idle daemon CPU with 100 running agents", "≤ 0.3 %"),
    ("idle daemon CPU with 1,000 running agents", "≤ 0.5 %"),
)
BUDGET = 900.0
SETTLE_SECONDS = 2.0
TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks of ``pid``, all its threads (also those that ended)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def switches(pid: int) -> int:
    """Context switches of all of ``pid``'s live threads: each one is a wake-up of some thread."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue  # a thread that ended meanwhile
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def idle_cpu(pids: list[int], seconds: float) -> list[tuple[float, float]]:
    """(percent of one CPU, wake-ups per second) of each pid over the same ``seconds`` window."""
    before = [(cpu_ticks(p), switches(p)) for p in pids]
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    out = []
    for pid, (ticks, woke) in zip(pids, before, strict=True):
        out.append((100.0 * (cpu_ticks(pid) - ticks) / TICK / elapsed, (switches(pid) - woke) / elapsed))
    return out


def run(ctx: Ctx) -> list[Row]:
    n = ctx.pick(1000, 200)
    window = ctx.pick(30, 5)
    rows = [Row(NAME, *r) for r in ROWS]
    daemon = ActantDaemon(ctx.workdir("idle-actant"), ctx.procs)
    names = generate_instances(daemon.home, n)
    daemon.start()
    sup100 = Supervisord(ctx.workdir("idle-supervisord-100"), ctx.procs, 100, startsecs=0)
    sup100.start()
    with daemon.rpc(timeout=600) as rpc:
        rpc.call("events.subscribe", {"types": ["transition"]})
        time.sleep(SETTLE_SECONDS)
        (idle0, woke0), (sup_idle0, _) = idle_cpu([daemon.pid, sup100.pid], window)

        start_all(rpc, names[:100], timeout=600)
        sup100.start_all()
        time.sleep(SETTLE_SECONDS)
        (idle100, woke100), (sup_idle100, sup_woke100) = idle_cpu([daemon.pid, sup100.pid], window)
        sup100.stop_all()
        sup100.stop()

        start_all(rpc, names[100:], timeout=600)
        sup_n = Supervisord(ctx.workdir("idle-supervisord-n"), ctx.procs, n, startsecs=0)
        sup_n.start()
        sup_n.start_all()
        time.sleep(SETTLE_SECONDS)
        (idle_n, woke_n), (sup_idle_n, sup_woke_n) = idle_cpu([daemon.pid, sup_n.pid], window)
        sup_n.stop_all()
        sup_n.stop()
    daemon.stop(timeout=120)

    rows[0].actant = f"{idle100:.2f} % (no agents: {idle0:.2f} %)"
    rows[0].peer = f"supervisord {sup_idle100:.2f} % (no programs running: {sup_idle0:.2f} %)"
    rows[0].result = verdict(idle100 <= 0.3)
    rows[1].figure = rows[1].figure.replace("1,000", f"{n:,}")
    rows[1].actant = f"{idle_n:.2f} %"
    rows[1].peer = f"supervisord {sup_idle_n:.2f} % ({n:,} programs)"
    rows[1].result = verdict(idle_n <= 0.5)
    rows[0].notes = [
        f"Idle windows of {window} s after {SETTLE_SECONDS:.0f} s of settling; user+system ticks of the whole "
        f"process (1/{TICK} s resolution). Wake-ups (context switches of all threads) per second, Actant with "
        f"0 / 100 / {n:,} agents: {woke0:.0f} / {woke100:.0f} / {woke_n:.0f}; supervisord with 100 / {n:,} "
        f"programs: {sup_woke100:.0f} / {sup_woke_n:.0f}."
    ]
    return rows
