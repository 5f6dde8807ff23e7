"""Stop 100 / 500 instances until every process is gone, vs circus (and supervisord, for context).

Actant: ``agent.stop`` for every instance pipelined on one connection; timed until the last reply (a stop
replies once no process of the agent is left) and then checked: every recorded pid must be gone. circus:
``stop`` with ``waiting: true``, then until every pid is gone. supervisord: ``stopAllProcesses(wait=True)``.
The daemons run side by side and the repetitions alternate between them; everything is started again (not
timed) between repetitions. The third row repeats N=100 with 500 unrelated ``sleep`` processes on the
machine, which a stop that scanned every process would pay for.
"""

from __future__ import annotations

import time

from bench.actant import SLEEP, SLEEP_TEMPLATE, ActantDaemon, create_many, start_all
from bench.circus import Circusd
from bench.context import Ctx
from bench.procs import pid_alive
from bench.report import Row, verdict
from bench.rpc import Rpc
from bench.stats import median, secs, spread
from bench.supervisor import Supervisord

NAME = "stop"
ROWS = (
    ("stop 100 instances until every process is gone", "≤ circus"),
    ("stop 500 instances until every process is gone", "≤ circus"),
    ("stop 100 with 500 unrelated processes on the machine", "≤ circus, within 20 % of the unloaded figure"),
)
BUDGET = 1200.0
UNRELATED = 500


def _actant_stop(rpc: Rpc, names: list[str]) -> float:
    pids = [a["pid"] for a in rpc.call("agent.list")["agents"] if a.get("pid")]
    if len(pids) != len(names):
        raise RuntimeError(f"only {len(pids)} of {len(names)} instances had a pid before the stop")
    t0 = time.perf_counter()
    rpc.call_many([("agent.stop", {"name": n}) for n in names], timeout=600, window=len(names))
    elapsed = time.perf_counter() - t0
    left = [p for p in pids if pid_alive(p)]
    if left:
        raise RuntimeError(f"{len(left)} agent processes alive after every stop replied: {left[:5]}")
    rpc.events.clear()
    return elapsed


class _Side:
    """Actant, circus and supervisord with ``count`` programs each, started and stopped in turn."""

    def __init__(self, ctx: Ctx, count: int) -> None:
        self.count = count
        self.names = [f"agent-{i:03d}" for i in range(count)]
        self.actant = ActantDaemon(ctx.workdir(f"stop-actant-{count}"), ctx.procs)
        self.actant.start()
        self.circus = Circusd(ctx.workdir(f"stop-circus-{count}"), ctx.procs, count)
        self.circus.start()
        self.sup = Supervisord(ctx.workdir(f"stop-supervisord-{count}"), ctx.procs, count, startsecs=0)
        self.sup.start()
        self.rpc = self.actant.rpc(timeout=600)
        self.rpc.call("events.subscribe", {"types": ["transition"]})
        create_many(self.rpc, self.names, SLEEP_TEMPLATE)
        self.times: dict[str, list[float]] = {"actant": [], "circus": [], "supervisord": []}

    def round(self, keep: bool) -> None:
        start_all(self.rpc, self.names, timeout=600)
        a = _actant_stop(self.rpc, self.names)
        self.circus.start_all()
        c = self.circus.stop_all()
        self.sup.start_all()
        t0 = time.perf_counter()
        self.sup.stop_all()
        s = time.perf_counter() - t0
        if keep:
            self.times["actant"].append(a)
            self.times["circus"].append(c)
            self.times["supervisord"].append(s)

    def reset(self) -> None:
        for values in self.times.values():
            values.clear()

    def close(self) -> None:
        self.rpc.close()
        self.actant.stop()
        self.circus.stop()
        self.sup.stop()


def _row(index: int, side: _Side, reps: int, extra: str = "") -> tuple[Row, float]:
    row = Row(NAME, *ROWS[index])
    a, c, s = (median(side.times[k]) for k in ("actant", "circus", "supervisord"))
    row.actant = secs(a)
    row.peer = f"circus {secs(c)} ({a / c:.2f} x); supervisord {secs(s)}"
    row.result = verdict(a <= c)
    row.notes = [
        f"Median of {reps} interleaved repetitions after 1 warm-up, {side.count} `sleep` agents/programs"
        f"{extra}. Ranges: Actant {spread(side.times['actant'])}, circus {spread(side.times['circus'])}, "
        f"supervisord {spread(side.times['supervisord'])}."
    ]
    return row, a


def run(ctx: Ctx) -> list[Row]:
    reps = ctx.pick(3, 2)
    rows: list[Row] = []
    small = _Side(ctx, 100)
    try:
        for rep in range(reps + 1):
            small.round(keep=rep > 0)
        row100, unloaded = _row(0, small, reps)
        rows.append(row100)
        loaded_times: dict[str, list[float]]
        unrelated = [ctx.procs.start(f"unrelated-{i}", [SLEEP, "3600"]) for i in range(UNRELATED)]
        try:
            small.reset()
            for rep in range(reps + 1):
                small.round(keep=rep > 0)
            loaded_row, loaded = _row(2, small, reps, f", with {UNRELATED} unrelated `sleep` processes running")
            loaded_times = small.times
        finally:
            for proc in unrelated:
                ctx.procs.stop(proc, timeout=5)
        within = loaded <= unloaded * 1.2
        loaded_row.result = verdict(within and loaded <= median(loaded_times["circus"]))
        loaded_row.actant = f"{secs(loaded)} (unloaded {secs(unloaded)}: {loaded / unloaded - 1:+.0%})"
        rows.append(loaded_row)
    finally:
        small.close()
    big = _Side(ctx, 500)
    try:
        for rep in range(reps + 1):
            big.round(keep=rep > 0)
        row500, _ = _row(1, big, reps)
    finally:
        big.close()
    return [row100, row500, rows[1]]
