"""Figure 8: a skill edited → every workspace referencing it re-materialized.

Instances of the bundled ``code-reviewer`` template (which references the ``code-review`` skill) are created;
then ``skills/code-review.json`` is edited the way an editor saves (write a temp file, rename over the
original). The time runs from just before the write to the arrival of the ``instance`` event with
``event == "synced"`` for the *last* referencing instance (each such event is published after that workspace
was rewritten); every ``AGENTS.md`` is then checked for the edit.
"""

from __future__ import annotations

import json
import os
import time

from actantd.daemon import CONFIG_DEBOUNCE_MS
from bench.actant import ActantDaemon, create_many
from bench.context import Ctx
from bench.report import Row, verdict
from bench.stats import ms, percentile

NAME = "skill-reload"
ROWS = (("skill edited → referencing workspaces re-materialized", "p50 ≤ 500 ms"),)
BUDGET = 300.0
TEMPLATE = "code-reviewer"
SKILL = "code-review"
TARGET = 0.5


def run(ctx: Ctx) -> list[Row]:
    instances = ctx.pick(50, 10)
    edits = ctx.pick(30, 5)
    warmup = 1
    row = Row(NAME, *ROWS[0])
    daemon = ActantDaemon(ctx.workdir("skill"), ctx.procs)
    daemon.start()
    names = [f"reviewer-{i:03d}" for i in range(instances)]
    skill_path = daemon.configs / "skills" / f"{SKILL}.json"
    original = json.loads(skill_path.read_text())
    all_done: list[float] = []
    first_done: list[float] = []
    detected: list[float] = []
    with daemon.rpc() as rpc:
        rpc.call("events.subscribe", {"types": ["instance", "config.*"]})
        create_many(rpc, names, TEMPLATE)
        for i in range(warmup + edits):
            time.sleep(0.3)  # let the previous reload settle, so every edit is a reload of its own
            rpc.drain_events()
            marker = f"bench edit {i} {time.time_ns()}"
            doc = {**original, "content": original["content"] + f"\n<!-- {marker} -->\n"}
            tmp = skill_path.with_name(f".{skill_path.name}.tmp")
            t0 = time.perf_counter()
            tmp.write_text(json.dumps(doc, indent=2) + "\n")
            os.replace(tmp, skill_path)
            pending = set(names)
            arrivals: list[float] = []
            changed_at = None
            deadline = time.monotonic() + 30
            while pending:
                at, event = rpc.wait_event(lambda e: True, timeout=max(0.001, deadline - time.monotonic()))
                if event["type"] == "config.error":
                    raise RuntimeError(f"config error after the edit: {event}")
                if event["type"] == "config.changed" and changed_at is None:
                    changed_at = at
                if event["type"] == "instance" and event.get("event") == "synced" and event["agent"] in pending:
                    pending.discard(event["agent"])
                    arrivals.append(at)
            stale = [n for n in names if marker not in (daemon.home / "instances" / n / "AGENTS.md").read_text()]
            if stale:
                raise RuntimeError(f"{len(stale)} workspaces lack the edit after their synced event: {stale[:3]}")
            if i >= warmup:
                all_done.append(max(arrivals) - t0)
                first_done.append(min(arrivals) - t0)
                if changed_at is not None:
                    detected.append(changed_at - t0)
    daemon.stop()
    p50 = percentile(all_done, 50)
    row.actant = f"p50 {ms(p50)}"
    row.result = verdict(p50 <= TARGET)
    row.notes = [
        f"{edits} edits of `skills/{SKILL}.json` (temp file + rename) after {warmup} warm-up, {instances} "
        f"`{TEMPLATE}` instances; time to the `synced` event of the last workspace (p90 {ms(percentile(all_done, 90))},"
        f" max {ms(max(all_done))}); first workspace p50 {ms(percentile(first_done, 50))}.",
        f"Of which change detection (watch + {CONFIG_DEBOUNCE_MS} ms debounce, to the `config.changed` event): "
        f"p50 {ms(percentile(detected, 50))}.",
    ]
    if p50 > TARGET:
        row.notes.append(f"Missed by {p50 / TARGET - 1:.1%}.")
    return [row]
