"""Class 11 of issue #10, the transport and journal items.

Before: a ``Content-Length`` of thousands of digits raised inside the transport (``int()`` refuses past
4300 digits) instead of answering a parse error; duplicate ``Content-Length`` headers were accepted (the
last one won); the listen backlog was asyncio's 100; a deleted journal file was written to silently; a
daemon that lost the socket race had already run recovery on its home.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from actantd.journal import Journal
from actantd.rpc.framing import ContentLengthDecoder, FrameError
from actantd.rpc.server import listen_backlog
from tests.harness import Daemon, make_configs, running_daemon


@pytest.mark.parametrize("digits", [20, 5000, 100_000])
def test_a_content_length_of_many_digits_is_a_framing_error(digits: int) -> None:
    frames = ContentLengthDecoder().feed(b"Content-Length: " + b"9" * digits + b"\r\n\r\n{}")
    assert len(frames) == 1 and isinstance(frames[0], FrameError)
    assert frames[0].error.error_code in ("MESSAGE_TOO_LARGE", "PARSE_ERROR")


def test_leading_zeros_are_still_a_number() -> None:
    assert ContentLengthDecoder().feed(b"Content-Length: " + b"0" * 6000 + b"2\r\n\r\n{}") == [b"{}"]


def test_duplicate_content_length_is_refused() -> None:
    frames = ContentLengthDecoder().feed(b"Content-Length: 2\r\nContent-Length: 20\r\n\r\n{}")
    assert len(frames) == 1 and isinstance(frames[0], FrameError)
    assert "duplicate" in frames[0].error.message


def test_the_daemon_answers_huge_content_length_and_keeps_serving(short_tmp: Path) -> None:
    with running_daemon(short_tmp) as daemon:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(daemon.socket))
            s.sendall(b"Content-Length: " + b"7" * 5000 + b"\r\n\r\n")
            reply = s.recv(65536)
        body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["data"]["errorCode"] == "MESSAGE_TOO_LARGE"
        assert daemon.call("daemon.ping") is not None


def test_listen_backlog_is_the_system_maximum(short_tmp: Path) -> None:
    try:
        system = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except OSError:
        pytest.skip("no /proc/sys/net/core/somaxconn")
    assert listen_backlog() >= system
    with running_daemon(short_tmp) as daemon:
        assert daemon.proc is not None
        # /proc/net/unix lists no backlog; ss does. Fall back to a burst of connections otherwise.
        conns = []
        try:
            for _ in range(300):  # over asyncio's default of 100; the daemon is busy accepting meanwhile
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.setblocking(False)
                c.connect(str(daemon.socket))  # BlockingIOError (EAGAIN) when the backlog is full
                conns.append(c)
        finally:
            for c in conns:
                c.close()
        assert len(conns) == 300


def test_a_deleted_journal_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    journal.start_writer()
    journal.record("daemon", what="before")
    assert journal.flush(10)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    journal.record("daemon", what="after")
    assert journal.flush(10)
    assert path.exists()
    assert [e["what"] for e in journal.query()] == ["after"]
    journal.close()


def test_the_daemon_that_loses_the_socket_race_does_not_recover_its_home(short_tmp: Path) -> None:
    with running_daemon(short_tmp) as first:
        loser_home = short_tmp / "loser-home"
        broken = loser_home / "instances" / "broken"
        broken.mkdir(parents=True)
        (broken / ".actant.json").write_text("{not json")  # recovery would quarantine it
        configs = make_configs(short_tmp / "c2")
        argv = [sys.executable, "-m", "actantd", "--home", str(loser_home), "--configs", str(configs)]
        argv += ["--socket", str(first.socket)]
        proc = subprocess.run(argv, env=Daemon(short_tmp).env(), capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        assert "listening on" in proc.stderr
        assert (broken / ".actant.json").exists(), "the losing daemon recovered (quarantined) its home"
        assert first.call("daemon.ping") is not None
        assert os.path.exists(first.socket)


def test_a_time_bound_past_64_bits_is_invalid_params(tmp_path: Path) -> None:
    """Found by the fuzzing soak: ``events.query`` with ``since: 1e20`` raised OverflowError inside SQLite."""
    from actantd.errors import InvalidParams

    with Journal(tmp_path / "journal.sqlite") as journal:
        for value in (1e20, -1e300):
            with pytest.raises(InvalidParams):
                journal.query(since=value)
