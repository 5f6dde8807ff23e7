"""Ctrl-C exits 130 (128 + SIGINT), silently, from every following command (issue #11).

The child gets a default SIGINT disposition explicitly (``with_default_signals``): CI may run the suite with
SIGINT ignored, and an ignored SIGINT is inherited, so without it the test would pass or hang depending on
how it was started.
"""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.e2e.test_cli import CTL, _env, ok
from tests.harness import Daemon
from tests.helpers import with_default_signals


@pytest.mark.parametrize(
    "argv",
    [
        ["events", "-f", "--limit", "1"],
        ["agent", "logs", "-f", "i"],
        ["agent", "logs", "-f", "i", "--stderr", "--json"],
    ],
    ids=["events", "logs-both", "logs-stderr-json"],
)
def test_ctrl_c_exits_130(daemon: Daemon, argv: list[str]) -> None:
    ok(daemon.socket, "agent", "create", "i", "--template", "sleeper")
    ok(daemon.socket, "agent", "start", "i")
    proc = subprocess.Popen(with_default_signals([*CTL, "--socket", str(daemon.socket), *argv]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())  # fmt: skip
    try:
        assert proc.stdout is not None
        # Wait until it is following (its first output comes after the subscription is in place).
        if argv[0] == "events":
            assert " i " in proc.stdout.readline()  # the backlog of --limit 1, printed once subscribed
        elif "--stderr" not in argv:
            assert proc.stdout.readline().startswith("out | up")
        else:
            assert proc.stdout.readline().startswith('{"agent":"i","stream":"stderr"')
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted" not in err
