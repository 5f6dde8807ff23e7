"""The operational history (actantd/journal.py): shape, queries, retention, redaction, and its failure policy.

Every test uses a real SQLite file under tmp_path. Time is injected through ``clock`` (epoch nanoseconds) so
retention and range queries are exact; failures are real ones (a garbage file, a foreign writer holding the
lock, RLIMIT_FSIZE in a child process), not mocks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actantd.errors import InternalError, InvalidParams
from actantd.events import TypeFilter
from actantd.journal import MAX_PARAM_STRING, REDACTED, Journal, iso_ms, redact

T0_MS = 1_750_000_000_000  # 2025-06-15T15:06:40Z
DAY_MS = 86_400_000
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REPO = Path(__file__).resolve().parents[2]


class Clock:
    """A settable clock in epoch milliseconds, handed to the journal as epoch nanoseconds."""

    def __init__(self, ms: int = T0_MS) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms * 1_000_000


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite", clock=clock)
    yield j
    j.close()


def all_entries(j: Journal) -> list[dict[str, Any]]:
    return j.query(limit=10_000)


# ---------------------------------------------------------------------------------------------------------
# Shape and storage


def test_file_is_in_wal_mode_with_the_schema(journal: Journal) -> None:
    journal.record("daemon", what="start")
    with sqlite3.connect(journal.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"entries_agent_ts", "entries_type_ts", "entries_ts"} <= indexes
        assert other.execute("SELECT type, agent, at, ts FROM entries").fetchall() == [
            ("daemon", None, iso_ms(T0_MS), T0_MS)
        ]


def test_record_returns_the_entry_as_published_and_query_returns_the_same(journal: Journal) -> None:
    entry = journal.record("instance", "reviewer", what="quarantined", path="/x")
    assert list(entry) == ["id", "type", "agent", "at", "what", "path"]
    assert entry["id"] == 1
    assert entry["at"] == "2025-06-15T15:06:40.000Z"
    assert ISO_RE.match(entry["at"])
    assert journal.query() == [entry]


def test_transition_execution_config_and_daemon_helpers(journal: Journal) -> None:
    t = journal.transition("reviewer", "Starting", "Running", "process started")
    assert (t["type"], t["agent"], t["from"], t["to"], t["reason"]) == (
        "transition",
        "reviewer",
        "Starting",
        "Running",
        "process started",
    )
    assert journal.transition("reviewer", None, "Created", "create")["from"] is None

    x = journal.execution("reviewer", "p" * 500, T0_MS / 1000, 1234.5678, 0, 42, cost_usd=0.01)
    assert x["promptPreview"] == "p" * 200
    assert x["startedAt"] == iso_ms(T0_MS)
    assert (x["durationMs"], x["exitCode"], x["outputBytes"], x["costUsd"]) == (1234.568, 0, 42, 0.01)
    assert journal.execution("r", "hi", "2025-01-01T00:00:00Z", 1, None, 0)["startedAt"] == "2025-01-01T00:00:00Z"

    c = journal.config_event(Path("templates/a.json"), False, "$.skills[0]: unknown skill 'x'")
    assert (c["type"], c["agent"], c["file"], c["ok"]) == ("config", None, "templates/a.json", False)

    d = journal.daemon_event("start", pid=123, version="0.1.0")
    assert (d["type"], d["what"], d["pid"]) == ("daemon", "start", 123)
    assert [e["id"] for e in all_entries(journal)] == [t["id"], 2, x["id"], 4, c["id"], d["id"]]


def test_reserved_keys_are_refused(journal: Journal) -> None:
    with pytest.raises(ValueError):
        journal.record("daemon", at="now")
    with pytest.raises(ValueError):
        journal.record("daemon", id=3)


def test_unencodable_values_are_recorded_as_text(journal: Journal) -> None:
    entry = journal.record("daemon", what="odd", where=Path("/a/b"), exc=ValueError("boom"))
    assert entry["id"] is not None
    assert journal.query()[0]["where"] == "/a/b"
    assert journal.query()[0]["exc"] == "boom"


def test_history_survives_reopen_and_ids_keep_growing(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, clock=clock) as j:
        for _ in range(3):
            j.record("daemon", what="x")
    with Journal(path, clock=clock, max_rows=1) as j:  # prune at open keeps only id 3
        assert [e["id"] for e in all_entries(j)] == [3]
        assert j.record("daemon", what="y")["id"] == 4


# ---------------------------------------------------------------------------------------------------------
# Queries


def ids(entries: list[dict[str, Any]]) -> list[int]:
    return [e["id"] for e in entries]


def fill(j: Journal, clock: Clock, rows: list[tuple[str, str | None]], step_ms: int = 1000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for type_, agent in rows:
        out.append(j.record(type_, agent, n=len(out)))
        clock.ms += step_ms
    return out


def test_query_by_agent_type_family_limit_and_order(journal: Journal, clock: Clock) -> None:
    entries = fill(
        journal,
        clock,
        [
            ("transition", "a"),
            ("transition", "b"),
            ("command", "a"),
            ("config", None),
            ("config.error", None),
            ("configuration", None),
            ("transition", "a"),
        ],
    )
    assert ids(journal.query(agent="a")) == [1, 3, 7]
    assert ids(journal.query(types=["transition"])) == [1, 2, 7]
    assert ids(journal.query(types="transition")) == [1, 2, 7]  # a bare string is one type
    assert ids(journal.query(types=["config.*"])) == [4, 5]  # the family, not "configuration"
    assert ids(journal.query(types=["config.*", "command"])) == [3, 4, 5]
    assert ids(journal.query(types=["*"])) == ids(entries)
    assert ids(journal.query(types=[])) == ids(entries)
    assert ids(journal.query(agent="a", types=["transition"])) == [1, 7]
    assert ids(journal.query(limit=2)) == [1, 2]
    assert ids(journal.query(limit=2, order="desc")) == [7, 6]
    assert ids(journal.query(agent="nobody")) == []


def test_query_time_window_is_half_open_and_accepts_iso_or_epoch(journal: Journal, clock: Clock) -> None:
    fill(journal, clock, [("daemon", None)] * 5)  # at T0, T0+1s, ... T0+4s
    t1, t3 = iso_ms(T0_MS + 1000), iso_ms(T0_MS + 3000)
    assert ids(journal.query(since=t1, until=t3)) == [2, 3]
    assert ids(journal.query(since=(T0_MS + 1000) / 1000, until=(T0_MS + 3000) / 1000)) == [2, 3]
    assert ids(journal.query(since="2025-06-15T17:06:41+02:00")) == [2, 3, 4, 5]  # an offset is honoured
    assert ids(journal.query(since="2025-06-15T15:06:41")) == [2, 3, 4, 5]  # naive means UTC
    assert ids(journal.query(since="2025-06-15T15:06:41.000001Z")) == [3, 4, 5]  # sub-ms precision counts
    assert ids(journal.query(until=iso_ms(T0_MS))) == []


def test_equal_timestamps_keep_insertion_order(journal: Journal) -> None:
    for n in range(5):
        journal.record("daemon", n=n)
    assert [e["n"] for e in journal.query()] == [0, 1, 2, 3, 4]
    assert [e["n"] for e in journal.query(order="desc")] == [4, 3, 2, 1, 0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": 10_001},
        {"limit": True},
        {"order": "sideways"},
        {"since": "yesterday"},
        {"since": True},
        {"until": float("nan")},
        {"since": [1]},
    ],
)
def test_bad_query_params_are_invalid_params(journal: Journal, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams):
        journal.query(**kwargs)


timestamps = st.lists(st.integers(T0_MS - 5 * DAY_MS, T0_MS + 5 * DAY_MS), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stamps=timestamps, data=st.data())
def test_since_returns_exactly_the_entries_at_or_after_it(stamps: list[int], data: st.DataObject) -> None:
    """Property: for any ``since`` (an entry's own ``at``, any ms, any epoch float), the answer is exactly the
    entries whose time is at/after it, in (time, insertion) order."""
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock()
        with Journal(Path(tmp) / "j.sqlite", clock=clock, max_age_days=3650) as j:
            recorded = []
            for ms in stamps:
                clock.ms = ms
                recorded.append((ms, j.record("daemon", what="tick")))
            kind = data.draw(st.sampled_from(["at", "ms-iso", "epoch"]))
            if kind == "at":
                ms, entry = data.draw(st.sampled_from(recorded))
                since: str | float = entry["at"]
                since_us = ms * 1000
            elif kind == "ms-iso":
                since_us = data.draw(st.integers(T0_MS - 6 * DAY_MS, T0_MS + 6 * DAY_MS)) * 1000
                since = iso_ms(since_us // 1000)
            else:
                since_us = data.draw(st.integers((T0_MS - 6 * DAY_MS) * 1000, (T0_MS + 6 * DAY_MS) * 1000))
                since = since_us / 1_000_000
            expected = sorted((ms, e["id"]) for ms, e in recorded if ms * 1000 >= since_us)
            got = j.query(since=since, limit=10_000)
            assert [e["id"] for e in got] == [i for _, i in expected]


type_names = st.text(alphabet="ab.-/", min_size=1, max_size=5)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(types=st.lists(type_names, min_size=1, max_size=12), patterns=st.lists(type_names, min_size=1, max_size=3))
def test_query_type_patterns_select_what_the_bus_would_deliver(types: list[str], patterns: list[str]) -> None:
    """The journal's SQL for ``types`` must agree with :class:`TypeFilter`, which ``events.subscribe`` uses."""
    patterns = [p + ".*" if i % 2 else p for i, p in enumerate(patterns)]
    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "j.sqlite") as j:
        for t in types:
            j.record(t)
        compiled = TypeFilter.of(patterns)
        assert compiled is not None
        expected = [i + 1 for i, t in enumerate(types) if compiled.matches(t)]
        assert [e["id"] for e in j.query(types=patterns, limit=10_000)] == expected


