"""Class 2 of issue #10: special files in (or named as) configs never block, exhaust or crash the daemon.

A FIFO used to block the reader (at start-up, hot reload and ``config.validate``: the whole event loop), a
symlink to ``/dev/zero`` was read until memory ran out, and a configs folder that is a symlink loop crashed
start-up in the seeder. Only regular files of bounded size are read, opened ``O_NONBLOCK`` and checked with
``fstat`` on the open descriptor, and never on the event loop.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from actantd.config.files import MAX_CONFIG_BYTES, UnreadableConfig, read_config_bytes
from actantd.config.parse import parse_file
from actantd.config.store import bundled_configs_dir, load_registry, seed_configs
from tests.harness import Daemon

WAIT = 10.0


def _special_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    fifo = folder / "fifo.json"
    os.mkfifo(fifo)
    zero = folder / "zero.json"
    zero.symlink_to("/dev/zero")
    null = folder / "null.json"
    null.symlink_to("/dev/null")
    big = folder / "big.json"
    with open(big, "wb") as f:  # sparse: costs no disk
        f.truncate(MAX_CONFIG_BYTES + 1)
    return {"fifo": fifo, "zero": zero, "null": null, "big": big}


@contextlib.contextmanager
def _unblocking(fifo: Path) -> Iterator[None]:
    """If a reader wrongly blocks on the FIFO, open and close a writer so the test thread can finish."""
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_only_bounded_regular_files_are_read(tmp_path: Path) -> None:
    files = _special_files(tmp_path / "skills")
    with concurrent.futures.ThreadPoolExecutor(1) as pool, _unblocking(files["fifo"]):
        for name, path in files.items():
            future = pool.submit(parse_file, path, f"skills/{name}.json", "skill")
            parsed, issues = future.result(WAIT)  # a FIFO opened without O_NONBLOCK never returns
            assert parsed is None and len(issues) == 1, (name, issues)
    with pytest.raises(UnreadableConfig, match="FIFO"):
        read_config_bytes(files["fifo"])
    with pytest.raises(UnreadableConfig, match="character device"):
        read_config_bytes(files["zero"])
    with pytest.raises(UnreadableConfig, match="at most"):
        read_config_bytes(files["big"])


def test_folder_with_special_files_loads_the_rest(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(bundled_configs_dir(), configs)
    _special_files(configs / "skills")
    with concurrent.futures.ThreadPoolExecutor(1) as pool, _unblocking(configs / "skills/fifo.json"):
        result = pool.submit(load_registry, configs).result(WAIT)
    bad = {i.file for i in result.errors}
    assert {"skills/fifo.json", "skills/zero.json", "skills/null.json", "skills/big.json"} <= bad
    assert "code-reviewer" in result.registry.templates


def test_symlink_loop_configs_folder_is_reported_not_seeded(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    assert seed_configs(loop) is False
    assert loop.is_symlink()
    result = load_registry(loop)
    assert [i.message for i in result.errors] == ["configs folder is a symlink loop"]


def _start(daemon: Daemon) -> None:
    try:
        daemon.start(timeout=WAIT)
    except BaseException:
        if daemon.proc is not None:
            daemon.proc.kill()
            daemon.proc.wait()
            daemon.proc = None
        raise


def test_daemon_with_a_fifo_in_its_configs_starts_and_keeps_answering(short_tmp: Path) -> None:
    configs = short_tmp / "configs"
    shutil.copytree(bundled_configs_dir(), configs)
    files = _special_files(configs / "skills")
    daemon = Daemon(short_tmp, configs)
    with _unblocking(files["fifo"]):
        _start(daemon)
    try:
        result = daemon.call("config.validate")
        assert any(e.startswith("skills/fifo.json: $: not a regular file") for e in result["errors"]), result
        assert any(e.startswith("skills/zero.json: ") for e in result["errors"]), result
        assert daemon.call("daemon.ping") is not None
    finally:
        assert daemon.stop() == 0


def test_daemon_with_a_symlink_loop_as_configs_folder_starts(short_tmp: Path) -> None:
    loop = short_tmp / "loop"
    loop.symlink_to("loop")
    daemon = Daemon(short_tmp, loop)
    _start(daemon)
    try:
        result = daemon.call("config.validate")
        assert result["errors"] == [f"{loop}: $: configs folder is a symlink loop"], result
    finally:
        assert daemon.stop() == 0


@pytest.mark.soak
def test_soak_hot_reload_under_a_stream_of_hostile_files(short_tmp: Path) -> None:
    """Classes 1 and 2 together: for a while, hostile files (FIFOs, /dev/zero links, deep nesting, huge
    integers) appear and vanish in a running daemon's configs folder between good edits; every good edit is
    picked up (config.changed), pings keep being answered, the daemon never dies."""
    import json
    import time

    from tests.harness import make_configs

    configs = make_configs(short_tmp)
    daemon = Daemon(short_tmp, configs)
    daemon.start()
    conn = daemon.conn()
    conn.call("events.subscribe", {"types": ["config.*"]})
    skill = configs / "skills" / "code-review.json"
    doc = json.loads(skill.read_text())
    deadline = time.monotonic() + 60
    rounds = 0
    try:
        while time.monotonic() < deadline:
            rounds += 1
            bad = configs / "skills" / f"bad-{rounds}.json"
            kind = rounds % 4
            if kind == 0:
                os.mkfifo(bad)
            elif kind == 1:
                bad.symlink_to("/dev/zero")
            elif kind == 2:
                bad.write_bytes(b"[" * 100_000 + b"]" * 100_000)
            else:
                bad.write_bytes(b'{"version": "1.0", "x": ' + b"9" * 6000 + b"}")
            doc["description"] = f"round {rounds}"
            skill.write_text(json.dumps(doc))
            conn.wait_event(lambda e: e["type"] == "config.changed" and "skill/code-review" in e["changed"])
            assert daemon.call("daemon.ping") is not None
            bad.unlink()
        assert rounds > 5
    finally:
        conn.close()
        assert daemon.stop() == 0
