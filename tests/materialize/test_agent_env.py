"""``actantctl agent env``: the printed lines, pasted into a shell, run the agent the way Actant does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.materialize.daemon_fixture import HomeDaemon, fixture_daemon
from tests.materialize.helpers import SECRET

CTL = [sys.executable, "-m", "actantctl"]


@pytest.fixture
def fd(short_tmp: Path) -> Iterator[HomeDaemon]:
    configs = short_tmp / "configs"
    from tests.materialize.helpers import fixture_configs

    fixture_configs(configs)
    template = configs / "templates/kit-custom.json"
    doc = json.loads(template.read_text())
    doc["command"] = ["{python}", "-c", "import os; print('key', os.environ['KIT_API_KEY'], os.getcwd())"]
    template.write_text(json.dumps(doc))
    with fixture_daemon(short_tmp) as d:
        yield d


def _ctl(d: HomeDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTANT_")}
    return subprocess.run([*CTL, "--socket", str(d.socket), *args], capture_output=True, text=True, env=env,
                          timeout=60, check=True)  # fmt: skip


def test_pasted_lines_run_the_agent(fd: HomeDaemon) -> None:
    fd.call("agent.create", {"name": "kc", "template": "kit-custom"})
    printed = _ctl(fd, "agent", "env", "kc").stdout
    assert SECRET not in printed
    assert 'export KIT_API_KEY="${KIT_API_KEY:?' in printed
    workspace = json.loads(_ctl(fd, "agent", "env", "kc", "--json").stdout)["cwd"]
    env = {k: v for k, v in os.environ.items() if k != "KIT_API_KEY"}
    unset = subprocess.run(["sh", "-c", printed], capture_output=True, text=True, env=env, timeout=60)
    assert unset.returncode != 0 and "KIT_API_KEY" in unset.stderr  # a masked secret must be supplied
    done = subprocess.run(["sh", "-c", printed], capture_output=True, text=True, timeout=60,
                          env={**env, "KIT_API_KEY": "from-my-shell"})  # fmt: skip
    assert done.stdout.split() == ["key", "from-my-shell", workspace]
    revealed = _ctl(fd, "agent", "env", "kc", "--reveal").stdout
    ran = subprocess.run(["sh", "-c", revealed], capture_output=True, text=True, env=env, timeout=60)
    assert ran.stdout.split() == ["key", SECRET, workspace]


def test_modes_and_json(fd: HomeDaemon) -> None:
    fd.call("agent.create", {"name": "gm", "template": "kit-gemini"})
    spec = json.loads(_ctl(fd, "agent", "env", "gm", "--mode", "run", "--prompt", "say hi", "--json").stdout)
    assert spec["argv"] == ["gemini", "-p", "say hi", "--output-format", "json"]
    assert spec["env"]["GEMINI_CLI_TRUST_WORKSPACE"] == "true" and spec["masked"] == ["KIT_API_KEY"]
    opened = _ctl(fd, "agent", "env", "gm", "--mode", "open").stdout
    assert opened.rstrip().splitlines()[-1] == "gemini"


def test_instance_env_reaches_the_agent_but_not_the_workspace(fd: HomeDaemon) -> None:
    fd.call("agent.create", {"name": "kc", "template": "kit-custom", "overrides": {"env": {"KIT_API_KEY": "tok-9"}}})
    status = fd.call("agent.status", {"name": "kc"})["agent"]
    workspace = Path(status["workspace"])
    assert status["overrides"]["env"] == {"KIT_API_KEY": "********"}
    for path in workspace.rglob("*"):
        if path.is_file():
            assert b"tok-9" not in path.read_bytes() and SECRET.encode() not in path.read_bytes(), path
    secrets = fd.home / "secrets/kc.json"
    assert secrets.stat().st_mode & 0o777 == 0o600 and json.loads(secrets.read_text()) == {"KIT_API_KEY": "tok-9"}
    # Same arguments again: idempotent (the values are compared, not the redacted record).
    fd.call("agent.create", {"name": "kc", "template": "kit-custom", "overrides": {"env": {"KIT_API_KEY": "tok-9"}}})
    conn = fd.conn()
    conn.call("events.subscribe", {"agent": "kc", "types": ["transition"]})
    fd.call("agent.start", {"name": "kc", "wait": False})
    conn.wait_event(lambda e: e.get("to") in ("Stopped", "Crashed", "Failed"))
    conn.close()
    out = fd.call("agent.logs", {"name": "kc", "lines": 5})["lines"]
    assert any(line.split()[:2] == ["key", "tok-9"] for line in out), out
    fd.call("agent.destroy", {"name": "kc", "force": True})
    assert not secrets.exists()
