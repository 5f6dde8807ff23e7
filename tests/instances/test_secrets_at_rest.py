"""Class 10 of issue #10: secrets at rest.

Before: ``--env`` values were journaled in clear whenever the variable's name did not look secret
(``OPENAI_KEY``, ``ANTHROPIC_KEY``, ``GH_PAT`` were kept), state files were 0644, and a pre-existing 0755
home was not tightened. Now the journal keeps no env value at all, every state file is 0600, the home 0700.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from actantd.journal import redact
from tests.harness import Daemon, make_configs

SECRETS = {"OPENAI_KEY": "sk-proj-0123456789", "ANTHROPIC_KEY": "ant-abcdef", "GH_PAT": "ghp_zyxw", "X": "plain1"}


def test_env_values_are_never_in_redacted_params() -> None:
    params = {"name": "a", "template": "t", "overrides": {"env": dict(SECRETS)}}
    out = redact(params)
    assert out["overrides"]["env"] == dict.fromkeys(SECRETS, "***")
    assert redact({"env": ["OPENAI_KEY=sk-1", "X=2"]}) == {"env": ["OPENAI_KEY=***", "X=***"]}
    assert params["overrides"]["env"] == SECRETS  # the input is left alone


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_daemon_keeps_env_values_out_of_the_journal_and_state_private(short_tmp: Path) -> None:
    daemon = Daemon(short_tmp, make_configs(short_tmp))
    daemon.home.mkdir(mode=0o755)
    os.chmod(daemon.home, 0o755)
    daemon.start()
    try:
        daemon.call("agent.create", {"name": "keyed", "template": "sleeper", "overrides": {"env": SECRETS}})
        events = daemon.call("events.query", {"limit": 1000})["events"]
        commands = [e for e in events if e["type"] == "command" and e.get("method") == "agent.create"]
        assert commands and commands[0]["params"]["overrides"]["env"] == dict.fromkeys(SECRETS, "***")
        assert _mode(daemon.home) == 0o700
        record = daemon.home / "instances" / "keyed" / ".actant.json"
        assert _mode(record) == 0o600
        assert _mode(daemon.home / "actantd.lock") == 0o600
    finally:
        assert daemon.stop() == 0
    for name in ("journal.sqlite", "journal.sqlite-wal"):
        path = daemon.home / name
        if path.exists():
            assert _mode(path) == 0o600, name
            data = path.read_bytes()
            for value in SECRETS.values():
                assert value.encode() not in data, (name, value)
    for sub in ("instances", ".staging", ".trash", ".corrupted"):
        if (daemon.home / sub).exists():
            assert _mode(daemon.home / sub) & 0o077 == 0, sub
