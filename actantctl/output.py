"""How results reach the terminal: JSON documents, aligned tables, human units, and errors with exit codes.

Every command prints through here so that ``--json`` means the same thing everywhere and the exit status
of a failure depends only on what failed, never on which command noticed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

import click

from actantctl.client import ClientError, DaemonNotRunning
from actantctl.indented_json import dumps_indented
from actantd.errors import ActantError

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2  # click's own code for bad arguments
EXIT_NOT_RUNNING: Final = 3
EXIT_NOT_FOUND: Final = 4
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, what shells report for a Ctrl-C

NOT_FOUND_CODES: Final = frozenset({"AGENT_NOT_FOUND", "TEMPLATE_NOT_FOUND"})
NONE: Final = "-"


# -- JSON ---------------------------------------------------------------------------------------------------


def print_json(doc: Any) -> None:
    """One indented document (``json.dumps(doc, indent=2, ensure_ascii=False)``): the whole stdout of a ``--json``
    command."""
    click.echo(dumps_indented(doc))


def print_json_line(doc: Any) -> None:
    """One compact object per line, for following streams; flushed so pipes see it at once."""
    click.echo(json.dumps(doc, separators=(",", ":"), ensure_ascii=False))
    sys.stdout.flush()


# -- text layout --------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last column is not padded."""
    all_rows = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(headers))]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def key_values(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    width = max(len(k) for k, _ in pairs) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {v}".rstrip() for k, v in pairs)


def text(value: Any) -> str:
    """A JSON scalar as a person would write it; lists joined, objects as compact JSON."""
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(str(v) for v in value) if value else NONE
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)
    return str(value)


def header(key: str) -> str:
    """``launchMode`` → ``LAUNCH MODE``: column titles for keys the daemon adds per kind."""
    out = "".join(f" {c}" if c.isupper() else c for c in key)
    return out.upper().strip()


# -- units --------------------------------------------------------------------------------------------------


def human_bytes(n: float | None) -> str:
    if n is None:
        return NONE
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    """Two most significant units: ``3d 4h``, ``5m 2s``, ``12s``."""
    if seconds is None:
        return NONE
    total = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2]) if parts else "0s"


def parse_time(iso: Any) -> datetime | None:
    if not isinstance(iso, str) or not iso:
        return None
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None


def seconds_since(iso: Any) -> float | None:
    when = parse_time(iso)
    return None if when is None else time.time() - when.timestamp()


def local_time(iso: Any) -> str:
    """Timestamps are ISO-8601 UTC on the wire; people read them in their own time zone."""
    when = parse_time(iso)
    if when is None:
        return text(iso)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


# -- errors -------------------------------------------------------------------------------------------------


def exit_code_for(exc: ActantError | ClientError) -> int:
    if isinstance(exc, DaemonNotRunning):
        return EXIT_NOT_RUNNING
    code = exc.error_code
    if code in NOT_FOUND_CODES or (code.endswith("_NOT_FOUND") and code != "METHOD_NOT_FOUND"):
        return EXIT_NOT_FOUND
    return EXIT_FAILURE


def error_document(exc: ActantError | ClientError) -> dict[str, Any]:
    code = exc.code if isinstance(exc, ActantError) else None
    return {"error": {"code": code, "message": exc.message, "errorCode": exc.error_code, "context": exc.context}}


def report_error(exc: ActantError | ClientError, json_mode: bool) -> int:
    """Print the failure (stderr line, plus the JSON document on stdout with ``--json``); return the exit code."""
    if json_mode:
        print_json(error_document(exc))
    fail(exc.message)
    for line in stream_tails(exc.context):
        click.echo(line, err=True)
    errors = exc.context.get("errors")
    if isinstance(errors, list):
        for line in errors:
            click.echo(f"  {line}", err=True)
    return exit_code_for(exc)


def stream_tails(context: dict[str, Any]) -> list[str]:
    """The last log lines a failed start carries, stderr's or (when stderr was empty) stdout's, indented."""
    out: list[str] = []
    for key, stream in (("stderrTail", "stderr"), ("stdoutTail", "stdout")):
        tail = context.get(key)
        if isinstance(tail, list) and tail:
            out.append(f"  last lines of {stream}:")
            out.extend(f"    {str(line).rstrip()}" for line in tail)
    return out


def fail(message: str) -> None:
    """The one-line reason on stderr; continuation lines of a multi-line message are indented."""
    first, *rest = str(message).splitlines() or [""]
    click.echo(f"error: {first}", err=True)
    for line in rest:
        click.echo(f"  {line}", err=True)


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def progress(message: str) -> None:
    """Transient status for people watching a terminal; silent when stderr is a pipe or file."""
    if sys.stderr.isatty():
        click.echo(message, err=True)


class Failure(Exception):
    """A command that ran but did not succeed (invalid file, agent exited non-zero): no JSON error document,
    the command already printed its result; only the stderr line and the exit status remain."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
