"""The README's walk-through (issue #11): a daemon run by hand on its own home, ``daemon stop --keep-agents``,
then ``daemon start`` with only ``ACTANT_SOCKET`` exported starts the *same* home again (found through
``{socket}.home``), which re-adopts the agent left running, instead of a fresh daemon on the default home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.e2e.test_cli import CTL
from tests.harness import make_configs


def test_daemon_start_finds_the_home_its_socket_belongs_to(short_tmp: Path) -> None:
    home, sock, user_home = short_tmp / "run" / "home", short_tmp / "run" / "actantd.sock", short_tmp / "user"
    configs = make_configs(short_tmp)
    user_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACTANT_", "XDG_", "NOTIFY_", "LISTEN_"))}
    env.update(HOME=str(user_home), ACTANT_SOCKET=str(sock))

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CTL, *args], capture_output=True, text=True, env=env, timeout=60)

    def ok(*args: str) -> str:
        done = ctl(*args)
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    # `make run`: the daemon in the foreground with an explicit home, configs and socket.
    foreground = subprocess.Popen([sys.executable, "-m", "actantd", "--home", str(home), "--configs", str(configs),
                                   "--socket", str(sock)], env=env, stderr=subprocess.PIPE)  # fmt: skip
    agent_pid = None
    try:
        deadline = time.monotonic() + 30
        while ctl("daemon", "status").returncode != 0:  # until the foreground daemon answers
            assert foreground.poll() is None and time.monotonic() < deadline, "actantd did not come up"
            time.sleep(0.05)
        assert json.loads((sock.parent / "actantd.sock.home").read_text())["home"] == str(home)
        ok("agent", "create", "hello", "--template", "sleeper")
        agent_pid = json.loads(ok("agent", "start", "hello", "--json"))["agent"]["pid"]
        ok("daemon", "stop", "--keep-agents")
        assert foreground.wait(30) == 0
        assert psutil.pid_exists(agent_pid)

        again = ctl("daemon", "start")
        assert again.returncode == 0, again.stderr
        assert f"using home {home}, which {sock} belongs to" in again.stderr
        status = json.loads(ok("daemon", "status", "--json"))
        assert (status["home"], status["configs"]) == (str(home), str(configs))
        assert not (user_home / ".local" / "state" / "actant").exists(), "no second home was created"
        agents = json.loads(ok("agent", "list", "--json"))["agents"]
        assert [(a["name"], a["status"], a["pid"]) for a in agents] == [("hello", "Running", agent_pid)]
        ok("agent", "stop", "hello")
        ok("daemon", "stop")
    finally:
        if foreground.poll() is None:
            foreground.terminate()
            foreground.wait(30)
        if ctl("daemon", "status").returncode == 0:
            ctl("daemon", "stop")
        if agent_pid is not None and psutil.pid_exists(agent_pid):
            psutil.Process(agent_pid).kill()
