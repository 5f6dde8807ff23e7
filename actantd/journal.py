"""Operational history in ``{home}/journal.sqlite``.

Every transition, mutating RPC, config change, one-shot execution and daemon start/stop becomes one row.
The journal is *history, not state*: instances never depend on it. That decides every failure policy here:

- A journal that cannot be read at open (not a database, corrupt) is moved aside as
  ``journal.sqlite.corrupt-<ts>`` and a fresh one is started; the same happens if corruption surfaces later.
- A write that fails (disk full, I/O error, a foreign process holding the write lock) is logged and the
  entry dropped; ``dropped`` counts them. A history write must never block or fail a state transition.
- Reads (``query``) do raise, as :class:`~actantd.errors.InternalError`: an empty answer would be a lie.

Writes sit on the manager's path for every transition, so they must stay cheap: one reused connection, WAL
with ``synchronous=NORMAL`` (a commit appends to the WAL without an fsync; a power cut may lose the last few
entries, never corrupt the file). The daemon calls :meth:`Journal.start_writer`: from then on ``record`` only
encodes the entry, gives it its id and queues it (about a microsecond on the event loop), and one writer thread
inserts the queue in batches (one transaction per batch of up to ``WRITE_BATCH`` rows), so a client that makes
the daemon journal 100,000 entries costs the loop microseconds per entry, never a synchronous insert each.
Queries flush the queue first (read-your-writes) and run in a thread (:meth:`Journal.aquery`). Without the
writer (tests, tools) every ``record`` is one autocommit INSERT, as before.

A journal file deleted or replaced under the daemon (``rm journal.sqlite``) is noticed before the next write
(the path's inode is compared with the one opened) and a fresh file is opened, instead of writing on into an
unlinked inode nobody can read.

Each row carries ``at`` (ISO-8601 UTC with milliseconds, what users read) and ``ts`` (the same instant as
integer epoch milliseconds, what range queries and pruning use), so the two can never disagree.
Retention is bounded by age and by row count, enforced at open, every ``prune_every`` records and at least
hourly.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from actantd.errors import InternalError, InvalidParams
from actantd.events import TypeFilter
from actantd.journal_writer import (
    BUSY_RETRY_SECONDS,
    BUSY_TIMEOUT_MS,
    FILE_MODE,
    MAX_PENDING,
    REOPEN_INTERVAL_SECONDS,
    SCHEMA_VERSION,
    WRITE_BATCH,
    JournalWriter,
)

__all__ = [
    "BUSY_RETRY_SECONDS",
    "BUSY_TIMEOUT_MS",
    "FILE_MODE",
    "MAX_PARAM_STRING",
    "MAX_PENDING",
    "MAX_QUERY_LIMIT",
    "REDACTED",
    "REOPEN_INTERVAL_SECONDS",
    "SCHEMA_VERSION",
    "WRITE_BATCH",
    "Entry",
    "Journal",
    "iso_ms",
    "redact",
    "to_epoch_us",
]

log = logging.getLogger(__name__)

Entry = dict[str, Any]
"""``{"id", "type", "agent", "at", ...data}``: the row as stored, and the event as published."""

MAX_QUERY_LIMIT = 10_000
PRUNE_INTERVAL_SECONDS = 3600.0
PROMPT_PREVIEW_CHARS = 200
MAX_PARAM_STRING = 1024
"""Command params are audited, not archived: long strings (prompts) are cut so rows stay small."""
REDACTED = "***"

_SECRET_KEY = re.compile(r"token|secret|password|passwd|api[_-]?key|auth|credential", re.IGNORECASE)
_ENV_KEYS = frozenset({"env", "environment", "envvars", "envoverrides"})
"""Keys holding environment variables: their values are never journaled, whatever the variable is called
(``OPENAI_KEY``, ``GH_PAT``... do not look secret to any name rule, and are)."""
_ASSIGNMENT = re.compile(r"^(-{0,2}[A-Za-z_][A-Za-z0-9_.-]*)=")
_RESERVED = frozenset({"id", "type", "agent", "at"})

_decoder = msgspec.json.Decoder(dict[str, Any])


# ---------------------------------------------------------------------------------------------------------
# Time


def iso_ms(ms: int) -> str:
    """Epoch milliseconds → ``2025-01-31T12:00:00.123Z``."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def to_epoch_us(value: str | float) -> int:
    """An ISO-8601 string (naive means UTC) or epoch seconds → epoch microseconds; InvalidParams otherwise."""
    if isinstance(value, bool):
        raise InvalidParams(f"not a time: {value!r}", value=value)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidParams(f"not a time: {value!r}", value=value)
        return round(value * 1_000_000)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidParams(f"not an ISO-8601 time: {value!r}", value=value) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise InvalidParams(f"not a time: {value!r}", value=value)


_INT64 = 2**63