# ---------------------------------------------------------------------------------------------------------
# Retention


def test_row_bound_keeps_the_newest(tmp_path: Path, clock: Clock) -> None:
    with Journal(tmp_path / "j.sqlite", clock=clock, max_rows=10, prune_every=1) as j:
        for n in range(25):
            j.record("daemon", n=n)
            assert len(all_entries(j)) <= 10
        assert [e["n"] for e in all_entries(j)] == list(range(15, 25))


def test_row_bound_is_enforced_every_prune_every_records(tmp_path: Path, clock: Clock) -> None:
    with Journal(tmp_path / "j.sqlite", clock=clock, max_rows=10, prune_every=5) as j:
        counts = []
        for n in range(40):
            j.record("daemon", n=n)
            counts.append(len(all_entries(j)))
        assert max(counts) < 10 + 5
        assert j.prune() >= 0
        assert len(all_entries(j)) == 10


def test_age_bound_on_prune_and_at_open(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path, clock=clock, max_age_days=30) as j:
        for age_days in (40, 31, 29, 1, 0):
            clock.ms = T0_MS - age_days * DAY_MS
            j.record("daemon", age=age_days)
        clock.ms = T0_MS
        assert j.prune() == 2
        assert [e["age"] for e in all_entries(j)] == [29, 1, 0]
    clock.ms = T0_MS + 10 * DAY_MS  # reopened ten days later: "29" is now 39 days old
    with Journal(path, clock=clock, max_age_days=30) as j:
        assert [e["age"] for e in all_entries(j)] == [1, 0]


