"""``actantctl daemon start|stop|status``.

``start`` relies on the daemon's own per-home flock for mutual exclusion instead of a client-side lock: every
racing starter spawns a candidate, the losers' candidates exit at once, and every starter simply waits until
the socket answers ``daemon.ping``. A starter whose candidate died for any *other* reason (bad configs,
unwritable home) fails fast, which it can tell because then nobody holds the lock (read from
``/proc/locks``, without taking the lock, which could make the real winner lose).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from actantctl.client import ClientError, ConnectionLost, DaemonNotRunning
from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import Failure, print_json, text
from actantctl.views import daemon_details
from actantd.identity import read_identity
from actantd.paths import Layout, default_configs, default_home

if TYPE_CHECKING:
    import subprocess

DAEMON_COMMAND: list[str] = [sys.executable, "-m", "actantd"]
"""How to run the daemon; tests substitute a stand-in."""

POLL_SECONDS = 0.05
OUTPUT_FILE = "actantd.out"


@click.group()
def daemon() -> None:
    """Start, stop and inspect actantd."""


def ping(app: AppContext, timeout: float = 2.0) -> dict[str, Any] | None:
    """The daemon's ping answer, or None if nothing answers at the socket."""
    try:
        result = app.call("daemon.ping", timeout=timeout)
    except (DaemonNotRunning, ConnectionLost):
        return None
    return result if isinstance(result, dict) else {}


def daemon_argv(app: AppContext) -> list[str]:
    argv = [*DAEMON_COMMAND, "--socket", str(app.socket)]
    if app.home is not None:
        argv += ["--home", str(app.home)]
    if app.configs is not None:
        argv += ["--configs", str(app.configs)]
    return argv


def _home(app: AppContext) -> Path:
    return app.home or default_home()


def adopt_socket_owner(app: AppContext) -> str | None:
    """Start the home this socket belongs to (``{socket}.home``, see actantd/identity.py), not the default one.

    Only when the home was not chosen (no ``--home``, no ``ACTANT_HOME``); the same for configs. Returns the
    note to show, or None when nothing was adopted.
    """
    if app.home is not None or os.environ.get("ACTANT_HOME"):
        return None
    owner = read_identity(app.socket)
    if owner is None or not owner.home.is_dir():
        return None
    app.home = owner.home
    if app.configs is None and not os.environ.get("ACTANT_CONFIGS") and owner.configs is not None:
        app.configs = owner.configs
    return f"using home {owner.home}, which {app.socket} belongs to (pass --home to choose another)"


OUTPUT_MAX_BYTES = 1024 * 1024
OUTPUT_BACKUPS = 3


def rotate_output(home: Path, max_bytes: int = OUTPUT_MAX_BYTES, backups: int = OUTPUT_BACKUPS) -> bool:
    """Keep ``actantd.out`` small: at each start, once it is over ``max_bytes``, shift it to ``.1`` .. ``.N``.

    Only a starter rotates, while no daemon of this home writes the file (the caller found none answering),
    so a plain rename is safe. Returns whether it rotated.
    """
    current = home / OUTPUT_FILE
    try:
        if current.stat().st_size <= max_bytes:
            return False
        for i in range(backups - 1, 0, -1):
            older = home / f"{OUTPUT_FILE}.{i}"
            if older.exists():
                os.replace(older, home / f"{OUTPUT_FILE}.{i + 1}")
        os.replace(current, home / f"{OUTPUT_FILE}.1")
    except OSError:
        return False
    return True


