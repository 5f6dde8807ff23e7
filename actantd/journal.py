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
import collections
import logging
import math
import os
import re
import sqlite3
import threading
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
WRITE_BATCH = 2000
"""Rows per transaction in writer mode: big enough to amortize the commit, small enough that a query's flush
or the lock a batch holds never lasts more than a few milliseconds."""
BUSY_RETRY_SECONDS = 5.0
MAX_PENDING = 200_000
"""Queued entries beyond this are dropped (and counted): history must never grow the daemon without bound."""
PROMPT_PREVIEW_CHARS = 200
MAX_PARAM_STRING = 1024
"""Command params are audited, not archived: long strings (prompts) are cut so rows stay small."""
REDACTED = "***"

_SECRET_KEY = re.compile(r"token|secret|password|passwd|api[_-]?key|auth|credential", re.IGNORECASE)
_ENV_KEYS = frozenset({"env", "environment", "envvars", "envoverrides"})
"""Keys holding environment variables: their values are never journaled, whatever the variable is called
(``OPENAI_KEY``, ``GH_PAT``... do not look secret to any name rule, and are)."""
FILE_MODE = 0o600
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
_INSERT_ID = "INSERT INTO entries (id, ts, at, type, agent, data) VALUES (?, ?, ?, ?, ?, ?)"

_Row = tuple[int, int, str, str, str | None, str]
"""``(id, ts, at, type, agent, data)`` as queued for the writer thread."""

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


def _is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _CORRUPTION_CODES


class _Unusable(Exception):
    """The file opened but is not a journal this code can use (corrupt, or a newer schema)."""


class Journal:
    """The history store. ``record`` is called from the event loop only; with the writer started, the
    connection is used by the writer thread and by queries, each under ``_db_lock``."""

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
        self._identity: tuple[int, int] | None = None
        """(st_dev, st_ino) of the file opened, to notice it being deleted or replaced."""
        self._db_lock = threading.RLock()
        self._pending: collections.deque[_Row] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._writing = 0
        """Rows the writer thread has taken but not finished (for ``flush``)."""
        self._writer: threading.Thread | None = None
        self._stopping = False
        self._next_id = 1
        self._open()

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the file could not be opened; records are then dropped and counted."""
        return self._conn is not None

    def close(self) -> None:
        self._stop_writer()
        with self._db_lock:
            self._close_locked()

    def _close_locked(self) -> None:
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
        self._private_files()
        # isolation_level=None: autocommit, so each INSERT is its own (WAL-cheap) transaction and a failed one
        # never leaves a transaction open behind it.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)  # see _db_lock
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
            top = conn.execute("SELECT max(id) FROM entries").fetchone()[0] or 0
            seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()
            st = os.stat(self.path)
        except BaseException:
            conn.close()
            raise
        self._identity = (st.st_dev, st.st_ino)
        with self._cond:  # never lower it: ids already handed to queued entries must stay unique
            self._next_id = max(self._next_id, int(top) + 1, (int(seq[0]) if seq else 0) + 1)
        return conn

    def _private_files(self) -> None:
        """The journal (and the -wal/-shm SQLite derives from it, with its mode) is created 0600 and an older
        one tightened: it holds commands and their parameters."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
        for suffix in ("-wal", "-shm"):
            try:
                os.chmod(f"{self.path}{suffix}", FILE_MODE)
            except OSError:
                pass

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
        if self._conn is not None and not self._same_file():
            log.warning("journal %s was deleted or replaced; opening a fresh one", self.path)
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except sqlite3.Error:
                pass
            self._reopen_at = 0.0
        if self._conn is None and not self._closed and time.monotonic() >= self._reopen_at:
            self._open()
        return self._conn

    def _same_file(self) -> bool:
        """One stat of the path: is it still the file we opened? (Else our writes would go to an unlinked
        inode: silently lost history, and disk space nobody can see.)"""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._identity

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
        if self._writer is not None:
            entry["id"] = self._enqueue(ms, at, type, agent, data)
        else:
            with self._db_lock:
                entry["id"] = self._insert(ms, at, type, agent, data)
        return entry

    # -- writer thread ----------------------------------------------------------------------------------

    def start_writer(self) -> None:
        """Move inserts to a writer thread, in batches (see the module docstring). Idempotent."""
        if self._writer is not None or self._closed:
            return
        self._stopping = False
        self._writer = threading.Thread(target=self._write_loop, name="journal-writer", daemon=True)
        self._writer.start()

    def _enqueue(self, ms: int, at: str, type_: str, agent: str | None, data: dict[str, Any]) -> int | None:
        if self._closed:
            self.dropped += 1
            return None
        try:
            blob = _encoder.encode(data).decode()
        except (msgspec.EncodeError, UnicodeError, OverflowError) as exc:
            self._write_failed(exc)
            return None
        with self._cond:
            if len(self._pending) >= MAX_PENDING:
                self.dropped += 1
                if not self._failing:
                    log.warning("journal queue full (%d entries); dropping entries until it drains", MAX_PENDING)
                    self._failing = True
                return None
            row_id = self._next_id
            self._next_id += 1
            self._pending.append((row_id, ms, at, type_, agent, blob))
            if len(self._pending) == 1:
                self._cond.notify()
        return row_id

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:
                    return
                batch = [self._pending.popleft() for _ in range(min(WRITE_BATCH, len(self._pending)))]
                self._writing = len(batch)
            try:
                with self._db_lock:
                    self._insert_batch(batch)
            except Exception:  # never let the thread die: history would then silently stop
                log.exception("journal writer failed on a batch of %d", len(batch))
                self.dropped += len(batch)
            finally:
                with self._cond:
                    self._writing = 0
                    self._cond.notify_all()

    def _insert_batch(self, batch: list[_Row]) -> None:
        conn = self._connection()
        if conn is None:
            self.dropped += len(batch)
            return
        try:
            self._commit_batch(conn, batch)
        except sqlite3.IntegrityError:
            # Ids the queue handed out collide with rows already there (the file was replaced by one with a
            # higher sequence): keep the entries, let SQLite number them.
            try:
                conn.executemany(_INSERT, [row[1:] for row in batch])
            except sqlite3.Error as exc:
                self.dropped += len(batch) - 1
                self._write_failed(exc)
                return
        except sqlite3.Error as exc:
            self.dropped += len(batch) - 1  # _write_failed counts one
            self._write_failed(exc)
            return
        if self._failing:
            self._failing = False
            log.warning("journal %s writable again; %d entries dropped so far", self.path, self.dropped)
        self._since_prune += len(batch)
        if self._since_prune >= self.prune_every or time.monotonic() >= self._next_prune_at:
            self.prune()

    @staticmethod
    def _commit_batch(conn: sqlite3.Connection, batch: list[_Row]) -> None:
        """One transaction; a foreign lock holder is waited out here, in the writer thread, for up to
        ``BUSY_RETRY_SECONDS`` (the loop is not waiting), before the batch is given up."""
        deadline = time.monotonic() + BUSY_RETRY_SECONDS
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT_ID, batch)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return
            except sqlite3.OperationalError as exc:
                code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
                if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() >= deadline:
                    raise

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued entry is written (or dropped); True unless ``timeout`` ran out."""
        if self._writer is None:
            return True
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._writing, timeout)

    def _stop_writer(self) -> None:
        writer = self._writer
        if writer is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        writer.join()
        self._writer = None

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
