"""Result objects rendered for people: agent tables and status sheets, catalog listings, event lines.

Pure functions from protocol dicts to text, so each view is testable without a daemon and the command modules
stay wiring only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actantctl.output import (
    NONE,
    header,
    human_bytes,
    human_duration,
    key_values,
    local_time,
    seconds_since,
    table,
    text,
)
from actantd.instances.state import ACTIVE, STATUS_NAMES

RUNNING = frozenset(s.value for s in ACTIVE)
"""Statuses in which a process exists, so an uptime means something (a Restarting agent has none)."""

STATUSES = STATUS_NAMES
"""The state machine's statuses, for completion and case-insensitive ``--status``."""


# -- agents -------------------------------------------------------------------------------------------------


def uptime(record: dict[str, Any]) -> float | None:
    if record.get("status") not in RUNNING or record.get("pid") is None:
        return None
    live = record.get("live")
    if isinstance(live, dict) and isinstance(live.get("uptimeSeconds"), int | float):
        return float(live["uptimeSeconds"])
    return seconds_since(record.get("launchedAt"))


def cpu(record: dict[str, Any]) -> str:
    live = record.get("live")
    value = live.get("cpuPercent") if isinstance(live, dict) else None
    return f"{value:.1f}%" if isinstance(value, int | float) else NONE


def memory(record: dict[str, Any]) -> str:
    live = record.get("live")
    value = live.get("rssBytes") if isinstance(live, dict) else None
    return human_bytes(value) if isinstance(value, int | float) else NONE


def last_exit(value: Any) -> str:
    if not isinstance(value, dict):
        return NONE
    parts: list[str] = []
    if value.get("signal") is not None:
        parts.append(f"signal {_signal_name(value['signal'])}")
    elif value.get("code") is not None:
        parts.append(f"code {value['code']}")
    if value.get("at"):
        parts.append(f"at {local_time(value['at'])}")
    return " ".join(parts) or NONE


def _signal_name(sig: Any) -> str:
    import signal

    try:
        return f"{signal.Signals(int(sig)).name} ({int(sig)})"
    except (ValueError, TypeError):
        return str(sig)


AGENT_COLUMNS = ("NAME", "STATUS", "TEMPLATE", "BACKEND", "PID", "UPTIME", "CPU", "MEM", "RESTARTS")
WIDE_COLUMNS = (*AGENT_COLUMNS, "LAST EXIT", "REASON")


def agent_row(a: dict[str, Any], wide: bool = False) -> list[str]:
    running = a.get("status") in RUNNING
    row = [
        text(a.get("name")),
        text(a.get("status")),
        text(a.get("templateRef")),
        text(a.get("backend")),
        text(a.get("pid")) if running else NONE,
        human_duration(uptime(a)),
        cpu(a),
        memory(a),
        text(a.get("restartCount", 0)),
    ]
    if wide:
        row += [last_exit(a.get("lastExit")), text(a.get("reason"))]
    return row


def agent_table(agents: Sequence[dict[str, Any]], wide: bool = False) -> str:
    """One line per agent; ``wide`` adds the last exit and the reason of the current status."""
    return table(WIDE_COLUMNS if wide else AGENT_COLUMNS, [agent_row(a, wide) for a in agents])


def agent_details(record: dict[str, Any]) -> str:
    live = record.get("live") if isinstance(record.get("live"), dict) else None
    pairs = [
        ("name", text(record.get("name"))),
        ("status", text(record.get("status"))),
        ("reason", text(record.get("reason"))),
        ("template", text(record.get("templateRef"))),
        ("backend", text(record.get("backend"))),
        ("launch mode", text(record.get("launchMode"))),
        ("workspace", text(record.get("workspace") or record.get("workDir"))),
        ("workspace policy", text(record.get("workspacePolicy"))),
        ("logs", text(record.get("logDir"))),
        ("pid", text(record.get("pid"))),
        ("uptime", human_duration(uptime(record))),
        ("cpu", f"{live['cpuPercent']:.1f}%" if live and isinstance(live.get("cpuPercent"), int | float) else NONE),
        ("rss", human_bytes(live.get("rssBytes")) if live else NONE),
        ("children", text(live.get("children")) if live else NONE),
        ("restarts", text(record.get("restartCount", 0))),
        ("last exit", last_exit(record.get("lastExit"))),
        ("created", local_time(record.get("createdAt"))),
        ("launched", local_time(record.get("launchedAt"))),
        ("stopped", local_time(record.get("stoppedAt"))),
        ("id", text(record.get("instanceId"))),
    ]
    env = (record.get("overrides") or {}).get("env") if isinstance(record.get("overrides"), dict) else None
    if env:
        pairs.append(("env", ", ".join(f"{k}={v}" for k, v in sorted(env.items()))))
    return key_values(pairs)


# -- daemon -------------------------------------------------------------------------------------------------


