"""Figure 5: start 100 Service instances until all are ``Running``, vs supervisord starting 100 programs.

Actant: 100 ``agent.start`` requests with ``wait: false``, pipelined on one connection, then wait for a
``Running`` transition event of every instance (and every reply). ``Running`` means the process was spawned
(exec succeeded) and the state persisted.

supervisord: ``startAllProcesses(wait=True)`` over its Unix socket (what ``supervisorctl start all`` sends),
which returns once every program is ``RUNNING``. With ``startsecs=0`` (a program is RUNNING once spawned, the
same meaning as Actant's) that is the like-for-like figure; supervisord's default ``startsecs=1`` and the
whole ``supervisorctl start all`` process are given in the notes. Both daemons run side by side and the
repetitions alternate between them, so that both see the same machine; everything is stopped in between.
"""

from __future__ import annotations

import subprocess
import time

from bench.actant import SLEEP_TEMPLATE, ActantDaemon, create_many, start_all
from bench.context import Ctx
from bench.procs import child_env
from bench.report import Row, verdict
from bench.rpc import Rpc
from bench.stats import median, ms, secs, spread
from bench.supervisor import Supervisord

NAME = "start-100"
ROWS = (("start 100 Service instances until all `Running`", "≤ supervisord's time"),)
BUDGET = 600.0
COUNT = 100


def _stop_all(rpc: Rpc, names: list[str]) -> float:
    t0 = time.perf_counter()
    rpc.call_many([("agent.stop", {"name": n}) for n in names], timeout=300)
    elapsed = time.perf_counter() - t0
    rpc.events.clear()
    return elapsed


def _check_running(rpc: Rpc) -> None:
    agents = rpc.call("agent.list")["agents"]
    if sum(a["status"] == "Running" for a in agents) != COUNT:
        raise RuntimeError("not every instance is Running after start")


def _ctl_start_all(sup: Supervisord) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([*sup.ctl(), "start", "all"], env=child_env(), capture_output=True, timeout=120)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"supervisorctl start all exited {proc.returncode}: {proc.stdout[-300:]!r}")
    return elapsed


def run(ctx: Ctx) -> list[Row]:
    reps = ctx.pick(7, 2)
    variants = not ctx.quick
    row = Row(NAME, *ROWS[0])
    daemon = ActantDaemon(ctx.workdir("start-actant"), ctx.procs)
    daemon.start()
    sup = Supervisord(ctx.workdir("start-supervisord"), ctx.procs, COUNT, startsecs=0)
    sup.start()
    names = [f"agent-{i:03d}" for i in range(COUNT)]
    actant: list[float] = []
    actant_stops: list[float] = []
    peer: list[float] = []
    peer_stops: list[float] = []
    waited: list[float] = []
    ctl: list[float] = []
    with daemon.rpc() as rpc:
        rpc.call("events.subscribe", {"types": ["transition"]})
        create_many(rpc, names, SLEEP_TEMPLATE)
        # Interleaved, so that both see the same machine conditions; repetition 0 is the warm-up.
        for rep in range(reps + 1):
            a = start_all(rpc, names)
            _check_running(rpc)
            a_stop = _stop_all(rpc, names)
            s = sup.start_all()
            t0 = time.perf_counter()
            sup.stop_all()
            s_stop = time.perf_counter() - t0
            if rep == 0:
                continue
            actant.append(a)
            actant_stops.append(a_stop)
            peer.append(s)
            peer_stops.append(s_stop)
            if variants:
                # `wait: true`: each start also waits out the crash grace; all sent at once.
                t0 = time.perf_counter()
                rpc.call_many([("agent.start", {"name": n}) for n in names], timeout=300, window=COUNT)
                waited.append(time.perf_counter() - t0)
                _stop_all(rpc, names)
                ctl.append(_ctl_start_all(sup))
                sup.stop_all()
    daemon.stop()
    sup.stop()

    a_med, s_med = median(actant), median(peer)
    row.actant = ms(a_med)
    row.peer = f"supervisord {ms(s_med)} (startsecs=0)"
    row.result = verdict(a_med <= s_med)
    row.notes = [
        f"Median of {reps} interleaved repetitions after 1 warm-up, {COUNT} `sleep` agents/programs, everything "
        f"stopped between repetitions (Actant range {spread(actant)}, supervisord {spread(peer)}). Actant: "
        f"`agent.start` with `wait: false` pipelined on one connection, until {COUNT} `Running` events arrived; "
        f"supervisord: XML-RPC `startAllProcesses(wait=True)` with `startsecs=0`.",
    ]
    if variants:
        sup1 = Supervisord(ctx.workdir("start-supervisord-1"), ctx.procs, COUNT, startsecs=1)
        sup1.start()
        default: list[float] = []
        for _ in range(3):
            default.append(sup1.start_all())
            sup1.stop_all()
        sup1.stop()
        default = default[1:]
        row.notes += [
            f"Actant with `wait: true` (each reply also waits out the start grace, min(minUptimeSeconds, 1 s) = "
            f"1 s by default), all {COUNT} sent at once: {secs(median(waited))}.",
            f"supervisord with its default `startsecs=1`: {secs(median(default))}; the whole `supervisorctl start "
            f"all` process (startsecs=0): {secs(median(ctl))}.",
        ]
    row.notes.append(
        f"Stopping all {COUNT} (not a §12 figure): Actant {secs(median(actant_stops))} (`agent.stop` pipelined), "
        f"supervisord {secs(median(peer_stops))} (`stopAllProcesses`)."
    )
    if a_med > s_med:
        row.notes.append(f"Missed by {a_med / s_med - 1:.1%}.")
    return [row]
