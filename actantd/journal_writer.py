"""The journal's storage: the SQLite file and the writer thread that fills it (:mod:`actantd.journal`).

:class:`JournalFile` opens the file (WAL, ``synchronous=NORMAL``, 0600), moves a corrupt one aside, and notices
a file deleted or replaced under the daemon before the next write (the path's inode is compared with the one
opened) and opens a fresh one, instead of writing on into an unlinked inode nobody can read.
:class:`JournalWriter` adds the writes: without the writer thread every entry is one autocommit INSERT; after
:meth:`JournalWriter.start_writer` an entry is encoded, given its id up front and queued (bounded by
``MAX_PENDING``), and one thread inserts the queue in batches of up to ``WRITE_BATCH`` rows, one transaction
each; :meth:`JournalWriter.flush` waits for the queue (queries call it first: read-your-writes).
Never raises for storage reasons: a failed write is logged once and counted in ``dropped``.
"""

from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger("actantd.journal")
"""The journal's logger, whichever of its modules logs."""

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 250
"""Only this daemon writes; a foreign writer (someone in the sqlite3 shell) may hold the lock briefly.
Waiting longer would stall the event loop, so past this the entry is dropped instead."""
REOPEN_INTERVAL_SECONDS = 30.0
"""When the journal could not be opened at all (e.g. disk full at startup), how often to try again."""
WRITE_BATCH = 2000
"""Rows per transaction in writer mode: big enough to amortize the commit, small enough that a query's flush
or the lock a batch holds never lasts more than a few milliseconds."""
BUSY_RETRY_SECONDS = 5.0
MAX_PENDING = 200_000
"""Queued entries beyond this are dropped (and counted): history must never grow the daemon without bound."""
FILE_MODE = 0o600
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


def _is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _CORRUPTION_CODES


class _Unusable(Exception):
    """The file opened but is not a journal this code can use (corrupt, or a newer schema)."""


class JournalFile:
    """The open SQLite file, reopened when it is deleted or replaced, moved aside when corrupt. With the writer
    started, the connection is used by the writer thread and by queries, each under ``_db_lock``."""

    prune_every: int
    _since_prune: int
    _next_prune_at: float

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.dropped = 0
        """Entries lost to write failures since open (daemon.status shows it)."""
        self._conn: sqlite3.Connection | None = None
        self._failing = False
        self._reopen_at = 0.0
        self._closed = False
        self._recovering = False
        self._identity: tuple[int, int] | None = None
        """(st_dev, st_ino) of the file opened, to notice it being deleted or replaced."""
        self._db_lock = threading.RLock()
        self._cond = threading.Condition(threading.Lock())
        self._next_id = 1
        """The id the next queued entry gets (never lowered: ids handed out must stay unique)."""

    def prune(self) -> int:
        """Retention, run after every open (:meth:`actantd.journal.Journal.prune`)."""
        raise NotImplementedError

    def _stop_writer(self) -> None:
        """No writer thread at this level (:class:`JournalWriter` has one)."""

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


class JournalWriter(JournalFile):
    """Inserts, one at a time or batched by the writer thread, with ids handed out when an entry is queued."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._pending: collections.deque[_Row] = collections.deque()
        self._writing = 0
        """Rows the writer thread has taken but not finished (for ``flush``)."""
        self._writer: threading.Thread | None = None
        self._stopping = False

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