def daemon_details(status: dict[str, Any]) -> str:
    instances = status.get("instances") or {}
    by_status = instances.get("byStatus") or {}
    counts = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()) if n)
    total = text(instances.get("total", 0))
    pairs = [
        ("version", text(status.get("version"))),
        ("pid", text(status.get("pid"))),
        ("uptime", human_duration(status.get("uptimeSeconds"))),
        ("home", text(status.get("home"))),
        ("configs", text(status.get("configs"))),
        ("socket", text(status.get("socket"))),
        ("connections", text(status.get("connections"))),
        ("instances", f"{total} ({counts})" if counts else total),
    ]
    errors = status.get("configErrors") or []
    pairs.append(("config errors", str(len(errors)) if errors else "none"))
    out = key_values(pairs)
    return out + "".join(f"\n  {e}" for e in errors)


# -- catalog (templates, skills, ...) -----------------------------------------------------------------------

_CATALOG_HIDDEN = frozenset({"name", "description", "file", "problems", "inForce"})


def _catalog_description(item: dict[str, Any]) -> str:
    problems = item.get("problems")
    if not isinstance(problems, list) or not problems:
        return text(item.get("description"))
    first = str(problems[0])
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    kept = "; the last good version is in force" if item.get("inForce") else ""
    return f"INVALID: {first}{more}{kept}"


def catalog_table(items: Sequence[dict[str, Any]]) -> str:
    """NAME, then whatever scalar columns this kind adds (backend, launchMode, ...), then DESCRIPTION.

    A config whose file is currently invalid is marked ``!`` and its description says why (first problem),
    with a closing line pointing at ``config validate`` for the full list.
    """
    extra: list[str] = []
    for item in items:
        for key, value in item.items():
            if key not in _CATALOG_HIDDEN and key not in extra and not isinstance(value, dict):
                extra.append(key)
    headers = ["NAME", *(header(k) for k in extra), "DESCRIPTION"]
    rows = [
        [
            text(i.get("name")) + (" !" if i.get("problems") else ""),
            *(text(i.get(k)) for k in extra),
            _catalog_description(i),
        ]
        for i in items
    ]
    out = table(headers, rows)
    broken = sum(1 for i in items if i.get("problems"))
    if broken:
        out += f"\n! {broken} invalid file{'s' if broken != 1 else ''}: `actantctl config validate` lists every error"
    return out


def item_details(item: dict[str, Any], file: Any) -> str:
    """Fields as ``key: value`` lines; Markdown ``content`` (skills, prompts, workflows) printed raw below."""
    pairs = [(k, text(v)) for k, v in item.items() if k != "content"]
    pairs.append(("file", text(file)))
    out = key_values(pairs)
    content = item.get("content")
    if isinstance(content, str) and content:
        out += "\n\n" + content.rstrip("\n")
    return out


# -- validation ---------------------------------------------------------------------------------------------


def validation_report(result: dict[str, Any], subject: str) -> str:
    """Findings one per line (they already name file and JSON path), then the verdict when it passed."""
    errors = result.get("errors") or []
    warnings = result.get("warnings") or []
    lines = [f"error: {e}" for e in errors] + [f"warning: {w}" for w in warnings]
    if result.get("valid"):
        lines.append(f"{subject} is valid" + (f" ({len(warnings)} warning(s))" if warnings else ""))
    return "\n".join(lines)


def invalid_reason(result: dict[str, Any], subject: str) -> str | None:
    """The one-line failure for stderr, or None when valid."""
    if result.get("valid"):
        return None
    return f"{subject} is invalid ({len(result.get('errors') or [])} error(s))"


# -- events -------------------------------------------------------------------------------------------------

_EVENT_ENVELOPE = frozenset({"id", "type", "agent", "at", "subscription"})


def milliseconds(value: Any) -> str:
    """``0.4 ms``, ``12 ms``, ``1.02 s``: precision where it is readable, not what the journal stores."""
    if not isinstance(value, int | float):
        return text(value)
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def event_summary(event: dict[str, Any]) -> str:
    """The part of an event that differs by type, on one line."""
    kind = event.get("type")
    if kind == "transition" or ("from" in event and "to" in event):
        out = f"{text(event.get('from'))} → {text(event.get('to'))}"
        return f"{out} ({event['reason']})" if event.get("reason") else out
    if kind == "command":
        parts = [text(event.get("method")), text(event.get("outcome"))]
        if event.get("durationMs") is not None:
            parts.append(milliseconds(event["durationMs"]))
        return "  ".join(parts)
    if kind == "execution":
        parts = [f"exit {text(event.get('exitCode'))}"]
        if event.get("durationMs") is not None:
            parts.append(milliseconds(event["durationMs"]))
        if event.get("promptPreview"):
            parts.append(repr(event["promptPreview"]))
        return "  ".join(parts)
    return " ".join(f"{k}={text(v)}" for k, v in event.items() if k not in _EVENT_ENVELOPE)


def event_line(event: dict[str, Any]) -> str:
    """A followed event: fixed-width columns, since a stream cannot be aligned after the fact."""
    agent = text(event.get("agent"))
    return f"{local_time(event.get('at'))}  {agent:<16} {text(event.get('type')):<12} {event_summary(event)}".rstrip()


def event_table(events: Sequence[dict[str, Any]]) -> str:
    rows = [(local_time(e.get("at")), text(e.get("agent")), text(e.get("type")), event_summary(e)) for e in events]
    return table(("TIME", "AGENT", "TYPE", "DETAILS"), rows)
