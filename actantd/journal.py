"""Operational history in ``{home}/journal.sqlite``.

Every transition, mutating RPC, config change, one-shot execution and daemon start/stop becomes one row.
The journal is *history, not state*: instances never depend on it. That decides every failure policy here:

- A journal that cannot be read at open (not a database, corrupt) is moved aside as
  ``journal.sqlite.corrupt-<ts>`` and a fresh one is started; the same happens if corruption surfaces later.
- A write that fails (disk full, I/O error, a foreign process holding the write lock) is logged and the
  entry dropped; ``dropped`` counts them. A history write must never block or fail a state transition.
- Reads (``query``) do raise, as :class:`~actantd.errors.InternalError`: an empty answer would be a lie.

Writes sit on the manager's path for every transition, so they must stay cheap (tens of µs): one reused
connection in autocommit mode, WAL with ``synchronous=NORMAL`` (a commit appends to the WAL without an
fsync; a power cut may lose the last few entries, never corrupt the file), one INSERT per entry.

Each row carries ``at`` (ISO-8601 UTC with milliseconds, what users read) and ``ts`` (the same instant as
integer epoch milliseconds, what range queries and pruning use), so the two can never disagree.
Retention is bounded by age and by row count, enforced at open, every ``prune_every`` records and at least
hourly.
"""

from __future__ import annotations

import logging
import math
import os
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

log = logging.getLogger(__name__)

Entry = dict[str, Any]
"""``{"id", "type", "agent", "at", ...data}``: the row as stored, and the event as published."""

SCHEMA_VERSION = 1
MAX_QUERY_LIMIT = 10_000
BUSY_TIMEOUT_MS = 250
"""Only this daemon writes; a foreign writer (someone in the sqlite3 shell) may hold the lock briefly.
Waiting longer would stall the event loop, so past this the entry is dropped instead."""
REOPEN_INTERVAL_SECONDS = 30.0
"""When the journal could not be opened at all (e.g. disk full at startup), how often to try again."""
PRUNE_INTERVAL_SECONDS = 3600.0
PROMPT_PREVIEW_CHARS = 200
MAX_PARAM_STRING = 1024
"""Command params are audited, not archived: long strings (prompts) are cut so rows stay small."""
REDACTED = "***"

_SECRET_KEY = re.compile(r"token|secret|password|passwd|api[_-]?key|auth|credential", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"^(-{0,2}[A-Za-z_][A-Za-z0-9_.-]*)=")
_RESERVED = frozenset({"id", "type", "agent", "at"})
_CORRUPTION_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    ts    INTEGER NOT NULL,
    at    TEXT    NOT NULL,
    type  TEXT    NOT NULL,
    agent TEXT,
    data  TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_ts ON entries (ts);