def _open_output(home: Path) -> IO[bytes] | None:
    """The daemon's stdout/stderr go to ``{home}/actantd.out`` so a failed start can be diagnosed."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return open(home / OUTPUT_FILE, "ab")
    except OSError:
        return None


def _spawn(app: AppContext) -> subprocess.Popen[bytes]:
    import subprocess

    out = _open_output(_home(app))
    target: IO[bytes] | int = out if out is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            daemon_argv(app),
            stdin=subprocess.DEVNULL,
            stdout=target,
            stderr=target,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise Failure(f"cannot run actantd: {exc.strerror or exc}") from None
    finally:
        if out is not None:
            out.close()


def lock_held(lock: Path) -> bool:
    """Whether some process holds a lock on ``lock``, read from /proc/locks (Linux) without touching it.

    No lock file means no lock. Unreadable /proc counts as held, which only means waiting the full timeout.
    """
    try:
        st = os.stat(lock)
    except OSError:
        return False
    try:
        with open("/proc/locks") as f:
            entries = f.read().split("\n")
    except OSError:
        return True
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(ident in line.split() for line in entries)


def _output_tail(home: Path, lines: int = 5) -> str:
    try:
        with open(home / OUTPUT_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n{line}" for line in tail)


def _wait_until_up(app: AppContext, child: subprocess.Popen[bytes], seconds: float) -> dict[str, Any]:
    home = _home(app)
    lock = Layout(home, app.configs or default_configs(), app.socket).lock
    deadline = time.monotonic() + seconds
    while True:
        answer = ping(app, timeout=1.0)
        if answer is not None:
            return answer
        code = child.poll()
        if code is not None and not lock_held(lock):
            answer = ping(app, timeout=1.0)  # it may have come up since the last look
            if answer is not None:
                return answer
            raise Failure(
                f"actantd exited with code {code} before answering; see {home / OUTPUT_FILE}" + _output_tail(home)
            )
        if time.monotonic() >= deadline:
            if code is None:
                child.terminate()  # ours never answered; don't leave a half-started daemon behind
            raise Failure(
                f"actantd did not answer at {app.socket} within {seconds:g}s; see {home / OUTPUT_FILE}"
                + _output_tail(home)
            )
        time.sleep(POLL_SECONDS)


def start_or_join(app: AppContext, wait_seconds: float) -> tuple[bool, dict[str, Any]]:
    """Start the daemon unless one answers; ``(whether we started it, its ping answer)``.

    Several starters racing all find nothing and spawn a daemon each; only one daemon takes the home's lock
    and the others exit. So "we started it" means the daemon that answers is our own child, not merely that
    nothing answered when we looked (hardening #10: of 20 racing starters, exactly one says it started it).
    """
    answer = ping(app)
    if answer is not None:
        return False, answer
    child = _spawn(app)
    answer = _wait_until_up(app, child, wait_seconds)
    started = answer.get("pid") == child.pid
    if not started:
        import contextlib
        import subprocess

        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(wait_seconds)  # ours lost the lock and exits: reap it
    return started, answer


@daemon.command()
@click.option("--wait", "wait_seconds", default=10.0, show_default=True, help="Seconds to wait for it to answer.")
@json_option
@pass_app
def start(app: AppContext, wait_seconds: float) -> None:
    """Start actantd in the background (does nothing if it is already running)."""
    note = None
    if ping(app) is None:  # nothing answers: find the home this socket belonged to before starting one
        note = adopt_socket_owner(app)
        rotate_output(_home(app))
    started, answer = start_or_join(app, wait_seconds)
    if app.json:
        print_json({"started": started, "socket": str(app.socket), "home": str(_home(app)), **answer})
    elif started:
        if note:
            click.echo(f"note: {note}", err=True)
        click.echo(f"started actantd (pid {text(answer.get('pid'))}, home {_home(app)})")
    else:
        click.echo(f"actantd is already running (pid {text(answer.get('pid'))})")


@daemon.command()
@click.option("--wait", "wait_seconds", default=60.0, show_default=True, help="Seconds to wait for it to exit.")
@click.option("--keep-agents", is_flag=True, help="Leave the agents running (a restarted daemon re-adopts them).")
@json_option
@pass_app
def stop(app: AppContext, wait_seconds: float, keep_agents: bool) -> None:
    """Ask actantd to shut down (stopping its agents first) and wait until it has."""
    answer = ping(app)
    if answer is None:
        app.emit({"stopped": False, "running": False}, "actantd is not running")
        return
    try:
        app.call("daemon.shutdown", {"keepAgents": True} if keep_agents else {}, timeout=wait_seconds)
    except ConnectionLost:
        pass  # it went away before answering: that is what we asked for
    deadline = time.monotonic() + wait_seconds
    while ping(app, timeout=1.0) is not None:
        if time.monotonic() >= deadline:
            raise ClientError(f"actantd is still answering {wait_seconds:g}s after shutdown")
        time.sleep(POLL_SECONDS)
    # The socket is gone a moment before the process: wait for the pid too, so that a `daemon start` right
    # after this finds the home's lock free.
    pid = answer.get("pid")
    while isinstance(pid, int) and _pid_alive(pid):
        if time.monotonic() >= deadline:
            raise ClientError(f"actantd (pid {pid}) is still running {wait_seconds:g}s after shutdown")
        time.sleep(POLL_SECONDS)
    app.emit({"stopped": True, "pid": answer.get("pid")}, f"stopped actantd (pid {text(answer.get('pid'))})")


@daemon.command()
@json_option
@pass_app
def status(app: AppContext) -> None:
    """Show the daemon's state; exits 3 when it is not running."""
    result = app.call("daemon.status")
    app.emit(result, daemon_details(result))


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie has released its locks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False
