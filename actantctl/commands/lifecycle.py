"""``agent start|stop|restart`` on one agent or many, the way ``supervisorctl`` and ``pm2`` users expect.

Several names, ``--all``, ``--template`` and ``--status`` pick the targets; each target is one RPC on its own
connection, all of them in parallel (the daemon serializes per instance, not across instances), and each gets
exactly one result line as it finishes. The exit status is non-zero when any of them failed.

Outcomes are read, not assumed: a start whose program exited during the start check is reported as having
exited (and whether its restart policy will retry), never as started.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from actantctl.client import ClientError
from actantctl.context import AppContext
from actantctl.output import (
    EXIT_FAILURE,
    EXIT_OK,
    Failure,
    error_document,
    exit_code_for,
    fail,
    print_json,
    stream_tails,
    text,
)
from actantd.errors import ActantError

MAX_PARALLEL = 16
"""Connections open at once; the daemon handles more, but a terminal full of results is read in order anyway."""


class Outcome:
    """One target's result: the line people read, the JSON entry, and whether it counts as a failure.

    A plain class, not a dataclass: generating one costs a millisecond at import, on every command.
    """

    __slots__ = ("details", "doc", "exit_code", "line", "name", "ok")

    def __init__(
        self,
        name: str,
        ok: bool,
        line: str,
        doc: dict[str, Any],
        details: list[str] | None = None,
        exit_code: int = EXIT_OK,
    ) -> None:
        self.name, self.ok, self.line, self.doc = name, ok, line, doc
        self.details = details if details is not None else []
        self.exit_code = exit_code


def select_targets(
    app: AppContext, names: tuple[str, ...], all_: bool, template: str | None, status: str | None
) -> list[str]:
    """The named agents, plus those matching ``--all``/``--template``/``--status`` (asked of the daemon)."""
    if not names and not (all_ or template or status):
        raise click.UsageError("name one or more agents, or use --all, --template or --status")
    chosen = list(dict.fromkeys(names))
    if all_ or template or status:
        params = {k: v for k, v in (("template", template), ("status", status)) if v is not None}
        for record in app.call("agent.list", params).get("agents") or []:
            name = record.get("name") if isinstance(record, dict) else None
            if isinstance(name, str) and name not in chosen:
                chosen.append(name)
    return chosen


def retry_note(context: dict[str, Any]) -> str:
    """Whether the restart policy takes over after a failed start, from what the daemon recorded."""
    if context.get("willRetry") is True:
        delay = context.get("retryInSeconds")
        when = f" in {delay:.1f}s" if isinstance(delay, int | float) else ""
        return f"the restart policy will retry{when}"
    status = context.get("status")
    if context.get("willRetry") is False or status == "Failed":
        return "it will not be restarted" + (f" ({context['policyReason']})" if context.get("policyReason") else "")
    if status == "Restarting":
        return "the restart policy will retry"
    return ""


def failure_outcome(name: str, verb: str, exc: ActantError | ClientError) -> Outcome:
    message = exc.message
    note = retry_note(exc.context) if verb in ("start", "restart") else ""
    if note and note not in message:
        message = f"{message}; {note}"
    doc = {"name": name, "ok": False, **error_document(exc)}
    return Outcome(name, False, message, doc, stream_tails(exc.context), exit_code_for(exc))


def start_outcome(
    name: str, record: dict[str, Any], *, waited: bool, verb: str = "started", restart_pending: bool = False
) -> Outcome:
    """A start that returned: Running is a start; a process already gone is reported as what it is."""
    status = record.get("status")
    doc = {"name": name, "ok": True, "agent": record, "raw": {"agent": record}}
    pid = text(record.get("pid"))
    if status == "Running":
        return Outcome(name, True, f"{verb} {name} (pid {pid})", doc)
    if not waited and status in ("Starting", "Restarting"):
        return Outcome(name, True, f"starting {name} ({status})", doc)
    reason = text(record.get("reason"))
    if status == "Stopped" and record.get("launchMode") == "OneShot":
        return Outcome(name, True, f"{name} ran and finished ({reason})", doc)
    doc["ok"] = False
    line = f"{name} exited during the start check ({reason}); it is {text(status)}"
    note = "the restart policy will start it again" if restart_pending else retry_note({"status": status})
    return Outcome(name, False, f"{line}; {note}" if note else line, doc, exit_code=EXIT_FAILURE)


def run_parallel(
    names: list[str], one: Callable[[str], Outcome], *, on_done: Callable[[Outcome], None]
) -> list[Outcome]:
    """Run ``one`` for every name at once; ``on_done`` sees each outcome as it finishes."""
    from concurrent.futures import Future, ThreadPoolExecutor, as_completed  # not paid by one-agent commands

    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names)) or 1) as pool:
        futures: dict[Future[Outcome], str] = {pool.submit(one, n): n for n in names}
        for fut in as_completed(futures):
            outcome = fut.result()
            outcomes.append(outcome)
            on_done(outcome)
    return outcomes


def guarded(verb: str, call: Callable[[str], Outcome]) -> Callable[[str], Outcome]:
    """Turn a daemon or client error into that target's failed outcome, so one failure never hides others."""

    def one(name: str) -> Outcome:
        try:
            return call(name)
        except (ActantError, ClientError) as exc:
            return failure_outcome(name, verb, exc)

    return one


