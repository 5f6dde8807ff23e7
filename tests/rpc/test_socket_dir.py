"""Class 9 of issue #10 (daemon side): a socket directory the daemon did not create keeps its mode.

Before, an existing directory owned by the daemon's user with group/other access was chmodded to 0700: a
project folder or a shared runtime directory given as ``--socket``'s parent lost its permissions.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from actantd.rpc.server import bind_unix_socket


def test_an_existing_directory_is_left_as_it_is(short_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    shared = short_tmp / "project"
    shared.mkdir()
    os.chmod(shared, 0o755)
    with caplog.at_level(logging.WARNING):
        sock = bind_unix_socket(shared / "s.sock")
    try:
        assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755
        assert stat.S_IMODE(os.lstat(shared / "s.sock").st_mode) == 0o600
        assert "not created by actantd" in caplog.text
    finally:
        sock.close()


def test_a_directory_it_creates_is_0700(short_tmp: Path) -> None:
    old = os.umask(0o022)
    try:
        sock = bind_unix_socket(short_tmp / "new" / "s.sock")
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(short_tmp / "new").st_mode) == 0o700
    finally:
        sock.close()
