"""Every command group through click's CliRunner against the fake daemon: params sent, --json, tables, exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from actantctl.cli import cli
from actantd.errors import (
    AgentLaunch,
    AgentNotFound,
    ConfigValidation,
    InvalidTransition,
    NotSupported,
    TemplateNotFound,
)
from tests.cli.fake_daemon import FakeDaemon

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _now_is_when_the_test_starts() -> None:
    """Uptimes are shown relative to the real clock: "now" is each test's start, not the module's import (the
    whole suite may reach a test minutes after collecting it)."""
    global NOW
    NOW = datetime.now(UTC)


def iso(delta_seconds: float = 0) -> str:
    return (NOW - timedelta(seconds=delta_seconds)).isoformat()


def record(name: str = "reviewer", status: str = "Running", pid: int | None = 1234, **extra: Any) -> dict[str, Any]:
    base = {
        "schemaVersion": 1,
        "instanceId": "0b6c2c1e-0000-4000-8000-000000000000",
        "name": name,
        "templateRef": "code-reviewer",
        "status": status,
        "launchMode": "Service",
        "workspacePolicy": "Persistent",
        "pid": pid,
        "pidCreateTime": 1.0,
        "createdAt": iso(7200),
        "updatedAt": iso(60),
        "launchedAt": iso(3725),
        "stoppedAt": None,
        "restartCount": 2,
        "lastExit": {"code": 1, "signal": None, "at": iso(4000)},
        "workDir": "/tmp/ws/reviewer",
        "overrides": {},
        "reason": None,
    }
    base.update(extra)
    return base


@pytest.fixture
def fake(short_tmp: Path) -> Iterator[FakeDaemon]:
    with FakeDaemon(short_tmp / "d.sock") as daemon:
        yield daemon


def run(fake: FakeDaemon | Path, *args: str, input: str | None = None) -> Result:
    path = fake.path if isinstance(fake, FakeDaemon) else fake
    return CliRunner().invoke(cli, ["--socket", str(path), *args], input=input, catch_exceptions=False)


# -- agent --------------------------------------------------------------------------------------------------


def test_agent_list_table_and_filters(fake: FakeDaemon) -> None:
    fake.answer("agent.list", {"agents": [record(), record("scratch", "Stopped", None, restartCount=0)]})
    result = run(fake, "agent", "list", "--status", "running", "--template", "code-reviewer")
    assert result.exit_code == 0, result.stderr
    assert fake.params("agent.list") == [{"status": "Running", "template": "code-reviewer", "live": True}]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "TEMPLATE", "BACKEND", "PID", "UPTIME", "CPU", "MEM", "RESTARTS"]
    assert lines[1].split() == ["reviewer", "Running", "code-reviewer", "-", "1234", "1h", "2m", "-", "-", "2"]
    assert lines[2].split() == ["scratch", "Stopped", "code-reviewer", "-", "-", "-", "-", "-", "0"]
    # aligned: every row's STATUS column starts at the same offset
    assert len({line.index(word) for line, word in zip(lines, ["STATUS", "Running", "Stopped"], strict=True)}) == 1


def test_agent_list_json_is_the_result(fake: FakeDaemon) -> None:
    fake.answer("agent.list", {"agents": [record()]})
    for args in (["agent", "list", "--json"], ["--json", "agent", "list"]):
        result = run(fake, *args)
        assert result.exit_code == 0
        assert json.loads(result.stdout) == {"agents": [record()]}


def test_agent_list_empty(fake: FakeDaemon) -> None:
    fake.answer("agent.list", {"agents": []})
    assert run(fake, "agent", "list").stdout == "no agents\n"


def test_agent_status_sheet(fake: FakeDaemon) -> None:
    live = {"cpuPercent": 12.5, "rssBytes": 1572864, "uptimeSeconds": 3725, "children": 3}
    agent = record(live=live, logDir="/home/u/.local/state/actant/logs/reviewer", overrides={"env": {"A": "1"}})
    fake.answer("agent.status", {"agent": agent})
    result = run(fake, "agent", "status", "reviewer")
    assert result.exit_code == 0
    assert fake.params("agent.status") == [{"name": "reviewer"}]
    sheet = dict(line.split(":", 1) for line in result.stdout.splitlines())
    sheet = {k: v.strip() for k, v in sheet.items()}
    assert sheet["status"] == "Running"
    assert sheet["pid"] == "1234"
    assert sheet["cpu"] == "12.5%"
    assert sheet["rss"] == "1.5 MiB"
    assert sheet["uptime"] == "1h 2m"
    assert sheet["children"] == "3"
    assert sheet["restarts"] == "2"
    assert sheet["last exit"].startswith("code 1 at ")
    assert sheet["logs"].endswith("logs/reviewer")
    assert sheet["env"] == "A=1"
    assert json.loads(run(fake, "agent", "status", "reviewer", "--json").stdout) == {"agent": agent}


def test_agent_status_signal_exit(fake: FakeDaemon) -> None:
    fake.answer("agent.status", {"agent": record(status="Crashed", pid=None, lastExit={"code": None, "signal": 9})})
    lines = run(fake, "agent", "status", "reviewer").stdout.splitlines()
    assert [line.split(":", 1)[1].strip() for line in lines if line.startswith("last exit:")] == ["signal SIGKILL (9)"]
    assert [line.split(":", 1)[1].strip() for line in lines if line.startswith("uptime:")] == ["-"]


def test_agent_create_sends_absolute_workdir_and_env(
    fake: FakeDaemon, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.answer("agent.create", lambda p: {"agent": record(p["name"], "Ready", None)})
    monkeypatch.chdir(short_tmp)
    (short_tmp / "repo").mkdir()
    result = run(
        fake, "agent", "create", "reviewer", "-t", "code-reviewer", "--work-dir", "repo", "-e", "A=1", "--env", "B=x=y"
    )
    assert result.exit_code == 0, result.stderr
    assert [{k: v for k, v in p.items() if k != "callerEnv"} for p in fake.params("agent.create")] == [
        {
            "name": "reviewer",
            "template": "code-reviewer",
            "workDir": str(short_tmp / "repo"),
            "overrides": {"env": {"A": "1", "B": "x=y"}},
        }
    ]
    assert result.stdout == "created reviewer (template code-reviewer, Ready)\n"


def test_agent_create_bad_env_is_a_usage_error(fake: FakeDaemon) -> None:
    result = run(fake, "agent", "create", "reviewer", "-t", "code-reviewer", "--env", "NOEQUALS")
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr
    assert fake.requests == []


def test_agent_create_unknown_template_exits_4(fake: FakeDaemon) -> None:
    fake.fail("agent.create", TemplateNotFound("unknown template 'nope'", name="nope"))
    result = run(fake, "agent", "create", "reviewer", "-t", "nope")
    assert result.exit_code == 4
    assert result.stderr == "error: unknown template 'nope'\n"


def test_agent_start_waits_by_default(fake: FakeDaemon) -> None:
    fake.answer("agent.start", lambda p: {"agent": record(status="Running" if p["wait"] else "Starting")})
    result = run(fake, "agent", "start", "reviewer")
    assert result.exit_code == 0
    assert result.stdout == "started reviewer (pid 1234)\n"
    assert result.stderr == ""  # progress only on a terminal
    result = run(fake, "agent", "start", "reviewer", "--no-wait")
    assert result.stdout == "starting reviewer (Starting)\n"
    sent = [{k: v for k, v in p.items() if k != "callerEnv"} for p in fake.params("agent.start")]
    assert sent == [{"name": "reviewer", "wait": True}, {"name": "reviewer", "wait": False}]


def test_agent_start_launch_failure_shows_stderr_tail(fake: FakeDaemon) -> None:
    error = AgentLaunch(
        "reviewer exited during start (code 1)", reason="exit code 1", stderrTail=["Traceback:", "ImportError: x"]
    )
    fake.fail("agent.start", error)
    result = run(fake, "agent", "start", "reviewer")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "error: reviewer exited during start (code 1)"
    assert lines[-2:] == ["    Traceback:", "    ImportError: x"]
    assert result.stdout == ""

    result = run(fake, "agent", "start", "reviewer", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "error": {
            "code": -32008,
            "message": "reviewer exited during start (code 1)",
            "errorCode": "AGENT_LAUNCH",
            "context": {"reason": "exit code 1", "stderrTail": ["Traceback:", "ImportError: x"]},
        }
    }
    assert result.stderr.startswith("error: reviewer exited during start")


def test_agent_not_found_exits_4(fake: FakeDaemon) -> None:
    fake.fail("agent.status", AgentNotFound("no agent named 'ghost'", name="ghost"))
    result = run(fake, "agent", "status", "ghost")
    assert result.exit_code == 4
    assert result.stderr == "error: no agent named 'ghost'\n"
    result = run(fake, "agent", "status", "ghost", "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["error"]["errorCode"] == "AGENT_NOT_FOUND"


def test_other_daemon_errors_exit_1(fake: FakeDaemon) -> None:
    fake.fail("agent.sync", NotSupported("agent.sync is not supported yet"))
    fake.fail("agent.restart", InvalidTransition("cannot go from Failed to Stopping"))
    assert run(fake, "agent", "sync", "reviewer").exit_code == 1
    result = run(fake, "agent", "restart", "reviewer")
    assert (result.exit_code, result.stderr) == (1, "error: cannot go from Failed to Stopping\n")


def test_stop_restart_destroy_sync_attach_detach(fake: FakeDaemon) -> None:
    fake.answer("agent.stop", {"agent": record(status="Stopped", pid=None)})
    fake.answer("agent.restart", {"agent": record(pid=777)})
    fake.answer("agent.destroy", lambda p: {"destroyed": p["name"] != "ghost", "name": p["name"]})
    fake.answer("agent.sync", {"agent": record()})
    fake.answer("agent.attach", {"agent": record(pid=4242)})
    fake.answer("agent.detach", {"agent": record(status="Stopped", pid=None)})
    assert run(fake, "agent", "stop", "reviewer", "--timeout", "5").stdout == "stopped reviewer\n"
    assert run(fake, "agent", "restart", "reviewer").stdout == "restarted reviewer (pid 777)\n"
    assert run(fake, "agent", "destroy", "reviewer", "--force").stdout == "destroyed reviewer\n"
    assert run(fake, "agent", "destroy", "ghost", "--force").stdout == "ghost does not exist\n"
    assert run(fake, "agent", "sync", "reviewer").stdout == "synced reviewer\n"
    assert run(fake, "agent", "attach", "reviewer", "--pid", "4242").stdout == "attached reviewer to pid 4242\n"
    assert run(fake, "agent", "detach", "reviewer").stdout == "detached reviewer\n"
    assert fake.params("agent.stop") == [{"name": "reviewer", "timeoutSeconds": 5.0}]
    assert fake.params("agent.destroy")[0] == {"name": "reviewer", "force": True}
    assert fake.params("agent.attach") == [{"name": "reviewer", "pid": 4242}]
    result = run(fake, "agent", "destroy", "reviewer", "--json")
    assert json.loads(result.stdout) == {"destroyed": True, "name": "reviewer"}
    assert fake.params("agent.destroy")[-1] == {"name": "reviewer", "force": False}


def test_logs(fake: FakeDaemon) -> None:
    fake.answer("agent.logs", {"lines": ["one", "two\n"]})
    result = run(fake, "agent", "logs", "reviewer", "-n", "2", "--stderr")
    assert result.stdout == "one\ntwo\n"
    assert fake.params("agent.logs") == [{"name": "reviewer", "stream": "stderr", "lines": 2}]
    doc = json.loads(run(fake, "agent", "logs", "reviewer", "--json").stdout)
    assert doc == {"agent": "reviewer", "stdout": ["one", "two\n"], "stderr": ["one", "two\n"]}


def test_logs_follow(fake: FakeDaemon) -> None:
    fake.answer("agent.logs", {"lines": ["old"], "subscription": "L1"})
    note = {"agent": "reviewer", "stream": "stdout"}
    fake.push_after(
        "agent.logs", [("log", {**note, "lines": ["new 1", "new 2"]}), ("log", {**note, "lines": ["new 3"]})]
    )
    result = run(fake, "agent", "logs", "-f", "reviewer", "--stdout")
    assert result.exit_code == 0
    assert result.stdout == "old\nnew 1\nnew 2\nnew 3\n"
    assert fake.params("agent.logs") == [{"name": "reviewer", "stream": "stdout", "lines": 50, "follow": True}]

    result = run(fake, "agent", "logs", "-f", "reviewer", "--json", "--stdout")
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert docs == [
        {"agent": "reviewer", "stream": "stdout", "lines": ["old"]},
        {**note, "lines": ["new 1", "new 2"]},
        {**note, "lines": ["new 3"]},
    ]


def test_run_prints_output_and_fails_on_nonzero_exit(fake: FakeDaemon) -> None:
    fake.answer(
        "agent.run",
        lambda p: {"exitCode": 0 if p["prompt"] != "fail" else 3, "result": "answer\n", "stderr": "", "costUsd": 0.5},
    )
    result = run(fake, "agent", "run", "reviewer", "review it", "--timeout", "60")
    assert (result.exit_code, result.stdout) == (0, "answer\n")
    assert "exit 0" in result.stderr and "cost $0.5000" in result.stderr  # the figures go to stderr
    assert fake.params("agent.run") == [{"name": "reviewer", "prompt": "review it", "timeoutSeconds": 60.0}]
    result = run(fake, "agent", "run", "reviewer", "fail")
    assert result.exit_code == 1
    assert result.stderr.endswith("error: reviewer exited with code 3\n")
    result = run(fake, "agent", "run", "reviewer", "-", "--json", "--continue", input="from stdin")
    assert json.loads(result.stdout)["exitCode"] == 0
    assert fake.params("agent.run")[-1] == {"name": "reviewer", "prompt": "from stdin", "continue": True}


def test_open_runs_the_command_and_attaches_it(fake: FakeDaemon, short_tmp: Path) -> None:
    out = short_tmp / "out.txt"
    code = f"import os; open({str(out)!r}, 'w').write(os.getcwd() + ' ' + os.environ['ACTANT_AGENT'])"
    fake.answer(
        "agent.launchSpec",
        {
            "argv": [sys.executable, "-c", code],
            "cwd": str(short_tmp),
            "env": {"ACTANT_AGENT": "reviewer"},
            "mode": "open",
            "masked": [],
        },
    )
    fake.answer("agent.attach", {"agent": record()})
    fake.answer("agent.detach", {"agent": record(status="Stopped")})
    result = run(fake, "agent", "open", "reviewer")
    assert result.exit_code == 0, result.stderr
    assert out.read_text() == f"{short_tmp} reviewer"
    assert [r["method"] for r in fake.requests] == ["agent.launchSpec", "agent.attach", "agent.detach"]
    assert fake.params("agent.attach")[0]["name"] == "reviewer"
    assert fake.params("agent.attach")[0]["pid"] > 0
    assert fake.params("agent.launchSpec") == [{"name": "reviewer", "mode": "open", "reveal": True}]


def test_open_refuses_a_masked_launch_spec(fake: FakeDaemon, short_tmp: Path) -> None:
    marker = short_tmp / "ran"
    fake.answer("agent.launchSpec", {"argv": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"], "cwd": None,
                                     "env": {"TOKEN": "********"}, "mode": "open", "masked": ["TOKEN"]})  # fmt: skip
    result = run(fake, "agent", "open", "reviewer")
    assert result.exit_code == 1 and "masked TOKEN" in result.stderr
    assert not marker.exists() and "agent.attach" not in [r["method"] for r in fake.requests]


def test_open_of_a_missing_program_says_how_to_install_it(fake: FakeDaemon) -> None:
    fake.answer("agent.launchSpec", {"argv": ["actant-test-no-such-cli"], "cwd": None, "env": {}, "mode": "open",
                                     "masked": [], "installHint": "npm install -g no-such-cli"})  # fmt: skip
    fake.answer("agent.attach", {"agent": record()})
    fake.answer("agent.detach", {"agent": record(status="Stopped")})
    result = run(fake, "agent", "open", "reviewer")
    assert result.exit_code == 127
    assert "cannot run actant-test-no-such-cli" in result.stderr and "npm install -g no-such-cli" in result.stderr


def test_open_without_attach_support_still_runs(fake: FakeDaemon) -> None:
    fake.answer("agent.launchSpec", {"argv": [sys.executable, "-c", "raise SystemExit(5)"], "cwd": None, "env": {},
                                     "mode": "open", "masked": []})  # fmt: skip
    fake.fail("agent.attach", NotSupported("attach is not supported yet"))
    result = run(fake, "agent", "open", "reviewer")
    assert result.exit_code == 5  # the program's exit status passes through
    assert "warning: running unsupervised: attach is not supported yet" in result.stderr
    assert "exited with code 5" in result.stderr
    assert "agent.detach" not in [r["method"] for r in fake.requests]


# -- daemon not running -------------------------------------------------------------------------------------


def test_not_running_exits_3_with_how_to_start(short_tmp: Path) -> None:
    path = short_tmp / "none.sock"
    result = run(path, "agent", "list")
    assert result.exit_code == 3
    assert result.stderr == (
        f"error: actantd is not running (no socket at {path}); start it with `actantctl daemon start` "
        "(or run `actantd` in a terminal)\n"
    )
    result = run(path, "daemon", "status", "--json")
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["errorCode"] == "DAEMON_NOT_RUNNING"
    assert error["context"] == {"socket": str(path)}


# -- daemon status ------------------------------------------------------------------------------------------


def test_daemon_status(fake: FakeDaemon) -> None:
    status = {
        "version": "0.1.0",
        "pid": 99,
        "uptimeSeconds": 90061,
        "home": "/h",
        "configs": "/c",
        "socket": str(fake.path),
        "instances": {"total": 3, "byStatus": {"Running": 2, "Stopped": 1}},
        "configErrors": ["templates/x.json: $.skills[0]: unknown skill 'y'"],
        "connections": 1,
    }
    fake.answer("daemon.status", status)
    result = run(fake, "daemon", "status")
    assert result.exit_code == 0
    assert "uptime:        1d 1h" in result.stdout
    assert "instances:     3 (2 Running, 1 Stopped)" in result.stdout
    assert "  templates/x.json: $.skills[0]: unknown skill 'y'" in result.stdout
    assert json.loads(run(fake, "daemon", "status", "--json").stdout) == status


# -- catalog ------------------------------------------------------------------------------------------------

KINDS = ["template", "skill", "prompt", "workflow", "mcp", "backend"]


@pytest.mark.parametrize("kind", KINDS)
def test_catalog_list_and_show_json(fake: FakeDaemon, kind: str) -> None:
    listing = {"items": [{"name": "a", "description": "first", "file": f"/c/{kind}s/a.json"}]}
    item = {"item": {"version": "1.0", "name": "a"}, "file": f"/c/{kind}s/a.json"}
    fake.answer(f"{kind}.list", listing)
    fake.answer(f"{kind}.get", item)
    assert json.loads(run(fake, kind, "list", "--json").stdout) == listing
    assert json.loads(run(fake, kind, "show", "a", "--json").stdout) == item
    assert fake.params(f"{kind}.get") == [{"name": "a"}]
    table = run(fake, kind, "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "DESCRIPTION"]
    assert table[1].split() == ["a", "first"]


def test_template_list_shows_kind_specific_columns(fake: FakeDaemon) -> None:
    fake.answer(
        "template.list",
        {
            "items": [
                {
                    "name": "code-reviewer",
                    "description": "Reviews PRs",
                    "file": "/f",
                    "backend": "claude-code",
                    "launchMode": "Service",
                },
                {"name": "fixer", "description": "", "file": "/g", "backend": "codex", "launchMode": "OneShot"},
            ]
        },
    )
    lines = run(fake, "template", "list").stdout.splitlines()
    assert lines[0].split() == ["NAME", "BACKEND", "LAUNCH", "MODE", "DESCRIPTION"]
    assert lines[1].split() == ["code-reviewer", "claude-code", "Service", "Reviews", "PRs"]
    assert lines[2].split() == ["fixer", "codex", "OneShot", "-"]


def test_show_prints_fields_then_content(fake: FakeDaemon) -> None:
    skill = {
        "version": "1.0",
        "name": "code-review",
        "description": "How to review",
        "content": "# Review\n\nBe kind.\n",
    }
    fake.answer("skill.get", {"item": skill, "file": "/c/skills/code-review.json"})
    out = run(fake, "skill", "show", "code-review").stdout
    assert out.startswith("version:     1.0\nname:        code-review\n")
    assert "file:        /c/skills/code-review.json\n\n# Review\n\nBe kind.\n" in out


def test_template_show_not_found_exits_4(fake: FakeDaemon) -> None:
    fake.fail("template.get", TemplateNotFound("unknown template 'x'"))
    assert run(fake, "template", "show", "x").exit_code == 4


def test_template_validate_sends_absolute_path(
    fake: FakeDaemon, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (short_tmp / "t.json").write_text("{}")
    monkeypatch.chdir(short_tmp)
    fake.answer("template.validate", lambda p: {"valid": True, "errors": [], "warnings": ["no description"]})
    result = run(fake, "template", "validate", "t.json")
    assert result.exit_code == 0
    assert fake.params("template.validate") == [{"path": str(short_tmp / "t.json")}]
    assert result.stdout == "warning: no description\nt.json is valid (1 warning(s))\n"


def test_template_validate_invalid_exits_1(fake: FakeDaemon, short_tmp: Path) -> None:
    (short_tmp / "t.json").write_text("{}")
    verdict = {"valid": False, "errors": ["t.json: $.skills[1]: unknown skill 'code-reveiw'"], "warnings": []}
    fake.answer("template.validate", verdict)
    result = run(fake, "template", "validate", str(short_tmp / "t.json"))
    assert result.exit_code == 1
    assert result.stdout == "error: t.json: $.skills[1]: unknown skill 'code-reveiw'\n"
    assert result.stderr == f"error: {short_tmp / 't.json'} is invalid (1 error(s))\n"
    result = run(fake, "template", "validate", str(short_tmp / "t.json"), "--json")
    assert (result.exit_code, json.loads(result.stdout)) == (1, verdict)


def test_template_validate_missing_file_is_usage_error(fake: FakeDaemon, short_tmp: Path) -> None:
    assert run(fake, "template", "validate", str(short_tmp / "nope.json")).exit_code == 2


# -- config -------------------------------------------------------------------------------------------------


def test_config_validate(fake: FakeDaemon) -> None:
    fake.answer("config.validate", {"valid": True, "errors": [], "warnings": []})
    result = run(fake, "config", "validate")
    assert (result.exit_code, result.stdout) == (0, "configs is valid\n")
    fake.answer("config.validate", {"valid": False, "errors": ["a", "b"], "warnings": []})
    result = run(fake, "config", "validate", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["errors"] == ["a", "b"]
    assert result.stderr == "error: configs is invalid (2 error(s))\n"


def test_config_validation_error_lists_errors(fake: FakeDaemon) -> None:
    fake.fail("config.migrate", ConfigValidation("configs do not load", errors=["x.json: $: bad"]))
    result = run(fake, "config", "migrate")
    assert result.exit_code == 1
    assert result.stderr == "error: configs do not load\n  x.json: $: bad\n"


def test_config_migrate(fake: FakeDaemon) -> None:
    changes = [{"file": "templates/a.json", "from": "0.9", "to": "1.0"}]
    fake.answer(
        "config.migrate",
        lambda p: {"changes": changes, "backup": None if p["dryRun"] else "/c/.backup/1", "dryRun": p["dryRun"]},
    )
    result = run(fake, "config", "migrate", "--dry-run")
    assert result.stdout == "templates/a.json: 0.9 → 1.0\nwould migrate 1 file(s) (dry run, nothing written)\n"
    result = run(fake, "config", "migrate")
    assert result.stdout.endswith("migrated 1 file(s), originals backed up to /c/.backup/1\n")
    assert fake.params("config.migrate") == [{"dryRun": True}, {"dryRun": False}]
    assert json.loads(run(fake, "config", "migrate", "--json").stdout)["dryRun"] is False


# -- events and history -------------------------------------------------------------------------------------

TRANSITION = {
    "id": 7,
    "type": "transition",
    "agent": "reviewer",
    "at": iso(30),
    "from": "Running",
    "to": "Crashed",
    "reason": "exit code 1",
}
COMMAND = {
    "id": 8,
    "type": "command",
    "agent": "reviewer",
    "at": iso(20),
    "method": "agent.start",
    "outcome": "ok",
    "durationMs": 12,
}
EXECUTION = {
    "id": 9,
    "type": "execution",
    "agent": "reviewer",
    "at": iso(10),
    "exitCode": 0,
    "durationMs": 900,
    "promptPreview": "review",
}


def test_events_query(fake: FakeDaemon) -> None:
    fake.answer("events.query", {"events": [TRANSITION, COMMAND]})
    result = run(
        fake,
        "events",
        "--agent",
        "reviewer",
        "--type",
        "transition",
        "--type",
        "command",
        "--since",
        "10m",
        "--limit",
        "5",
    )
    assert result.exit_code == 0
    (params,) = fake.params("events.query")
    since = datetime.fromisoformat(params.pop("since"))
    assert abs((datetime.now(UTC) - since).total_seconds() - 600) < 60
    assert params == {"agent": "reviewer", "types": ["transition", "command"], "limit": 5}
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TIME", "AGENT", "TYPE", "DETAILS"]
    assert lines[1].endswith("reviewer  transition  Running → Crashed (exit code 1)")
    assert lines[2].endswith("reviewer  command     agent.start  ok  12 ms")
    assert json.loads(run(fake, "events", "--json").stdout) == {"events": [TRANSITION, COMMAND]}


def test_events_since_iso_and_bad_value(fake: FakeDaemon) -> None:
    fake.answer("events.query", {"events": []})
    assert run(fake, "events", "--since", "2024-05-01T12:00:00Z").stdout == "no events\n"
    assert fake.params("events.query") == [{"since": "2024-05-01T12:00:00+00:00"}]
    assert run(fake, "events", "--since", "yesterday-ish").exit_code == 2


def test_events_follow_streams_one_object_per_line(fake: FakeDaemon) -> None:
    fake.answer("events.subscribe", {"subscription": "S"})
    fake.push_after(
        "events.subscribe",
        [("event", {**TRANSITION, "subscription": "S"}), ("event", {**COMMAND, "subscription": "S"})],
    )
    result = run(fake, "events", "-f", "--agent", "reviewer", "--type", "transition", "--json")
    assert result.exit_code == 0
    assert [json.loads(line) for line in result.stdout.splitlines()] == [TRANSITION, COMMAND]
    assert fake.params("events.subscribe") == [{"agent": "reviewer", "types": ["transition"]}]
    assert fake.params("events.query") == []

    result = run(fake, "events", "-f")
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "reviewer" in lines[0] and lines[0].endswith("Running → Crashed (exit code 1)")


def test_events_follow_with_backlog_prints_each_event_once(fake: FakeDaemon) -> None:
    fake.answer("events.subscribe", {"subscription": "S"})
    fake.answer("events.query", {"events": [TRANSITION, COMMAND]})
    fake.push_after(
        "events.subscribe", [("event", {**COMMAND, "subscription": "S"}), ("event", {**EXECUTION, "subscription": "S"})]
    )
    result = run(fake, "events", "-f", "--limit", "2", "--json")
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [7, 8, 9]


def test_history(fake: FakeDaemon) -> None:
    fake.answer("events.query", {"events": [COMMAND, EXECUTION]})
    result = run(fake, "history", "--agent", "reviewer")
    assert fake.params("events.query") == [
        {"types": ["command", "execution"], "limit": 50, "agent": "reviewer"},
        {"types": ["execution"], "limit": 10_000, "agent": "reviewer"},  # the totals of its runs
    ]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TIME", "AGENT", "TYPE", "DETAILS"]
    assert "execution  exit 0  900 ms  'review'  cost" in lines[2]
    assert "Totals of runs per agent:" in result.stdout
    doc = json.loads(run(fake, "history", "--limit", "1", "--json").stdout)
    assert doc["events"] == [COMMAND, EXECUTION] and doc["totals"][EXECUTION["agent"]]["runs"] == 1
    assert fake.params("events.query")[-2]["limit"] == 1
    run(fake, "history", "reviewer")  # NAME as an argument, like every other command
    assert fake.params("events.query")[-2]["agent"] == "reviewer"


# -- completion ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(fake: FakeDaemon, shell: str) -> None:
    result = run(fake, "completion", shell)
    assert result.exit_code == 0
    assert "_ACTANTCTL_COMPLETE" in result.stdout
    assert f"{shell}_complete" in result.stdout
    assert json.loads(run(fake, "completion", shell, "--json").stdout)["shell"] == shell
    assert fake.requests == []


def test_completion_bad_shell_is_usage_error(fake: FakeDaemon) -> None:
    assert run(fake, "completion", "tcsh").exit_code == 2


def test_units() -> None:
    from actantctl.output import human_bytes, human_duration
    from actantctl.views import milliseconds

    assert [milliseconds(v) for v in (0.4, 4.483, 12.7, 1019.3)] == ["0.4 ms", "4.5 ms", "13 ms", "1.02 s"]
    assert [human_bytes(v) for v in (None, 512, 1536, 3 * 1024**3)] == ["-", "512 B", "1.5 KiB", "3.0 GiB"]
    assert [human_duration(v) for v in (None, 0, 59, 61, 3725, 90061)] == ["-", "0s", "59s", "1m 1s", "1h 2m", "1d 1h"]
