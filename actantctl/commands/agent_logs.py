"""``actantctl agent logs``: the last lines of both streams, or one; ``-f`` keeps following from the tail.

Both streams by default, each line marked with where it came from (``out |`` / ``err |``), the way ``pm2
logs`` shows them: the tail of stdout, then the tail of stderr, then (with ``-f``) new lines of either as
they arrive. ``--stdout`` or ``--stderr`` picks one, unmarked, for scripts. An agent that has never run says
so, instead of printing nothing.

Following two streams needs two subscriptions (the daemon follows one file per request); each is read by
its own thread into one queue, so lines of the two are printed in the order they reached us.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from actantctl.client import ClientError, Stream
from actantctl.commands.completion import complete_agents
from actantctl.context import AppContext, json_stream_option, pass_app
from actantctl.output import print_json, print_json_line
from actantd.errors import ActantError

DEFAULT_LINES = 50
ALL_LINES = 1_000_000
"""``--all``: everything still on disk (the current file and the last rotated one)."""
MARKERS = {"stdout": "out |", "stderr": "err |"}


def _mark(stream: str, line: str, marked: bool) -> str:
    line = str(line).removesuffix("\n")
    return f"{MARKERS[stream]} {line}" if marked else line


def _echo(stream: str, lines: Any, marked: bool) -> None:
    for line in lines if isinstance(lines, list) else []:
        click.echo(_mark(stream, line, marked))
    sys.stdout.flush()


def _never_ran_hint(app: AppContext, name: str) -> str | None:
    """Why there is nothing to show when the agent was never started, and how to start it."""
    try:
        record = app.call("agent.status", {"name": name}).get("agent") or {}
    except (ActantError, ClientError):
        return None
    if not record.get("launchedAt"):
        return f"{name} has never run, so it has no output yet; start it with `actantctl agent start {name}`"
    return None  # it ran and printed nothing (on this stream): an empty answer says exactly that


@click.command("logs")
@click.argument("name", shell_complete=complete_agents)
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=DEFAULT_LINES,
    show_default=True,
    help="How many of the last lines of each stream to show.",
)
@click.option("--all", "all_lines", is_flag=True, help="Show every line still on disk, not only the last ones.")
@click.option("-f", "--follow", is_flag=True, help="After the last lines, keep printing new ones (Ctrl-C to stop).")
@click.option("--stdout", "only_stdout", is_flag=True, help="Only the agent's stdout (lines unmarked).")
@click.option("--stderr", "only_stderr", is_flag=True, help="Only the agent's stderr (lines unmarked).")
@json_stream_option
@pass_app
def logs(
    app: AppContext, name: str, lines: int, all_lines: bool, follow: bool, only_stdout: bool, only_stderr: bool
) -> None:
    """Print an agent's output: both streams, each line marked out | or err |.

    With --json: one document {"agent", "stdout", "stderr"} (or {"agent", "stream", "lines"} for one
    stream); with -f, one object per line {"agent", "stream", "lines"}.
    """
    if only_stdout and only_stderr:
        only_stdout = only_stderr = False  # both named: both shown
    streams = ["stdout"] if only_stdout else ["stderr"] if only_stderr else ["stdout", "stderr"]
    marked = len(streams) > 1
    count = ALL_LINES if all_lines else lines
    if follow:
        _follow(app, name, streams, count, marked)
        return
    tails = {s: app.call("agent.logs", {"name": name, "stream": s, "lines": count}).get("lines") or [] for s in streams}
    if app.json:
        doc: dict[str, Any] = {"agent": name}
        if marked:
            doc.update(tails)
        else:
            doc.update(stream=streams[0], lines=tails[streams[0]])
        print_json(doc)
        return
    for stream in streams:
        _echo(stream, tails[stream], marked)
    if not any(tails.values()) and count > 0:
        hint = _never_ran_hint(app, name)
        if hint:
            click.echo(hint, err=True)


def _follow(app: AppContext, name: str, streams: list[str], count: int, marked: bool) -> None:
    opened: list[tuple[str, Stream]] = []
    try:
        for stream in streams:
            params = {"name": name, "stream": stream, "lines": count, "follow": True}
            opened.append((stream, app.client().stream("agent.logs", params, "log")))
        shown = False
        for stream, sub in opened:
            first = sub.result if isinstance(sub.result, dict) else {}
            tail = first.get("lines") or []
            shown = shown or bool(tail)
            if app.json:
                print_json_line({"agent": name, "stream": stream, "lines": tail})
            else:
                _echo(stream, tail, marked)
        if not shown and not app.json:
            hint = _never_ran_hint(app, name)
            if hint:
                click.echo(f"{hint}; waiting for output (Ctrl-C to stop)", err=True)
        _pump(app, name, opened, marked)
    finally:
        for _, sub in opened:
            sub.close()


_END = object()


def _pump(app: AppContext, name: str, opened: list[tuple[str, Stream]], marked: bool) -> None:
    """Print notifications of every stream as they come; return when the daemon closed all of them."""
    import queue
    import threading

    inbox: queue.Queue[Any] = queue.Queue()

    def reader(stream: str, sub: Stream) -> None:
        try:
            for note in sub:
                inbox.put((stream, note))
        except Exception as exc:  # a dropped connection ends this stream; the command reports it
            inbox.put(exc)
        finally:
            inbox.put(_END)

    threads = [threading.Thread(target=reader, args=o, daemon=True, name=f"logs-{o[0]}") for o in opened]
    for thread in threads:
        thread.start()
    open_streams = len(threads)
    while open_streams:
        try:
            item = inbox.get(timeout=0.5)  # a timeout keeps the main thread responsive to Ctrl-C
        except queue.Empty:
            continue
        if item is _END:
            open_streams -= 1
        elif isinstance(item, BaseException):
            raise item
        else:
            stream, note = item
            if app.json:
                print_json_line({k: v for k, v in note.items() if k != "subscription"})
            else:
                _echo(stream, note.get("lines"), marked)