def test_bounds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Journal(tmp_path / "j.sqlite", max_rows=0)


# ---------------------------------------------------------------------------------------------------------
# Redaction


def test_redaction_is_recursive_case_insensitive_and_leaves_the_input_alone() -> None:
    params = {
        "name": "reviewer",
        "overrides": {
            "env": {"GITHUB_TOKEN": "ghp_x", "OPENAI_API_KEY": "sk-x", "Api-Key": "k", "PATH": "/usr/bin"},
            "mcp": [{"headers": {"Authorization": "Bearer x", "Accept": "json"}}],
            "argv": ["--token=abc", "API_KEY=zzz", "--verbose", "plain"],
            "nested": {"deeper": {"db_password": "hunter2", "passwd": "p", "credentials": {"a": 1}}},
            "client_secret": None,
        },
        "prompt": "x" * (MAX_PARAM_STRING + 10),
    }
    snapshot = json.dumps(params)
    out = redact(params)
    assert json.dumps(params) == snapshot  # the caller's params are not modified
    env = out["overrides"]["env"]
    # No env value is journaled, whatever its name (hardening #10, class 10).
    assert env == {"GITHUB_TOKEN": REDACTED, "OPENAI_API_KEY": REDACTED, "Api-Key": REDACTED, "PATH": REDACTED}
    assert out["overrides"]["mcp"] == [{"headers": {"Authorization": REDACTED, "Accept": "json"}}]
    assert out["overrides"]["argv"] == ["--token=***", "API_KEY=***", "--verbose", "plain"]
    assert out["overrides"]["nested"] == {
        "deeper": {"db_password": REDACTED, "passwd": REDACTED, "credentials": REDACTED}
    }
    assert out["overrides"]["client_secret"] == REDACTED
    assert out["name"] == "reviewer"
    assert out["prompt"].startswith("x" * MAX_PARAM_STRING) and out["prompt"].endswith("[10 more chars]")


