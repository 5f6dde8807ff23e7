"""``agent start|stop|restart`` with several names, ``--all`` and filters, against a real daemon (issue #11).

Each target gets one result line, they run in parallel, and the exit status is non-zero when any failed.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import ctl, js, ok
from tests.harness import Daemon


def _create(sock: Path, *pairs: tuple[str, str]) -> None:
    for name, template in pairs:
        ok(sock, "agent", "create", name, "--template", template)


def test_start_and_stop_several_names_one_line_each(daemon: Daemon) -> None:
    sock = daemon.socket
    _create(sock, ("a1", "sleeper"), ("a2", "sleeper"), ("a3", "demo"))
    out = ok(sock, "agent", "start", "a1", "a2")
    lines = sorted(out.splitlines())
    assert len(lines) == 2 and lines[0].startswith("started a1 (pid ") and lines[1].startswith("started a2 (pid ")
    statuses = {a["name"]: a["status"] for a in js(sock, "agent", "list")["agents"]}
    assert statuses == {"a1": "Running", "a2": "Running", "a3": "Ready"}
    out = ok(sock, "agent", "stop", "--all")
    assert sorted(out.splitlines()) == ["stopped a1", "stopped a2", "stopped a3"]
    assert {a["status"] for a in js(sock, "agent", "list")["agents"]} <= {"Stopped", "Ready"}


def test_filters_by_template_and_status(daemon: Daemon) -> None:
    sock = daemon.socket
    _create(sock, ("s1", "sleeper"), ("s2", "sleeper"), ("d1", "demo"))
    doc = js(sock, "agent", "start", "--template", "sleeper")
    assert sorted(r["name"] for r in doc["results"]) == ["s1", "s2"]
    assert all(r["ok"] and r["agent"]["status"] == "Running" for r in doc["results"])
    out = ok(sock, "agent", "restart", "--status", "running")  # case-insensitive, like agent list --status
    assert sorted(line.split(" (")[0] for line in out.splitlines()) == ["restarted s1", "restarted s2"]
    out = ok(sock, "agent", "stop", "--status", "Running")
    assert sorted(out.splitlines()) == ["stopped s1", "stopped s2"]
    assert ok(sock, "agent", "stop", "--status", "Running") == "no agents matched\n"


def test_one_failure_fails_the_command_but_every_target_is_tried(daemon: Daemon) -> None:
    sock = daemon.socket
    _create(sock, ("good", "sleeper"), ("bad", "missing-exe"))
    done = ctl(sock, "agent", "start", "good", "bad", "nosuch")
    assert done.returncode == 1, done
    assert done.stdout.startswith("started good (pid ")
    err = done.stderr.splitlines()
    assert any(line.startswith("error: bad: ") and "definitely-not-installed-agent" in line for line in err), err
    assert any(line.startswith("error: nosuch: ") and "no agent named 'nosuch'" in line for line in err), err
    assert err[-1] == "error: 2 of 3 failed: bad, nosuch"
    doc = json.loads(ctl(sock, "agent", "stop", "good", "nosuch", "--json").stdout)
    assert [(r["name"], r["ok"]) for r in doc["results"]] == [("good", True), ("nosuch", False)]
    assert doc["results"][1]["error"]["errorCode"] == "AGENT_NOT_FOUND"


def test_no_target_is_a_usage_error(daemon: Daemon) -> None:
    done = ctl(daemon.socket, "agent", "start")
    assert done.returncode == 2
    assert "name one or more agents, or use --all" in done.stderr