def _bound_ms(value: str | float) -> int:
    """The first whole millisecond at or after ``value``: ``ts >= bound`` ⇔ the entry is at/after ``value``.

    Past SQLite's 64-bit integers (``since: 1e300``) it is InvalidParams, not an OverflowError in the query."""
    ms = -(-to_epoch_us(value) // 1000)
    if not -_INT64 <= ms < _INT64:
        raise InvalidParams(f"time out of range: {value!r}", value=value)
    return ms


# ---------------------------------------------------------------------------------------------------------
# Redaction


def redact(value: Any) -> Any:
    """A copy of ``value`` with secrets replaced by ``"***"`` and long strings cut, for the audit trail.

    A mapping value is redacted when its key looks secret (token, secret, password, api key, auth,
    credential...), whatever it holds; an ``env`` map keeps its variable names and loses every value, since
    no naming rule can tell ``OPENAI_KEY`` or ``GH_PAT`` from harmless settings; in lists, ``NAME=value`` and
    ``--name=value`` strings with a secret-looking name keep the name and lose the value.
    """
    if isinstance(value, dict):
        return {k: _redact_entry(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_item(v) for v in value]
    if isinstance(value, str) and len(value) > MAX_PARAM_STRING:
        return value[:MAX_PARAM_STRING] + f"…[{len(value) - MAX_PARAM_STRING} more chars]"
    return value


def _redact_entry(key: Any, value: Any) -> Any:
    if not isinstance(key, str):
        return redact(value)
    if key.lower() in _ENV_KEYS:
        return _env_names_only(value)
    if _SECRET_KEY.search(key):
        return REDACTED
    return redact(value)


def _env_names_only(value: Any) -> Any:
    """An env map (or ``NAME=value`` list) with every value replaced: the names say enough for an audit."""
    if isinstance(value, dict):
        return {str(k): REDACTED for k in value}
    if isinstance(value, list | tuple):
        return [f"{str(v).partition('=')[0]}={REDACTED}" if isinstance(v, str) else REDACTED for v in value]
    return REDACTED


def _redact_item(value: Any) -> Any:
    if isinstance(value, str):
        match = _ASSIGNMENT.match(value)
        if match is not None and _SECRET_KEY.search(match.group(1)):
            return match.group(0) + REDACTED
    return redact(value)


# ---------------------------------------------------------------------------------------------------------
# The journal


class Journal(JournalWriter):
    """The history store: what is recorded (``record`` and its typed forms, from the event loop only), what
    is kept (``prune``) and what is read (``query``). The file and the writer thread are
    :mod:`actantd.journal_writer`'s."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 100_000,
        max_age_days: float = 30,
        prune_every: int = 1000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """``clock`` returns epoch nanoseconds (``time.time_ns``); tests inject one to write the past."""
        if max_rows < 1 or max_age_days <= 0 or prune_every < 1:
            raise ValueError("max_rows, max_age_days and prune_every must be positive")
        super().__init__(path)
        self.max_rows = max_rows
        self.max_age_days = max_age_days
        self.prune_every = prune_every
        self._clock = clock
        self._since_prune = 0
        self._next_prune_at = 0.0
        self._open()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------------

    def record(self, type: str, agent: str | None = None, **data: Any) -> Entry:
        """Append one entry and return it as it will be published.

        Never raises for storage reasons: if the write fails the entry is still returned (with ``id`` None)
        so the caller can publish it, and ``dropped`` is incremented.
        """
        if "id" in data or "at" in data:
            raise ValueError("'id' and 'at' are set by the journal")
        ms = self._clock() // 1_000_000
        at = iso_ms(ms)
        entry: Entry = {"id": None, "type": type, "agent": agent, "at": at, **data}
        if self._writer is not None:
            entry["id"] = self._enqueue(ms, at, type, agent, data)
        else:
            with self._db_lock:
                entry["id"] = self._insert(ms, at, type, agent, data)
        return entry

    def transition(self, agent: str, from_: str | None, to: str, reason: str) -> Entry:
        return self.record(
            "transition", agent, **{"from": None if from_ is None else str(from_), "to": str(to), "reason": reason}
        )

    def command(
        self,
        method: str,
        params: Any,
        peer_uid: int | None,
        peer_pid: int | None,
        outcome: str,
        duration_ms: float,
        error: str | None = None,
    ) -> Entry:
        """Audit one mutating RPC; an ``agent.*`` call is filed under its ``name`` so per-agent history shows it."""
        name = params.get("name") if isinstance(params, dict) and method.startswith("agent.") else None
        return self.record(
            "command",
            name if isinstance(name, str) else None,
            method=method,
            params=redact(params),
            peerUid=peer_uid,
            peerPid=peer_pid,
            outcome=outcome,
            durationMs=round(duration_ms, 3),
            error=error,
        )

    def config_event(self, file: str | Path, ok: bool, message: str) -> Entry:
        return self.record("config", None, file=str(file), ok=ok, message=message)

    def execution(
        self,
        agent: str,
        prompt_preview: str,
        started_at: str | float,
        duration_ms: float,
        exit_code: int | None,
        output_bytes: int,
        cost_usd: float | None = None,
    ) -> Entry:
        """One ``agent run``; ``started_at`` as ISO text or epoch seconds; the prompt is cut to its preview."""
        if not isinstance(started_at, str):
            started_at = iso_ms(round(started_at * 1000))
        return self.record(
            "execution",
            agent,
            promptPreview=prompt_preview[:PROMPT_PREVIEW_CHARS],
            startedAt=started_at,
            durationMs=round(duration_ms, 3),
            exitCode=exit_code,
            outputBytes=output_bytes,
            costUsd=cost_usd,
        )

    def daemon_event(self, what: str, **data: Any) -> Entry:
        return self.record("daemon", None, what=what, **data)

    # -- retention ------------------------------------------------------------------------------------

    def _reset_prune_schedule(self) -> None:
        self._since_prune = 0
        self._next_prune_at = time.monotonic() + PRUNE_INTERVAL_SECONDS

    def prune(self) -> int:
        """Delete entries older than ``max_age_days`` and all but the newest ``max_rows``; returns how many.

        Both deletes are index range scans (``ts``, then the rowid), so the cost is proportional to what
        is deleted. Ids only grow, so ``id <= max(id) - max_rows`` keeps at most ``max_rows`` rows.
        """
        self._reset_prune_schedule()
        conn = self._connection()
        if conn is None:
            return 0
        cutoff = self._clock() // 1_000_000 - round(self.max_age_days * 86_400_000)
        try:
            deleted = conn.execute("DELETE FROM entries WHERE ts < ?", (cutoff,)).rowcount
            deleted += conn.execute(
                "DELETE FROM entries WHERE id <= (SELECT max(id) FROM entries) - ?", (self.max_rows,)
            ).rowcount
        except sqlite3.Error as exc:
            log.warning("pruning journal %s failed: %s", self.path, exc)
            self._on_error(exc)
            return 0
        return deleted

    # -- reading --------------------------------------------------------------------------------------

    def query(
        self,
        agent: str | None = None,
        types: str | Iterable[str] | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
        limit: int = 100,
        order: Literal["asc", "desc"] = "asc",
    ) -> list[Entry]:
        """Entries matching every given filter, ordered by time (then id, i.e. insertion order).

        ``since`` is inclusive and ``until`` exclusive (half-open, so consecutive windows never overlap);
        both accept ISO-8601 text or epoch seconds. ``types`` takes the same patterns as
        ``events.subscribe`` (``"config.*"``). With ``order="desc"`` and a limit, the newest entries come back.
        """
        if order not in ("asc", "desc"):
            raise InvalidParams(f"order must be 'asc' or 'desc', not {order!r}", order=order)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_QUERY_LIMIT:
            raise InvalidParams(f"limit must be an integer from 1 to {MAX_QUERY_LIMIT}", limit=limit)
        where: list[str] = []
        args: list[Any] = []
        if agent is not None:
            where.append("agent = ?")
            args.append(agent)
        type_filter = TypeFilter.of(types)
        if type_filter is not None:
            alternatives = [f"type IN ({', '.join('?' * len(type_filter.exact))})"] if type_filter.exact else []
            args.extend(sorted(type_filter.exact))
            for family in type_filter.families:
                # "x" itself, or the range ["x.", "x/"): every "x.<suffix>", and still an index range scan.
                alternatives.append("type = ? OR (type >= ? AND type < ?)")
                args.extend((family, family + ".", family + "/"))
            where.append("(" + " OR ".join(f"({a})" for a in alternatives) + ")")
        if since is not None:
            where.append("ts >= ?")
            args.append(_bound_ms(since))
        if until is not None:
            where.append("ts < ?")
            args.append(_bound_ms(until))
        sql = "SELECT id, type, agent, at, data FROM entries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        direction = "ASC" if order == "asc" else "DESC"
        sql += f" ORDER BY ts {direction}, id {direction} LIMIT ?"
        args.append(limit)

        self.flush()
        with self._db_lock:
            conn = self._connection()
            if conn is None:
                raise InternalError("the journal is unavailable", path=str(self.path))
            try:
                rows = conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                self._on_error(exc)
                raise InternalError(f"reading the journal failed: {exc}", path=str(self.path)) from exc
        return [{"id": i, "type": t, "agent": a, "at": at, **_decoder.decode(d)} for i, t, a, at, d in rows]

    async def aquery(self, **kwargs: Any) -> list[Entry]:
        """:meth:`query` in a worker thread, for the event loop (it waits for the writer's queue first)."""
        return await asyncio.to_thread(lambda: self.query(**kwargs))
