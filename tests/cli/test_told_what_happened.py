"""Being told what happened (issue #11): config errors and reloads in the daemon's own log, invalid templates
marked in ``template list``, a repeated create that changes nothing, ``--json`` help per command."""

from __future__ import annotations

import time

from tests.e2e.test_cli import CTL, _env, ctl, js, ok
from tests.harness import Daemon, add_template, write_json


def _wait_for(pred: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_config_errors_and_reloads_reach_the_daemon_log_and_template_list(daemon_process: Daemon) -> None:
    daemon = daemon_process  # a process of its own: its stderr is what `make run` shows
    sock = daemon.socket
    add_template(daemon, {"name": "extra", "backend": "custom", "command": ["true"]})
    _wait_for(lambda: "config reloaded: template/extra changed" in daemon.read_stderr(), "reload not logged")
    conn = daemon.conn()
    try:
        conn.call("events.subscribe", {"types": ["config.error"]})
        write_json(daemon.configs / "templates" / "extra.json", {"version": "1.0", "name": "extra",
                   "backend": "custom", "command": ["true"], "launchMod": "Service"})  # fmt: skip
        write_json(daemon.configs / "templates" / "fresh.json", {"version": "1.0", "name": "fresh",
                   "skills": ["code-reveiw"]})  # fmt: skip
        conn.wait_event(lambda e: "fresh.json" in e.get("message", ""))
    finally:
        conn.close()
    _wait_for(lambda: "unknown skill 'code-reveiw' (did you mean 'code-review'?)" in daemon.read_stderr(),
              "config error not logged by the daemon")  # fmt: skip
    log = daemon.read_stderr()
    assert "WARNING actantd: config: templates/extra.json: $.launchMod: unknown field 'launchMod'" in log
    table = ok(sock, "template", "list").splitlines()
    extra = next(line for line in table if line.startswith("extra !"))
    assert "INVALID: templates/extra.json: $.launchMod: unknown field" in extra
    assert "the last good version is in force" in extra
    fresh = next(line for line in table if line.startswith("fresh !"))
    assert "unknown skill 'code-reveiw'" in fresh
    assert table[-1].startswith("! 2 invalid files: `actantctl config validate`")
    demo = next(line for line in table if line.startswith("demo "))
    assert "INVALID" not in demo
    items = {i["name"]: i for i in js(sock, "template", "list")["items"]}
    assert items["extra"]["inForce"] == "last good version" and items["extra"]["problems"]
    assert "problems" not in items["demo"]


def test_repeated_identical_create_says_nothing_changed(daemon: Daemon) -> None:
    sock = daemon.socket
    assert ok(sock, "agent", "create", "same", "-t", "demo", "-e", "A=1") == "created same (template demo, Ready)\n"
    again = ok(sock, "agent", "create", "same", "-t", "demo", "-e", "A=1")
    assert again == "same already exists with these arguments; nothing changed (Ready)\n"
    assert js(sock, "agent", "create", "same", "-t", "demo", "-e", "A=1")["created"] is False
    differs = ctl(sock, "agent", "create", "same", "-t", "demo", "-e", "A=2")
    assert differs.returncode != 0 and "already exists" in differs.stderr


def test_help_texts() -> None:
    import subprocess

    def help_of(*args: str) -> str:
        return subprocess.run([*CTL, *args, "--help"], capture_output=True, text=True, env=_env(), timeout=30).stdout

    assert "XDG_STATE_HOME" in help_of()
    for streaming in (("events",), ("agent", "logs")):
        assert "one object per line" in " ".join(help_of(*streaming).split()), streaming
    for plain in (("agent", "list"), ("agent", "start"), ("template", "list"), ("daemon", "status")):
        assert "one object per line" not in " ".join(help_of(*plain).split()), plain
