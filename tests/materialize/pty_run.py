"""Run an interactive CLI in a pseudo-terminal for a few seconds and return what it drew (escapes removed).

Enough to see whether an ``open`` stops at a trust dialog: no model is needed to draw the first screen.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time
from collections.abc import Mapping

_ESCAPES = re.compile(rb"\x1b\[[0-9;?>]*[a-zA-Z~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[=>()][0-9A-Za-z]?")


def screen(argv: list[str], cwd: str, env: Mapping[str, str], seconds: float, until: bytes | None = None) -> str:
    """What ``argv`` writes to its terminal within ``seconds`` (sooner once ``until`` appears); then killed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a new session with the pty as its terminal
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], argv, dict(env))
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
            if until is not None and until in _ESCAPES.sub(b"", out).replace(b" ", b""):
                break
    finally:
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except ProcessLookupError:
                pass
        os.waitpid(pid, 0)
        os.close(fd)
    return _ESCAPES.sub(b"", out).decode(errors="replace")
