"""``python -m bench``: run the benchmarks, print the table, write ``bench/results/latest.md``.

Every benchmark runs in its own temp directory under one run directory, with its own process registry that
is closed after it (whatever happened), under a time budget. A failing benchmark becomes an ERROR row and
the others still run. On Ctrl-C or SIGTERM the partial table is printed and nothing is left running.

Exit status: 0 when every benchmark produced its figures (a missed target is a result, not an error),
1 when one failed to run, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import machine
from bench.context import Ctx
from bench.figures import BY_NAME, FIGURES, Figure
from bench.procs import (
    Budget,
    Interrupted,
    Procs,
    alive_marked,
    child_env,
    install_signal_handlers,
    sweep,
    time_budget,
    use_pycache,
)
from bench.report import ERROR, Row, render_markdown, render_text
from bench.stats import ms

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts and a 30 s churn: a smoke run")
    parser.add_argument("--only", action="append", metavar="NAME", default=[],
                        help=f"run only these benchmarks (repeat or comma-separate): {', '.join(BY_NAME)}")  # fmt: skip
    parser.add_argument("--churn-seconds", type=float, metavar="S",
                        help="duration of the RSS churn (default 600, or 30 with --quick)")  # fmt: skip
    parser.add_argument("--tmp", type=Path, metavar="DIR", help="where to make the run's temp directory")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.md", help="Markdown output file")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (daemon logs) for inspection")
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    args.only = names
    if args.churn_seconds is None:
        args.churn_seconds = 30.0 if args.quick else 600.0
    return args


def _error_rows(fig: Figure, exc: BaseException) -> list[Row]:
    message = f"{type(exc).__name__}: {exc}".strip()
    message = message.splitlines()[0][:300] if message else type(exc).__name__
    return [Row(fig.name, figure, target, result=ERROR, notes=[f"Benchmark failed: {message}"])
            for figure, target in fig.rows]  # fmt: skip


def _run_one(fig: Figure, args: argparse.Namespace, tmp: Path) -> list[Row]:
    procs = Procs()
    workdir = tmp / fig.name
    workdir.mkdir()
    ctx = Ctx(quick=args.quick, tmp=workdir, churn_seconds=args.churn_seconds, procs=procs)
    budget = fig.budget_seconds + (args.churn_seconds if fig.name == "rss" else 0)
    try:
        with time_budget(budget, fig.name):
            return fig.run(ctx)
    except (Exception, Budget) as exc:
        traceback.print_exc(file=sys.stderr)
        return _error_rows(fig, exc)
    finally:
        procs.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


WARM_IMPORTS = (
    "actantd.__main__",
    "actantd.daemon",
    "actantctl.cli",
    "actantctl.commands.agent",
    "actantctl.commands.agent_list",
    "actantctl.commands.daemon",
    "supervisor.supervisord",
    "supervisor.supervisorctl",
    "bench.ping_client",
)


def warm_bytecode(tmp: Path) -> None:
    """Compile what the children import into the run's bytecode cache, so no measured start compiles."""
    use_pycache(tmp / "pycache")
    code = f"import importlib\nfor m in {WARM_IMPORTS!r}: importlib.import_module(m)"
    subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=REPO, check=True, timeout=120)


def _revisions(before: str) -> str:
    """The checkout's revision; both ends if it changed while the benchmarks ran (each daemon start loads the
    code on disk at that moment)."""
    after = machine.git_revision(REPO)
    return before if after == before else f"{before} at the start, {after} at the end (changed during the run)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    selected = [f for f in FIGURES if not args.only or f.name in args.only]
    base = args.tmp if args.tmp is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="actant-bench-", dir=base))
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = machine.load_average()
    revision = machine.git_revision(REPO)
    write_p50 = write_p90 = float("nan")
    rows: list[Row] = []
    interrupted = False
    try:
        write_p50, write_p90 = machine.state_write_probe(tmp)
        warm_bytecode(tmp)
        for i, fig in enumerate(selected, 1):
            print(f"[{i}/{len(selected)}] {fig.name} ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            fig_rows = _run_one(fig, args, tmp)
            rows.extend(fig_rows)
            for row in fig_rows:
                print(f"      {row.figure}: {row.actant} [{row.result}] ({time.monotonic() - t0:.0f} s)",
                      file=sys.stderr, flush=True)  # fmt: skip
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        print("\ninterrupted: cleaning up", file=sys.stderr)
    finally:
        sweep()
        leftovers = alive_marked()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)

    elapsed = time.monotonic() - started
    mode = "quick" if args.quick else "full"
    header = (
        f"Run {stamp}, {mode} mode{' (interrupted)' if interrupted else ''}, actant {_revisions(revision)}, "
        f"{elapsed:.0f} s in all.\nConditions: load average before {load_before}, after "
        f"{machine.load_average()}; a crash-safe 1 KiB state write (write, fsync, rename, fsync dir) took "
        f"p50 {ms(write_p50)}, p90 {ms(write_p90)} on the temp dir's disk at the start."
    )
    machine_line = f"Machine: {machine.describe(base)}"
    print(render_text(rows, machine_line, header))
    if leftovers:
        print(f"WARNING: {len(leftovers)} benchmark processes survived the sweep: {leftovers}", file=sys.stderr)
    if interrupted:
        print(f"not writing {args.out} for an interrupted run", file=sys.stderr)
        return 130
    with contextlib.suppress(OSError):
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_markdown(rows, machine.describe(base), header))
        print(f"wrote {args.out}", file=sys.stderr)
    return 1 if any(r.result == ERROR for r in rows) or leftovers else 0
