"""``actantctl top``: a live view of every agent, like ``pm2 monit`` or ``top``.

What changes is pushed, not polled: an event subscription (its own connection, read by a thread) updates an
agent's status and latest event the moment the daemon publishes them. Only the figures no event carries
(cpu, memory, uptime) come from one ``agent.list`` every ``--interval`` seconds, which is one request for
all agents, answered from the daemon's cached sampler.

``rich`` draws the screen and is imported here only, so no other command pays for it at start-up.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any

import click

from actantctl.client import Stream
from actantctl.context import AppContext, pass_app
from actantctl.output import human_duration, local_time, text
from actantctl.views import cpu, event_summary, memory, uptime

if TYPE_CHECKING:
    from rich.console import RenderableType

STATUS_STYLES = {
    "Running": "green",
    "Starting": "cyan",
    "Stopping": "yellow",
    "Restarting": "yellow",
    "Crashed": "bold red",
    "Failed": "bold red",
    "Stopped": "dim",
    "Ready": "dim",
}


class Board:
    """The state on screen: agents by name and the latest event of each; pure, so it is tested alone."""

    def __init__(self) -> None:
        self.agents: dict[str, dict[str, Any]] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.updated = 0.0
        self.events_seen = 0

    def replace(self, agents: list[dict[str, Any]]) -> None:
        self.agents = {a["name"]: a for a in agents if isinstance(a, dict) and isinstance(a.get("name"), str)}
        self.updated = time.time()

    def remember(self, event: dict[str, Any]) -> str | None:
        """Keep ``event`` as its agent's latest; the agent's name, or None for an event of no agent."""
        name = event.get("agent")
        if not isinstance(name, str):
            return None
        self.latest[name] = event
        return name

    def apply(self, event: dict[str, Any]) -> bool:
        """Fold one live event in; True when the screen should change. A transition moves the status at once."""
        name = self.remember(event)
        if name is None:
            return False
        self.events_seen += 1
        agent = self.agents.get(name)
        if agent is not None and event.get("type") == "transition" and isinstance(event.get("to"), str):
            agent["status"] = event["to"]
            if event.get("reason"):
                agent["reason"] = event["reason"]
            if event["to"] not in ("Starting", "Running", "Stopping"):
                agent["live"] = None
                agent["pid"] = None
        return True

    def rows(self) -> list[list[str]]:
        out = []
        for name in sorted(self.agents):
            a = self.agents[name]
            latest = self.latest.get(name)
            last = f"{local_time(latest.get('at'))[11:]} {event_summary(latest)}" if latest else "-"
            out.append(
                [name, text(a.get("status")), text(a.get("backend")), text(a.get("pid")),
                 human_duration(uptime(a)), cpu(a), memory(a), text(a.get("restartCount", 0)), last]
            )  # fmt: skip
        return out


BACKLOG = 200
"""Journal events read at start to fill in each agent's latest event."""
COLUMNS = ("NAME", "STATUS", "BACKEND", "PID", "UPTIME", "CPU", "MEM", "RESTARTS", "LATEST EVENT")


def render(board: Board, socket: str, interval: float) -> RenderableType:
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"actant · {len(board.agents)} agents · {socket}",
        caption=f"events live · figures every {interval:g}s · Ctrl-C to quit",
        expand=True,
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for column in COLUMNS:
        last = column == "LATEST EVENT"
        table.add_column(
            column, no_wrap=True, overflow="ellipsis", ratio=1 if last else None, min_width=12 if last else None
        )
    for row in board.rows():
        table.add_row(*row[:1], f"[{STATUS_STYLES.get(row[1], '')}]{row[1]}[/]", *row[2:])
    if not board.agents:
        table.add_row("no agents", *[""] * (len(COLUMNS) - 1))
    return table


@click.command()
@click.option(
    "-n", "--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True,
    help="Seconds between refreshes of cpu, memory and uptime (status and events are live).",
)  # fmt: skip
@click.option("--once", is_flag=True, help="Draw one screen and exit (for scripts and bug reports).")
@pass_app
def top(app: AppContext, interval: float, once: bool) -> None:
    """A live view of all agents: status, cpu, memory, restarts and each one's latest event."""
    from rich.console import Console
    from rich.live import Live

    board = Board()
    board.replace(app.call("agent.list", {"live": True}).get("agents") or [])
    for event in app.call("events.query", {"limit": BACKLOG}).get("events") or []:
        board.remember(event)  # each agent's latest event so far; the statuses are agent.list's, newer
    console = Console()
    if once:
        console.print(render(board, str(app.socket), interval))
        return
    inbox: queue.Queue[Any] = queue.Queue()
    stream = app.client().stream("events.subscribe", {}, "event")
    reader = threading.Thread(target=_read, args=(stream, inbox), daemon=True, name="top-events")
    reader.start()
    try:
        with Live(render(board, str(app.socket), interval), console=console, screen=False,
                  auto_refresh=False, transient=False) as live:  # fmt: skip
            next_poll = time.monotonic() + interval
            while True:
                timeout = max(0.0, next_poll - time.monotonic())
                changed = False
                try:
                    item = inbox.get(timeout=min(timeout, 0.5))
                except queue.Empty:
                    item = None
                if isinstance(item, BaseException):
                    raise item
                if item is _END:
                    raise click.ClickException("actantd closed the connection (did it stop?)")
                if isinstance(item, dict):
                    changed = board.apply(item)
                    if item.get("type") == "transition" and item.get("to") == "Running":
                        next_poll = time.monotonic()  # its new pid and figures, now rather than next round
                    while not inbox.empty():  # a burst (a crash loop) is drawn once
                        more = inbox.get_nowait()
                        if isinstance(more, dict):
                            changed = board.apply(more) or changed
                if time.monotonic() >= next_poll:
                    board.replace(app.call("agent.list", {"live": True}).get("agents") or [])
                    next_poll = time.monotonic() + interval
                    changed = True
                if changed:
                    live.update(render(board, str(app.socket), interval), refresh=True)
    finally:
        stream.close()


_END = object()


def _read(stream: Stream, inbox: queue.Queue[Any]) -> None:
    try:
        for event in stream:
            inbox.put(event)
    except Exception as exc:
        inbox.put(exc)
    finally:
        inbox.put(_END)