def test_command_entries_are_redacted_and_filed_under_the_agent(journal: Journal) -> None:
    params = {"name": "reviewer", "overrides": {"env": {"ANTHROPIC_API_KEY": "sk-ant-secret"}}}
    entry = journal.command("agent.create", params, 1000, 4242, "ok", 12.34567)
    assert entry["agent"] == "reviewer"
    assert entry["params"]["overrides"]["env"]["ANTHROPIC_API_KEY"] == REDACTED
    assert (entry["method"], entry["peerUid"], entry["peerPid"], entry["outcome"], entry["durationMs"]) == (
        "agent.create",
        1000,
        4242,
        "ok",
        12.346,
    )
    assert entry["error"] is None
    failed = journal.command("daemon.shutdown", None, 0, 1, "error", 1.0, error="PERMISSION_DENIED")
    assert failed["agent"] is None and failed["error"] == "PERMISSION_DENIED"
    stored = journal.query(agent="reviewer")
    assert stored == [entry]
    raw = journal.path.read_bytes() + Path(f"{journal.path}-wal").read_bytes()
    assert b"sk-ant-secret" not in raw


# ---------------------------------------------------------------------------------------------------------
# Failure policy: history never blocks state


def test_garbage_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"definitely not a database" * 100)
    Path(f"{path}-wal").write_bytes(b"stale wal")
    with caplog.at_level(logging.WARNING, logger="actantd.journal"), Journal(path) as j:
        assert j.available
        assert j.record("daemon", what="fresh")["id"] == 1
        assert [e["what"] for e in all_entries(j)] == ["fresh"]
    aside = sorted(p for p in tmp_path.iterdir() if ".corrupt-" in p.name)
    assert aside[0].name.startswith("journal.sqlite.corrupt-")
    assert aside[0].read_bytes().startswith(b"definitely not")
    # The stale WAL went with it (or SQLite discarded it) and was never replayed into the fresh file.
    assert all(p.name.endswith("-wal") for p in aside[1:])
    wal = Path(f"{path}-wal")
    assert not wal.exists() or b"stale wal" not in wal.read_bytes()
    assert "moved aside" in caplog.text


