"""The benchmarks, one module per figure (or group of figures) of the README's table, in its order.

Each module has ``NAME`` (for ``--only``), ``ROWS`` (the figure and target of each of its table rows),
``BUDGET`` (seconds it may take at most) and ``run(ctx)`` returning its rows. ``run`` may leave processes
behind when it fails: the runner closes ``ctx.procs`` (and sweeps this run's processes) after every
benchmark, whatever happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.context import Ctx
from bench.figures import (
    cli_list,
    crash,
    idle,
    list_socket,
    ping,
    restart,
    rss,
    scale,
    skill,
    start,
    startup,
    stop,
)
from bench.report import Row


@dataclass(frozen=True)
class Figure:
    name: str
    run: Callable[[Ctx], list[Row]]
    rows: tuple[tuple[str, str], ...]
    budget_seconds: float


_MODULES = (cli_list, list_socket, ping, crash, restart, start, stop, startup, rss, skill, idle, scale)
FIGURES = tuple(Figure(m.NAME, m.run, m.ROWS, m.BUDGET) for m in _MODULES)

BY_NAME = {f.name: f for f in FIGURES}