def print_outcome(outcome: Outcome) -> None:
    if outcome.ok:
        click.echo(outcome.line)
    else:
        fail(f"{outcome.name}: {outcome.line}" if not outcome.line.startswith(outcome.name) else outcome.line)
        for line in outcome.details:
            click.echo(line, err=True)


def finish(
    app: AppContext, verb: str, names: list[str], one: Callable[[str], Outcome], *, single: bool, limit: float | None
) -> None:
    """Run every target, print one line each (or one JSON document), and fail if any failed.

    ``single`` (one name, no selector) keeps the one-agent shapes: ``--json`` prints the daemon's answer as
    it is, and a daemon error is reported like any other command's (its JSON error document, exit status).
    """
    if not names:
        app.emit({"results": []}, "no agents matched")
        return
    label = f"{_progressive(verb)} {names[0]}" if len(names) == 1 else f"{_progressive(verb)} {len(names)} agents"
    if single:
        with waiting(label, limit):
            try:
                outcome = one(names[0])
            except (ActantError, ClientError) as exc:
                note = retry_note(exc.context) if verb in ("start", "restart") else ""
                if note and note not in exc.message:
                    exc.message = f"{exc.message}; {note}"
                raise
        if app.json:
            print_json(outcome.doc.get("raw", outcome.doc))
        elif outcome.ok:
            click.echo(outcome.line)
        if not outcome.ok:
            raise Failure(outcome.line, outcome.exit_code)
        return
    with waiting(label, limit):
        outcomes = run_parallel(names, guarded(verb, one), on_done=lambda o: None if app.json else print_outcome(o))
    if app.json:
        order = {n: i for i, n in enumerate(names)}
        docs = [{k: v for k, v in o.doc.items() if k != "raw"} for o in sorted(outcomes, key=lambda o: order[o.name])]
        print_json({"results": docs})
    failed = [o for o in outcomes if not o.ok]
    if failed:
        codes = {o.exit_code for o in failed}
        code = codes.pop() if len(codes) == 1 else EXIT_FAILURE
        raise Failure(f"{len(failed)} of {len(names)} failed: {', '.join(sorted(o.name for o in failed))}", code)


def _progressive(verb: str) -> str:
    return {"start": "starting", "stop": "stopping", "restart": "restarting"}.get(verb, verb)


# -- waiting on a terminal --------------------------------------------------------------------------------

TICK_SECONDS = 1.0
SHOW_AFTER_SECONDS = 1.0
"""Quick operations print nothing extra; only one that takes longer than this shows it is waiting."""


@contextmanager
def waiting(label: str, limit: float | None = None) -> Iterator[None]:
    """On a terminal (stderr), say what we are waiting for and for how long, once it takes a while.

    One status line rewritten in place each second (``stopping hello… 4s (SIGKILL after 10s)``), erased
    when the operation ends, so the result lines that follow are what stays on the screen.
    """
    import sys
    import threading

    if not sys.stderr.isatty():
        yield
        return
    done = threading.Event()
    shown = threading.Event()
    start = time.monotonic()

    def tick() -> None:
        if done.wait(SHOW_AFTER_SECONDS):
            return
        while not done.is_set():
            elapsed = time.monotonic() - start
            suffix = f" (SIGKILL after {limit:g}s)" if limit is not None else ""
            sys.stderr.write(f"\r\x1b[K{label}… waiting {elapsed:.0f}s{suffix}")
            sys.stderr.flush()
            shown.set()
            done.wait(TICK_SECONDS)

    thread = threading.Thread(target=tick, name="waiting", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if shown.is_set():
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
