"""Figure 4: agent killed → ``Crashed`` persisted and the event delivered.

One instance of a template restarted at once by policy. Each round: read the pid, take ``perf_counter``,
``SIGKILL`` it, and wait on a subscribed connection for the ``transition`` event with ``to == "Crashed"``;
the latency is the arrival of that event's line. Right then ``.actant.json`` must already say ``Crashed`` (or
a later state of the same crash: ``Restarting``, ``Starting``, or ``Running`` with a new pid), since it persists
before it publishes. Then the round waits for the restart and checks the file again.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from bench.actant import CRASH_TEMPLATE, ActantDaemon
from bench.context import Ctx
from bench.procs import pid_alive
from bench.report import Row, verdict
from bench.rpc import Event
from bench.stats import ms, percentile

NAME = "crash"
ROWS = (("agent killed → `Crashed` persisted and event delivered", "p50 ≤ 20 ms, p99 ≤ 100 ms"),)
BUDGET = 600.0
AGENT = "crashy"
PAUSE = 0.05
"""Between a restart and the next kill: each crash meets a daemon that finished handling the previous one."""
P50 = 0.020
P99 = 0.100


def _is(to: str) -> Callable[[Event], bool]:
    def pred(e: Event) -> bool:
        return e.get("type") == "transition" and e.get("agent") == AGENT and e.get("to") == to

    return pred


def run(ctx: Ctx) -> list[Row]:
    rounds = ctx.pick(200, 20)
    warmup = 3
    row = Row(NAME, *ROWS[0])
    daemon = ActantDaemon(ctx.workdir("crash"), ctx.procs)
    daemon.start()
    latencies: list[float] = []
    restart_lat: list[float] = []
    seen_on_disk: dict[str, int] = {}
    problems: list[str] = []
    unexpected = 0
    with daemon.rpc() as events, daemon.rpc() as rpc:
        events.call("events.subscribe", {"agent": AGENT, "types": ["transition"]})
        rpc.call("agent.create", {"name": AGENT, "template": CRASH_TEMPLATE})
        rpc.call("agent.start", {"name": AGENT, "wait": False})
        events.wait_event(_is("Running"), timeout=30)
        for i in range(warmup + rounds):
            # Anything that crashed without us (e.g. a restarted agent killed by the previous crash's clean-up)
            # shows up as an extra Crashed event here.
            unexpected += sum(1 for _, e in events.drain_events() if e.get("to") == "Crashed")
            status = rpc.call("agent.status", {"name": AGENT})["agent"]
            pid = status["pid"]
            if status["status"] != "Running" or not pid or not pid_alive(pid):
                # Let a restart in flight finish, then take the fresh pid.
                events.wait_event(_is("Running"), timeout=30)
                status = rpc.call("agent.status", {"name": AGENT})["agent"]
                pid = status["pid"]
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            at, _event = events.wait_event(_is("Crashed"), timeout=30)
            record = daemon.record(AGENT)
            state = record["status"]
            if state == "Running" and record["pid"] != pid:
                state = "Running (new pid)"
            seen_on_disk[state] = seen_on_disk.get(state, 0) + 1
            if state not in ("Crashed", "Restarting", "Starting", "Running (new pid)"):  # later states of this crash
                problems.append(f"round {i}: .actant.json said {record['status']} (pid {record['pid']}) at the event")
            at_running, _ = events.wait_event(_is("Running"), timeout=30)
            after = daemon.record(AGENT)
            if after["status"] != "Running" or after["pid"] in (None, pid):
                problems.append(f"round {i}: after the restart .actant.json says {after['status']} pid {after['pid']}")
            if i >= warmup:
                latencies.append(at - t0)
                restart_lat.append(at_running - t0)
            time.sleep(PAUSE)
        time.sleep(0.5)
        unexpected += sum(1 for _, e in events.drain_events() if e.get("to") == "Crashed")
        restarts = rpc.call("agent.status", {"name": AGENT})["agent"].get("restartCount")
    daemon.stop()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    row.actant = f"p50 {ms(p50)}, p99 {ms(p99)}"
    ok = p50 <= P50 and p99 <= P99 and not problems and not unexpected
    row.result = verdict(ok)
    disk = ", ".join(f"{k} {v}x" for k, v in sorted(seen_on_disk.items()))
    row.notes = [
        f"{rounds} SIGKILLs after {warmup} warm-ups; from just before `kill` to the arrival of the `transition` "
        f"event (to `Crashed`) on a subscribed NDJSON connection; restart policy Always, no backoff; "
        f"{PAUSE * 1000:.0f} ms between a restart and the next kill. Max {ms(max(latencies))}.",
        f".actant.json read the moment the event arrived: {disk}. Kill → restarted `Running`: "
        f"p50 {ms(percentile(restart_lat, 50))}, p99 {ms(percentile(restart_lat, 99))}; "
        f"restartCount at the end: {restarts}.",
    ]
    if unexpected:
        row.notes.append(f"{unexpected} Crashed transitions that no SIGKILL of ours caused (see the daemon log).")
    if problems:
        row.notes.append(f"{len(problems)} state check(s) failed, first: {problems[0]}")
    if p50 > P50 or p99 > P99:
        row.notes.append(f"Missed: p50 by {max(0.0, p50 / P50 - 1):.1%}, p99 by {max(0.0, p99 / P99 - 1):.1%}.")
    return [row]
