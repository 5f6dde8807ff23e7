"""Figure 1: ``actantctl agent list --json`` with 100 instances vs ``supervisorctl status`` with 100 programs.

Both are measured as a user runs them: the whole process, from fork+exec to exit, output captured through
a pipe, median of interleaved runs after a few warm-ups. Both daemons hold 100 running ``sleep`` agents
(programs). The row is the console scripts of a wheel install (:mod:`bench.wheel`: actant and supervisor in a
venv of their own, bytecode as pip compiled it), the same interpreter for both; the dev venv's editable
install is measured alongside as context, since its ``.pth`` finder slows every interpreter start there.

The floor is measured in the same loop on the wheel venv's interpreter: ``python -c pass``, a stdlib
socket+json client doing the same ``agent.list`` and printing the same document, and that client after
``import click`` (what any click CLI pays before its own code runs).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.actant import SLEEP_TEMPLATE, ActantDaemon, create_many, start_all
from bench.context import ACTANTCTL, Ctx
from bench.procs import child_env
from bench.report import Row, verdict
from bench.stats import median, ms, spread
from bench.supervisor import Supervisord
from bench.wheel import wheel_venv

NAME = "cli-list"
ROWS = (("`actantctl agent list --json`, 100 instances, whole process", "≤ 0.5 x `supervisorctl status`"),)
BUDGET = 420.0
COUNT = 100
RATIO = 0.5

STDLIB_CLIENT = (
    "import json, socket, sys\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "s.connect(sys.argv[1])\n"
    's.sendall(b\'{"jsonrpc":"2.0","id":1,"method":"agent.list","params":{}}\\n\')\n'
    "sys.stdout.write(json.dumps(json.loads(s.makefile('rb').readline())['result'], indent=2, ensure_ascii=False))\n"
)
"""The floor of the client's own work: connect, one request, one reply, the same indented document out."""


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: Sequence[str], installed: bool) -> tuple[float, float, bytes]:
    """Wall seconds, CPU seconds (user + system, from the reaped child's rusage) and stdout of one run.

    CPU time is the steadier of the two on a shared machine: waiting for a core is not in it. The daemons
    are children too, but they are not reaped before the end, so the difference is this process's alone.
    """
    env = child_env()
    if installed:
        # An installed package runs from the .pyc files pip compiled, not from the run's private cache.
        env.pop("PYTHONPYCACHEPREFIX", None)
    cpu0 = _cpu_of_children()
    t0 = time.perf_counter()
    proc = subprocess.run(list(argv), env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - t0
    cpu = _cpu_of_children() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
    return elapsed, cpu, proc.stdout


def _check_actant(out: bytes, what: str) -> None:
    agents = json.loads(out)["agents"]
    if len(agents) != COUNT or any(a["status"] != "Running" for a in agents):
        raise RuntimeError(f"{what} listed {len(agents)} agents, not {COUNT} Running")


def _check_sup(out: bytes, what: str) -> None:
    lines = [ln for ln in out.decode().splitlines() if ln.strip()]
    if len(lines) != COUNT or any("RUNNING" not in ln for ln in lines):
        raise RuntimeError(f"{what} printed {len(lines)} lines, not {COUNT} RUNNING")


def run(ctx: Ctx) -> list[Row]:
    runs = ctx.pick(30, 10)
    warmup = 3
    row = Row(NAME, *ROWS[0])
    root = ctx.workdir("cli-list")
    wheel_bin: Path | None = None
    try:
        wheel_bin = wheel_venv()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        row.notes.append(f"No wheel install ({exc}); the row is the editable install's figure.")

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

    list_args = ["--socket", str(daemon.socket), "agent", "list", "--json"]
    sup_args = [*sup.ctl()[1:], "status"]
    # label -> (argv, installed)
    commands: dict[str, tuple[list[str], bool]] = {
        "editable": ([str(ACTANTCTL), *list_args], False),
        "editable-sup": ([sup.ctl()[0], *sup_args], False),
        "editable-python": ([sys.executable, "-c", "pass"], False),
    }
    if wheel_bin is not None:
        py = str(wheel_bin / "python")
        commands |= {
            "wheel": ([str(wheel_bin / "actantctl"), *list_args], True),
            "wheel-sup": ([str(wheel_bin / "supervisorctl"), *sup_args], True),
            "python": ([py, "-c", "pass"], True),
            "stdlib": ([py, "-c", STDLIB_CLIENT, str(daemon.socket)], True),
            "click+stdlib": ([py, "-c", "import click\n" + STDLIB_CLIENT, str(daemon.socket)], True),
        }
    for label in ("editable", "wheel", "stdlib", "click+stdlib"):
        if label in commands:
            _check_actant(_timed(*commands[label])[2], label)
    for label in ("editable-sup", "wheel-sup"):
        if label in commands:
            _check_sup(_timed(*commands[label])[2], label)

    times: dict[str, list[float]] = {label: [] for label in commands}
    cpu_times: dict[str, list[float]] = {label: [] for label in commands}
    for i in range(warmup + runs):
        for label, (argv, installed) in commands.items():
            elapsed, cpu, _ = _timed(argv, installed)
            if i >= warmup:
                times[label].append(elapsed)
                cpu_times[label].append(cpu)

    daemon.stop()
    sup.stop()

    med = {label: median(values) for label, values in times.items()}
    cpu_med = {label: median(values) for label, values in cpu_times.items()}
    main, peer = ("wheel", "wheel-sup") if wheel_bin is not None else ("editable", "editable-sup")
    ratio = med[main] / med[peer]
    row.actant = f"{ms(med[main])} (= {ratio:.2f} x)"
    row.peer = f"supervisorctl {ms(med[peer])}"
    row.result = verdict(ratio <= RATIO)
    installs = "wheel install (actant and supervisor in a venv of their own)" if wheel_bin else "editable install"
    row.notes[:0] = [
        f"Median of {runs} interleaved runs after {warmup} warm-ups; whole process (fork+exec to exit, stdout "
        f"captured); {COUNT} running `sleep` agents / programs; both daemons on a Unix socket; {installs}.",
        f"Ranges: actantctl {spread(times[main])}, supervisorctl {spread(times[peer])}. CPU time (user + system, "
        f"median): actantctl {ms(cpu_med[main])}, supervisorctl {ms(cpu_med[peer])} "
        f"(= {cpu_med[main] / cpu_med[peer]:.2f} x).",
    ]
    if wheel_bin is not None:
        floor = med["click+stdlib"]
        row.notes += [
            f"Floor on the same interpreter: `python -c pass` {ms(med['python'])}; a stdlib socket+json client "
            f"doing the same `agent.list` and printing the same document {ms(med['stdlib'])}; the same after "
            f"`import click` {ms(floor)} (= {floor / med[peer]:.2f} x supervisorctl). In CPU time: "
            f"{ms(cpu_med['python'])}, {ms(cpu_med['stdlib'])}, {ms(cpu_med['click+stdlib'])}; actantctl above "
            f"the last {ms(cpu_med[main] - cpu_med['click+stdlib'])} (its own modules, click's dispatch and "
            "gettext lookups).",
            f"Editable install (the dev venv, context): actantctl {ms(med['editable'])}, supervisorctl "
            f"{ms(med['editable-sup'])} (= {med['editable'] / med['editable-sup']:.2f} x), `python -c pass` "
            f"{ms(med['editable-python'])}: its `.pth` finder runs at every start in that venv.",
        ]
    else:
        row.notes.append(f"A bare `python -c pass` on the same interpreter takes {ms(med['editable-python'])}.")
    if ratio > RATIO:
        row.notes.append(f"Missed by {ratio / RATIO - 1:.1%}: would need ≤ {ms(med[peer] * RATIO)}.")
    return [row]