def test_a_journal_from_a_newer_daemon_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with Journal(path) as j:
        assert j.record("daemon")["id"] == 1
    assert any(".corrupt-" in p.name for p in tmp_path.iterdir())


def test_corruption_found_while_running_is_recovered_from(tmp_path: Path, clock: Clock) -> None:
    """A damaged page the open-time checks don't touch: the first read that hits it raises (a query must not
    lie), the file is moved aside, and writing carries on in a fresh journal."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, clock=clock) as j:
        for n in range(2000):
            j.record("daemon", marker=f"MARK{n:05d}", pad="p" * 100)
    raw = bytearray(path.read_bytes())
    page = 4096
    at = raw.index(b"MARK01000") // page * page
    assert at > page  # never page 1, which the open-time checks would catch
    raw[at : at + page] = os.urandom(page)
    path.write_bytes(bytes(raw))

    with Journal(path, clock=clock) as j:
        assert j.available
        with pytest.raises(InternalError):
            all_entries(j)
        assert j.record("daemon", what="after")["id"] == 1
        assert [e.get("what") for e in all_entries(j)] == ["after"]
    assert any(".corrupt-" in p.name for p in tmp_path.iterdir())


def test_a_locked_database_drops_the_entry_and_recovers(journal: Journal, caplog: pytest.LogCaptureFixture) -> None:
    """A foreign writer holding the write lock: the record gives up after busy_timeout, returns the entry
    (id None) for publishing, counts the drop, and the next record after the lock is released succeeds."""
    journal.record("daemon", what="before")
    other = sqlite3.connect(journal.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with caplog.at_level(logging.WARNING, logger="actantd.journal"):
            entry = journal.transition("a", "Running", "Crashed", "exit 1")
        assert entry["id"] is None and entry["to"] == "Crashed"
        assert journal.dropped == 1
        assert "dropping entries" in caplog.text
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert journal.record("daemon", what="after")["id"] is not None
    assert [e["what"] for e in journal.query(types=["daemon"])] == ["before", "after"]
    assert journal.dropped == 1


FSIZE_CHILD = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    from pathlib import Path
    from actantd.journal import Journal

    path = Path(sys.argv[1])
    j = Journal(path)
    j.record("daemon", what="before")
    # The filesystem "fills up": no file may grow past its current size (EFBIG, like ENOSPC for SQLite).
    sizes = [os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p)]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max(sizes), resource.RLIM_INFINITY))
    during = [j.transition("a", "Running", "Crashed", "exit 1")["id"] for _ in range(5)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    after = j.record("daemon", what="after")["id"]
    print(json.dumps({"during": during, "after": after, "dropped": j.dropped,
                      "kept": [e.get("what") for e in j.query()]}))
    """
)


def test_a_full_disk_drops_entries_without_raising(tmp_path: Path) -> None:
    """Real write errors, in a child process so RLIMIT_FSIZE can't touch pytest's own files."""
    proc = subprocess.run(
        [sys.executable, "-c", FSIZE_CHILD, str(tmp_path / "journal.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["during"] == [None] * 5
    assert result["dropped"] == 5
    assert result["after"] is not None
    assert result["kept"] == ["before", "after"]


def test_an_unopenable_journal_drops_records_and_queries_raise(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("a file where the home directory should be")
    with Journal(blocker / "journal.sqlite") as j:
        assert not j.available
        entry = j.record("daemon", what="start")
        assert entry["id"] is None and entry["what"] == "start"
        assert j.dropped == 1
        assert j.prune() == 0
        with pytest.raises(InternalError):
            j.query()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_journal_drops_records(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    path.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        with Journal(path) as j:
            assert j.record("daemon")["id"] is None
            assert j.dropped == 1
    finally:
        tmp_path.chmod(0o755)


def test_records_after_close_are_dropped_not_raised(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    j.close()
    assert j.record("daemon")["id"] is None
    assert j.dropped == 1
    j.close()  # idempotent
