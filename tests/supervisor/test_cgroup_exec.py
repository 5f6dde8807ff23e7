"""Agents enter their cgroup through the /bin/sh wrapper (cgroup_exec): in from the first instruction, same
pid, exact argv and environment, and the exact errors and fallbacks of a plain start."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from actantd.errors import AgentLaunch
from actantd.supervisor import cgroup, cgroup_exec, exits, kill
from actantd.supervisor.spawn import ignored_signals, spawn

needs_cgroups = pytest.mark.skipif(cgroup.base() is None, reason="no writable cgroup v2 hierarchy here")
needs_wrapper = pytest.mark.skipif(not cgroup_exec.shell_passes_env(), reason="this /bin/sh rewrites environments")

# The agent is a shell: its first commands are builtins reading its own cgroup (no fork, nothing can run
# before them), then a forked `grep` reads the child's, then a child keeps it alive.
FIRST_THING = (
    'while read -r l; do case $l in 0::*) echo "agent $l";; esac; done </proc/self/cgroup; '
    "grep '^0::' /proc/self/cgroup; sleep 1000"
)


@pytest.fixture(autouse=True)
def no_inherited_ignored_signals() -> Iterator[None]:
    """Be the daemon, which resets inherited ignored signals at start (``spawn.default_ignored_signals``): run
    with SIGINT ignored (CI, a background job), every start here would otherwise take the ``preexec_fn`` path,
    as it must for a process that still ignores signals. SIGINT gets Python's usual handler, not SIG_DFL."""
    saved = {sig: signal.getsignal(sig) for sig in ignored_signals()}
    for sig in saved:
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def wrapped_starts(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What every wrapped start reported on its status pipe (empty list: no start took the wrapper)."""
    said: list[bytes] = []
    real: Callable[[int], bytes] = cgroup_exec.outcome

    def recording(fd: int) -> bytes:
        said.append(real(fd))
        return said[-1]

    monkeypatch.setattr(cgroup_exec, "outcome", recording)
    return said


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if e)


@needs_cgroups
@needs_wrapper
async def test_the_agent_and_its_first_child_start_inside_with_the_exact_argv_and_env(
    tmp_path: Path, wrapped_starts: list[bytes]
) -> None:
    instance_id = str(uuid.uuid4())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PWD": "/somewhere/else", "ODD": "a\nb $x `y`"}
    env[kill.INSTANCE_ENV] = instance_id
    argv = ["sh", "-c", FIRST_THING]
    out = tmp_path / "stdout.log"
    spawned = spawn(argv, tmp_path, env, out, tmp_path / "stderr.log")
    exited = exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    path = cgroup.path_of(instance_id)
    assert path is not None
    try:
        assert wrapped_starts == [b""]  # through the wrapper, which joined and exec'd
        # Once spawn returns, the pid is the agent's own: argv[0] as given, the env as given, nothing added.
        with open(f"/proc/{spawned.pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[:-1] == [a.encode() for a in argv]
        assert _environ(spawned.pid) == env
        while len(out.read_text().splitlines()) < 2:
            await asyncio.sleep(0.01)  # the agent writes both lines at once
        mount = cgroup._cgroup2_mount()
        assert mount is not None
        expected = "0::/" + str(path.relative_to(mount))
        assert out.read_text().splitlines()[:2] == [f"agent {expected}", expected]
        assert cgroup.cgroup_of(spawned.pid) == path
    finally:
        await kill.terminate_tree(spawned.pid, instance_id=instance_id, timeout=0.5, exited=exited)
        exits.reap_orphans()
    assert not path.exists()


@needs_wrapper
async def test_a_refused_cgroup_write_starts_the_agent_outside_and_says_so(
    tmp_path: Path, wrapped_starts: list[bytes], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(cgroup, "agent_cgroup", lambda _id: tmp_path / "no-such-cgroup")
    env = dict(os.environ, ACTANT_INSTANCE_ID=str(uuid.uuid4()))
    with caplog.at_level(logging.WARNING, logger="actantd.supervisor.spawn"):
        spawned = spawn([sys.executable, "-c", "print('ran')"], tmp_path, env, tmp_path / "o", tmp_path / "e")
    info = await exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    assert wrapped_starts == [cgroup_exec.JOIN_REFUSED]
    assert (info.code, (tmp_path / "o").read_text()) == (0, "ran\n")
    assert "runs outside its cgroup" in caplog.text
    assert (tmp_path / "e").read_text() == ""  # the shell's own complaint went nowhere


@needs_wrapper
def test_a_failed_exec_behind_the_wrapper_still_names_the_errno(
    tmp_path: Path, wrapped_starts: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroup, "agent_cgroup", lambda _id: tmp_path)
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    env = dict(os.environ, ACTANT_INSTANCE_ID=str(uuid.uuid4()))
    with pytest.raises(AgentLaunch, match="permission denied") as caught:
        spawn([str(script)], tmp_path, env, tmp_path / "o", tmp_path / "e")
    assert caught.value.context["errno"] == 13
    assert len(wrapped_starts) == 1 and cgroup_exec.EXEC_FAILED in wrapped_starts[0]
    # The shell that failed was reaped, not left as a zombie child.
    assert not [c for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]


def test_what_does_not_take_the_wrapper(tmp_path: Path) -> None:
    """Whatever a shell could change or resolve differently starts the exact way (with a preexec_fn)."""
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01 not a program")
    junk.chmod(0o755)
    good = {"PATH": "/usr/bin:/bin"}

    def plan(argv0: str, executable: str, env: dict[str, str]) -> cgroup_exec.Plan | None:
        return cgroup_exec.plan(tmp_path, [argv0], executable, str(tmp_path), env)

    assert plan(str(junk), str(junk), good) is None  # a shell would run it as a script
    assert plan("true", "/usr/bin/true", {**good, "IFS": ":"}) is None  # the shell resets IFS
    assert plan("true", "/usr/bin/true", {**good, "A.B": "1"}) is None  # not a shell name: dropped
    assert plan("true", "/usr/bin/true", {"PATH": "bin:/usr/bin"}) is None  # relative PATH entry
    assert plan("../x/true", "/usr/bin/true", good) is None
    assert plan("-true", "/usr/bin/-true", good) is None  # `exec` would parse it as an option
    if cgroup_exec.shell_passes_env():
        wrapped = plan("true", "/usr/bin/true", {**good, "PWD": "/x"})
        assert wrapped is not None and wrapped.argv[-1] == "true" and wrapped.argv[-2] == "/x"


async def test_the_slow_path_still_joins_for_an_env_the_shell_would_change(
    tmp_path: Path, wrapped_starts: list[bytes]
) -> None:
    if cgroup.base() is None:
        pytest.skip("no writable cgroup v2 hierarchy here")
    instance_id = str(uuid.uuid4())
    env = dict(os.environ, ACTANT_INSTANCE_ID=instance_id, IFS=":")
    spawned = spawn(["/bin/sleep", "1000"], tmp_path, env, tmp_path / "o", tmp_path / "e")
    exited = exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    try:
        assert wrapped_starts == []
        assert cgroup.cgroup_of(spawned.pid) == cgroup.path_of(instance_id)
        assert _environ(spawned.pid)["IFS"] == ":"
    finally:
        await kill.terminate_tree(spawned.pid, instance_id=instance_id, sig=signal.SIGKILL, timeout=0.5, exited=exited)
        exits.reap_orphans()