CREATE INDEX IF NOT EXISTS entries_agent_ts ON entries (agent, ts);
CREATE INDEX IF NOT EXISTS entries_type_ts ON entries (type, ts);
"""
_INSERT = "INSERT INTO entries (ts, at, type, agent, data) VALUES (?, ?, ?, ?, ?)"

_encoder = msgspec.json.Encoder(enc_hook=str)
"""``enc_hook=str``: an unexpected value type (a Path, an exception) is recorded as text, never dropped."""
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


def _bound_ms(value: str | float) -> int:
    """The first whole millisecond at or after ``value``: ``ts >= bound`` ⇔ the entry is at/after ``value``."""
    return -(-to_epoch_us(value) // 1000)


# ---------------------------------------------------------------------------------------------------------
# Redaction


def redact(value: Any) -> Any:
    """A copy of ``value`` with secrets replaced by ``"***"`` and long strings cut, for the audit trail.

    A mapping value is redacted when its key looks secret (token, secret, password, api key, auth,
    credential...), whatever it holds, so ``env``/``headers`` maps are covered by the same rule; in lists,
    ``NAME=value`` and ``--name=value`` strings with a secret-looking name keep the name and lose the value.
    """
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_item(v) for v in value]
    if isinstance(value, str) and len(value) > MAX_PARAM_STRING:
        return value[:MAX_PARAM_STRING] + f"…[{len(value) - MAX_PARAM_STRING} more chars]"
    return value


def _redact_item(value: Any) -> Any:
    if isinstance(value, str):
        match = _ASSIGNMENT.match(value)
        if match is not None and _SECRET_KEY.search(match.group(1)):
            return match.group(0) + REDACTED
    return redact(value)


# ---------------------------------------------------------------------------------------------------------
# The journal


def _is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _CORRUPTION_CODES


class _Unusable(Exception):
    """The file opened but is not a journal this code can use (corrupt, or a newer schema)."""


class Journal:
    """The history store. Single-threaded by design: the daemon's event loop owns the one connection."""

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
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_age_days = max_age_days
        self.prune_every = prune_every
        self.dropped = 0
        """Entries lost to write failures since open (daemon.status shows it)."""
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._failing = False
        self._reopen_at = 0.0
        self._since_prune = 0
        self._next_prune_at = 0.0
        self._closed = False
        self._recovering = False
        self._open()

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the file could not be opened; records are then dropped and counted."""
        return self._conn is not None

    def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("PRAGMA optimize")
        except sqlite3.Error:
            pass
        try:
            conn.close()
        except sqlite3.Error as exc:
            log.warning("closing journal %s: %s", self.path, exc)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        """Open (or create) the file; on corruption move it aside and start fresh; on other errors wait."""
        for attempt in range(2):
            try:
                self._conn = self._connect()
            except (_Unusable, sqlite3.DatabaseError) as exc:
                if attempt == 0 and (isinstance(exc, _Unusable) or _is_corruption(exc)):
                    self._move_aside(str(exc))
                    continue
                self._unavailable(exc)
                return
            except OSError as exc:
                self._unavailable(exc)
                return
            break
        self.prune()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so each INSERT is its own (WAL-cheap) transaction and a failed one
        # never leaves a transaction open behind it.
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("journal %s: WAL mode refused (got %s); continuing", self.path, mode)
            conn.execute("PRAGMA synchronous = NORMAL")
            # History is written far more than read: a small page cache keeps the daemon's RSS flat as the
            # journal grows (the default is 2 MiB), and temp b-trees of queries stay in files, not memory.
            conn.execute("PRAGMA cache_size = -256")
            conn.execute("PRAGMA temp_store = FILE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _Unusable(f"schema version {version} is newer than {SCHEMA_VERSION}")
            conn.executescript(_SCHEMA)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("SELECT max(id) FROM entries").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _unavailable(self, exc: BaseException) -> None:
        self._conn = None
        self._reopen_at = time.monotonic() + REOPEN_INTERVAL_SECONDS
        log.warning(
            "journal %s unavailable (%s); history is dropped until it can be opened (retry in %.0fs)",
            self.path,
            exc,
            REOPEN_INTERVAL_SECONDS,
        )

    def _move_aside(self, why: str) -> None:
        """Rename the file and its -wal/-shm away (a stale WAL must never be replayed into a fresh file)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while base.exists():
            n += 1
            base = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            try:
                os.rename(src, f"{base}{suffix}")
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not move %s aside: %s", src, exc)
        log.warning("journal %s is unusable (%s): moved aside to %s, starting a fresh one", self.path, why, base)

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None and not self._closed and time.monotonic() >= self._reopen_at:
            self._open()
        return self._conn

    def _on_error(self, exc: sqlite3.Error) -> None:
        """Corruption: move aside and reopen. Anything else: the file stays; the caller drops or raises."""
        if not _is_corruption(exc) or self._recovering:
            return
        self._recovering = True  # a fresh file failing again while we reopen must not recurse
        try:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._move_aside(str(exc))
            self._open()
        finally:
            self._recovering = False

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
        entry["id"] = self._insert(ms, at, type, agent, data)
        return entry

    def _insert(self, ms: int, at: str, type_: str, agent: str | None, data: dict[str, Any]) -> int | None:
        conn = self._connection()
        if conn is None:
            self.dropped += 1
            return None
        try:
            blob = _encoder.encode(data).decode()
            row_id = conn.execute(_INSERT, (ms, at, type_, agent, blob)).lastrowid
        except (sqlite3.Error, msgspec.EncodeError, UnicodeError, OverflowError) as exc:
            self._write_failed(exc)
            return None
        if self._failing:
            self._failing = False
            log.warning("journal %s writable again; %d entries dropped so far", self.path, self.dropped)
        self._since_prune += 1
        if self._since_prune >= self.prune_every or time.monotonic() >= self._next_prune_at:
            self.prune()
        return row_id

    def _write_failed(self, exc: Exception) -> None:
        self.dropped += 1
        if not self._failing:
            # Log the transition into failure, not every dropped entry: a full disk would flood the log.
            log.warning("journal write to %s failed (%s); dropping entries until it recovers", self.path, exc)
            self._failing = True
        else:
            log.debug("journal write failed again (%s); %d dropped", exc, self.dropped)
        if isinstance(exc, sqlite3.Error):
            self._on_error(exc)

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

        conn = self._connection()
        if conn is None:
            raise InternalError("the journal is unavailable", path=str(self.path))
        try:
            rows = conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            self._on_error(exc)
            raise InternalError(f"reading the journal failed: {exc}", path=str(self.path)) from exc
        return [{"id": i, "type": t, "agent": a, "at": at, **_decoder.decode(d)} for i, t, a, at, d in rows]
