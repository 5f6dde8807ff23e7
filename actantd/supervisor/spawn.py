"""Start an agent process so that it can outlive the daemon and be found again.

Design decision (rather than ``asyncio.create_subprocess_exec``, on purpose): agents are
started with :class:`subprocess.Popen`, and their exit is detected with a pidfd registered on the event loop
(:mod:`actantd.supervisor.exits`). A pidfd works the same for a child we started and for a process we re-adopt
after a daemon restart or attach with ``agent attach``, so there is one exit path, not two. The daemon reaps
its own children itself; asyncio's child watchers would otherwise race it for ``waitpid`` and, since the
daemon is a child subreaper, for orphaned grandchildren too.

What makes an agent survive a daemon crash:

- a new session (``start_new_session=True``): the agent is a session and process-group leader, so a signal
  to the daemon's group or terminal never reaches it, and the whole agent is addressable as one group;
- stdin from ``/dev/null`` and no pipes back to the daemon: stdout/stderr are log files opened
  ``O_APPEND``, so a write never blocks or fails with ``EPIPE`` once the daemon is gone, and the daemon's
  rotation (copy-truncate, see :mod:`.logs`) never leaves the writer at a stale offset;
- ``close_fds``: the agent inherits none of the daemon's sockets or its lock file, so a surviving agent
  never keeps the daemon's single-writer lock held or its socket alive.

An agent starts with default signal dispositions, as under supervisord or systemd: an ignored signal stays
ignored across ``exec``, so a daemon started from a background job (SIGINT and SIGQUIT ignored) or under
``nohup`` would otherwise hand that on, and an agent told to stop with SIGINT would never hear it.
``actantd`` resets what it inherited as ignored at start-up (:func:`default_ignored_signals`); ``spawn``
resets in the child whatever is still ignored when the daemon is embedded (the tests' in-process daemon).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from actantd.errors import AgentLaunch
from actantd.libc import libc
from actantd.supervisor import cgroup, cgroup_exec, exits

INSTANCE_ENV = "ACTANT_INSTANCE_ID"
"""The marker the manager sets on every agent (the same as :data:`actantd.supervisor.kill.INSTANCE_ENV`)."""

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

LOG_MODE = 0o600
"""Agent output can carry tokens and file contents: owner-only, like the rest of ``{home}``."""

LOG_DIR_MODE = 0o700

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Spawned:
    """A started agent. Keep ``popen`` until its exit is reaped so it never warns "still running".

    ``create_time`` is psutil's, the value persisted as ``pidCreateTime`` to tell this process from a later
    one that reuses the pid (see :func:`actantd.supervisor.exits.is_same_process`).
    """

    pid: int
    create_time: float
    popen: subprocess.Popen[bytes]
    executable: str


def resolve_executable(argv0: str, cwd: str | os.PathLike[str], env: Mapping[str, str]) -> str | None:
    """Find what ``exec`` will run, the way the child will see it: the agent's PATH and cwd, not ours.

    A name with a slash is taken relative to ``cwd`` (as ``Popen(cwd=...)`` does); a bare name is looked
    up on the env's PATH (``os.defpath`` when the env has none, like ``execvpe``). Returns None when not found.
    """
    if "/" in argv0:
        candidate = os.path.normpath(os.path.join(os.fspath(cwd), argv0))
        return candidate if os.path.exists(candidate) else None
    return shutil.which(argv0, path=env.get("PATH", os.defpath))


_RESTORED_BY_POPEN = frozenset({signal.SIGPIPE, signal.SIGXFSZ})
"""Python ignores these itself; ``Popen(restore_signals=True)``, the default, resets them in the child."""


def ignored_signals() -> list[int]:
    """The signals this process ignores that a child would inherit as ignored across ``exec``."""
    skip = _RESTORED_BY_POPEN | {signal.SIGKILL, signal.SIGSTOP}
    return [int(sig) for sig in signal.valid_signals() if sig not in skip and signal.getsignal(sig) is signal.SIG_IGN]


def default_ignored_signals() -> None:
    """Set every inherited SIG_IGN back to SIG_DFL (main thread, at start-up), so agents start with defaults.

    The daemon then spawns on Popen's fast path (no ``preexec_fn``); the signals it handles (SIGTERM, SIGINT,
    SIGHUP) get their handlers afterwards, and caught signals are reset to default by ``exec`` anyway.
    """
    for sig in ignored_signals():
        signal.signal(sig, signal.SIG_DFL)


def _reset_to_default(signals: list[int]) -> None:
    for sig in signals:
        signal.signal(sig, signal.SIG_DFL)


def _child_setup(cgroup_fd: int | None, ignored: list[int]) -> Callable[[], None] | None:
    """What must run in the child between fork and exec, or None when nothing must (a ``preexec_fn`` costs
    subprocess's vfork path): joining the agent's cgroup, so nothing it forks can be outside, when the
    ``/bin/sh`` wrapper of :mod:`.cgroup_exec` is not used, and resetting the signals a host process ignores
    (an embedded daemon; agents start with default dispositions)."""
    if cgroup_fd is None and not ignored:
        return None

    def setup() -> None:
        if cgroup_fd is not None:
            cgroup.join_in_child(cgroup_fd)
        _reset_to_default(ignored)

    return setup


def _open_log(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=LOG_DIR_MODE)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_MODE)


def _not_found(argv0: str, install_hint: str | None) -> AgentLaunch:
    where = "on PATH" if "/" not in argv0 else "(no such file)"
    message = f"'{argv0}' not found {where}"
    if install_hint:
        message += f"; install it with: {install_hint}"
    return AgentLaunch(message, executable=argv0, hint=install_hint)


def _launch_error(exc: OSError, executable: str, argv0: str, cwd: str, install_hint: str | None) -> AgentLaunch:
    """Name the cause in words a user can act on; the context keeps the raw errno for tools."""
    code = exc.errno
    context = {"executable": argv0, "path": executable, "cwd": cwd, "errno": code, "hint": install_hint}
    if exc.filename is not None and os.fspath(exc.filename) == cwd:
        # Python reports a failed chdir in the child with the cwd as the filename.
        return AgentLaunch(f"cannot enter working directory '{cwd}': {exc.strerror}", **context)
    if code == errno.ENOENT:
        return _not_found(argv0, install_hint)
    if code == errno.EACCES:
        return AgentLaunch(f"cannot execute '{executable}': permission denied (not executable?)", **context)
    if code == errno.ENOEXEC:
        return AgentLaunch(f"cannot execute '{executable}': exec format error (a script needs a '#!' line)", **context)
    return AgentLaunch(f"cannot start '{executable}': {exc.strerror or exc}", **context)


def spawn(
    argv: Sequence[str],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    stdout_path: str | os.PathLike[str],
    stderr_path: str | os.PathLike[str],
    install_hint: str | None = None,
    *,
    stdio_pipes: bool = False,
) -> Spawned:
    """Start ``argv`` detached from the daemon (see module docstring); raise :class:`AgentLaunch` on failure.

    ``env`` is the complete environment of the agent (:mod:`actantd.launch` adds ``ACTANT_INSTANCE_ID`` so
    :func:`actantd.supervisor.kill.find_instance_processes` can find escaped descendants later). With that
    marker and cgroups available the agent starts inside its own cgroup (:mod:`.cgroup`), normally through
    the ``/bin/sh`` wrapper of :mod:`.cgroup_exec` (vfork kept; returns once the agent's own exec succeeded),
    else by joining in the child from a ``preexec_fn``. The same
    path may be given for stdout and stderr to interleave them in one file. Call
    :func:`actantd.supervisor.exits.watch_exit` right after, without awaiting in between, so the exit is
    watched before anything else could reap it.

    ``stdio_pipes``: stdin and stdout are pipes to the daemon (``popen.stdin``/``popen.stdout``) instead of
    /dev/null and the log, for agents the daemon talks to over stdio (ACP); such an agent cannot outlive the
    daemon usefully, see :mod:`actantd.acp.session`.
    """
    if not argv:
        raise AgentLaunch("empty command: nothing to execute", executable="", hint=install_hint)
    argv0 = argv[0]
    cwd_str = os.path.abspath(os.fspath(cwd))
    if not os.path.isdir(cwd_str):
        raise AgentLaunch(
            f"cannot enter working directory '{cwd_str}': no such directory",
            executable=argv0,
            cwd=cwd_str,
            hint=install_hint,
        )
    executable = resolve_executable(argv0, cwd_str, env)
    if executable is None:
        raise _not_found(argv0, install_hint)

    ignored = ignored_signals()
    out_path, err_path = Path(stdout_path), Path(stderr_path)
    cgroup_dir = _agent_cgroup(env)
    launch = _Launch(list(argv), executable, cwd_str, dict(env), install_hint, stdio_pipes)
    out_fd = _open_log(out_path)
    try:
        err_fd = out_fd if err_path == out_path else _open_log(err_path)
        try:
            wrapped = None
            if cgroup_dir is not None and not ignored and not stdio_pipes:
                wrapped = cgroup_exec.plan(cgroup_dir, argv, executable, cwd_str, env)
            popen = None
            if wrapped is not None:
                popen = _start_wrapped(launch, wrapped, out_fd, err_fd)
            if popen is None:  # no wrapper, or its exec failed: the exact way (Popen names the errno)
                cgroup_fd = cgroup.open_procs(cgroup_dir) if cgroup_dir is not None else None
                try:
                    popen = _popen(launch, out_fd, err_fd, _child_setup(cgroup_fd, ignored))
                finally:
                    if cgroup_fd is not None:
                        os.close(cgroup_fd)
                exits.claim_child(popen.pid)
        finally:
            if err_fd != out_fd:
                os.close(err_fd)
    finally:
        os.close(out_fd)

    # The child cannot have been reaped yet (nothing waits for it), so even if it already exited it is a
    # zombie whose /proc entry still gives the start time.
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error as exc:  # pragma: no cover - only if something else reaped our child
        exits.release_child(popen.pid)
        raise AgentLaunch(f"'{argv0}' started but vanished at once", executable=argv0, hint=install_hint) from exc
    return Spawned(pid=popen.pid, create_time=create_time, popen=popen, executable=executable)


@dataclass(frozen=True, slots=True)
class _Launch:
    """What to start, shared by the wrapped start and the exact one it falls back to."""

    argv: list[str]
    executable: str
    cwd: str
    env: dict[str, str]
    install_hint: str | None
    stdio_pipes: bool


def _popen(launch: _Launch, out_fd: int, err_fd: int, preexec_fn: Callable[[], None] | None) -> subprocess.Popen[bytes]:
    """``Popen`` the agent itself; an exec failure becomes :class:`AgentLaunch` naming the cause."""
    try:
        return subprocess.Popen(
            launch.argv,
            executable=launch.executable,
            cwd=launch.cwd,
            env=launch.env,
            stdin=subprocess.PIPE if launch.stdio_pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if launch.stdio_pipes else out_fd,
            stderr=err_fd,
            close_fds=True,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
    except OSError as exc:
        raise _launch_error(exc, launch.executable, launch.argv[0], launch.cwd, launch.install_hint) from exc


def _start_wrapped(
    launch: _Launch, wrapped: cgroup_exec.Plan, out_fd: int, err_fd: int
) -> subprocess.Popen[bytes] | None:
    """Start the agent through the cgroup-joining shell (:mod:`.cgroup_exec`) on Popen's vfork path.

    Returns once the agent's own ``exec`` succeeded (so its cmdline is the agent's when the caller records
    it), or None when that ``exec`` failed: the shell is then reaped and the caller starts the agent the
    exact way, which reports the errno. A refused cgroup write is logged; the agent then runs outside.
    """
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            popen = subprocess.Popen(
                wrapped.argv,
                executable=cgroup_exec.SHELL,
                cwd=launch.cwd,
                env=launch.env,
                stdin=status_w,
                stdout=out_fd,
                stderr=err_fd,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            raise _launch_error(exc, launch.executable, launch.argv[0], launch.cwd, launch.install_hint) from exc
        finally:
            os.close(status_w)
        exits.claim_child(popen.pid)
        said = cgroup_exec.outcome(status_r)
    finally:
        os.close(status_r)
    if cgroup_exec.EXEC_FAILED in said:
        popen.wait()
        exits.release_child(popen.pid)
        return None
    if cgroup_exec.JOIN_REFUSED in said:
        log.warning(
            "agent %s (pid %d) runs outside its cgroup: the cgroup write was refused", launch.argv[0], popen.pid
        )
    return popen


def _agent_cgroup(env: Mapping[str, str]) -> Path | None:
    """The instance's cgroup (see :mod:`.cgroup`) for an agent, None for anything else or where cgroups are
    unavailable. The agent is the process whose env carries the instance marker."""
    instance_id = env.get(INSTANCE_ENV)
    return cgroup.agent_cgroup(instance_id) if instance_id else None


def set_child_subreaper() -> None:
    """Make this process the reaper of its orphaned descendants (``prctl(PR_SET_CHILD_SUBREAPER)``).

    A double-forked, setsid'd grandchild of an agent is then reparented to the daemon instead of init, so
    the daemon still sees it (as its own child) and can reap it when it dies.
    """
    if libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def is_child_subreaper() -> bool:
    """Whether this process is a child subreaper (``prctl(PR_GET_CHILD_SUBREAPER)``)."""
    flag = ctypes.c_int(0)
    if libc().prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_GET_CHILD_SUBREAPER): {os.strerror(err)}")
    return flag.value != 0
