"""Figure 1: ``actantctl agent list --json`` with 100 instances vs ``supervisorctl status`` with 100 programs.

Both are measured as a user runs them: the whole process, from fork+exec to exit, output captured through
a pipe, median of interleaved runs after a few warm-ups. Both daemons hold 100 running ``sleep`` agents
(programs), and both CLIs run on the same interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence

from bench.actant import SLEEP_TEMPLATE, ActantDaemon, create_many, start_all
from bench.context import ACTANTCTL, Ctx
from bench.procs import child_env
from bench.report import Row, verdict
from bench.stats import median, ms, spread
from bench.supervisor import Supervisord

NAME = "cli-list"
ROWS = (("`actantctl agent list --json`, 100 instances, whole process", "≤ 0.5 x `supervisorctl status`"),)
BUDGET = 300.0
COUNT = 100
RATIO = 0.5


def _timed(argv: Sequence[str], ok_codes: tuple[int, ...] = (0,)) -> tuple[float, bytes]:
    env = child_env()
    t0 = time.perf_counter()
    proc = subprocess.run(list(argv), env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
    return elapsed, proc.stdout


def run(ctx: Ctx) -> list[Row]:
    runs = ctx.pick(30, 10)
    warmup = 3
    row = Row(NAME, *ROWS[0])
    root = ctx.workdir("cli-list")

    daemon = ActantDaemon(root / "actant", ctx.procs)
    daemon.start()
    names = [f"agent-{i:03d}" for i in range(COUNT)]
    with daemon.rpc() as rpc:
        rpc.call("events.subscribe", {"types": ["transition"]})
        create_many(rpc, names, SLEEP_TEMPLATE)
        start_all(rpc, names)
    sup = Supervisord(root / "supervisord", ctx.procs, COUNT)
    sup.start()
    sup.start_all()

    actant_argv = [str(ACTANTCTL), "--socket", str(daemon.socket), "agent", "list", "--json"]
    sup_argv = [*sup.ctl(), "status"]
    python_argv = [sys.executable, "-c", "pass"]

    _, out = _timed(actant_argv)
    agents = json.loads(out)["agents"]
    if len(agents) != COUNT or any(a["status"] != "Running" for a in agents):
        raise RuntimeError(f"actantctl listed {len(agents)} agents, not {COUNT} Running")
    _, out = _timed(sup_argv)
    lines = [ln for ln in out.decode().splitlines() if ln.strip()]
    if len(lines) != COUNT or any("RUNNING" not in ln for ln in lines):
        raise RuntimeError(f"supervisorctl status printed {len(lines)} lines, not {COUNT} RUNNING")

    actant_t: list[float] = []
    sup_t: list[float] = []
    python_t: list[float] = []
    for i in range(warmup + runs):
        a, _ = _timed(actant_argv)
        s, _ = _timed(sup_argv)
        p, _ = _timed(python_argv)
        if i >= warmup:
            actant_t.append(a)
            sup_t.append(s)
            python_t.append(p)

    daemon.stop()
    sup.stop()

    a_med, s_med = median(actant_t), median(sup_t)
    ratio = a_med / s_med
    row.actant = f"{ms(a_med)} (= {ratio:.2f} x)"
    row.peer = f"supervisorctl {ms(s_med)}"
    row.result = verdict(ratio <= RATIO)
    row.notes = [
        f"Median of {runs} interleaved runs after {warmup} warm-ups; whole process (fork+exec to exit, stdout "
        f"captured); {COUNT} running `sleep` agents / programs; both daemons on a Unix socket.",
        f"Ranges: actantctl {spread(actant_t)}, supervisorctl {spread(sup_t)}; "
        f"a bare `python -c pass` on the same interpreter takes {ms(median(python_t))} "
        f"(so actantctl's own work is about {ms(a_med - median(python_t))}).",
    ]
    if ratio > RATIO:
        row.notes.append(
            f"Missed by {ratio / RATIO - 1:.1%}: would need ≤ {ms(s_med * RATIO)}; interpreter start-up alone is "
            f"{median(python_t) / s_med:.2f} x supervisorctl."
        )
    return [row]
