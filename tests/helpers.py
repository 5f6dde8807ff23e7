"""Helpers every test folder shares: waiting, files, processes, signals. One copy each.

The daemons themselves (a real ``actantd`` subprocess, or the same daemon in-process) are in
:mod:`tests.harness`; the fixtures that hand them out are in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

# ------------------------------------------------------------------------------------------------ waiting


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll with a deadline: only for conditions no event announces (a file appears, a fork happened)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def transition(to: str, agent: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """An event predicate for ``Conn.wait_event``: a transition to ``to`` (of ``agent``, when given)."""

    def pred(e: dict[str, Any]) -> bool:
        return e["type"] == "transition" and e["to"] == to and (agent is None or e["agent"] == agent)

    return pred


# ------------------------------------------------------------------------------------------------ files


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON at ``path``, creating the parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def write_doc(root: Path, rel: str, doc: dict[str, Any] | str) -> Path:
    """A config file under ``root``: a dict as JSON, a str verbatim (for broken files)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


def cfg(name: str, **fields: Any) -> dict[str, Any]:
    """A config document of the current schema version."""
    return {"version": "1.0", "name": name, **fields}


# ------------------------------------------------------------------------------------------------ processes


def alive(pid: int, create_time: float | None = None) -> bool:
    """Whether ``pid`` is a live (non-zombie) process, the same one as ``create_time`` when given."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 1.0
    except psutil.Error:
        return False


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether ``pid`` exits within ``timeout`` (psutil waits on the process, not on a timer)."""
    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
        psutil.Process(pid).wait(timeout)
    return not alive(pid)


def instance_procs(instance_id: str) -> list[psutil.Process]:
    """Every live process that carries the instance's ``ACTANT_INSTANCE_ID`` (its agent and descendants)."""
    needle = f"ACTANT_INSTANCE_ID={instance_id}"
    out = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if needle in "\0".join(f"{k}={v}" for k, v in proc.environ().items()):
                out.append(proc)
    return out


def kill_all(procs: list[psutil.Process]) -> None:
    """SIGKILL each process and its group, and wait for them: cleanup after a test that found leftovers."""
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)


# ------------------------------------------------------------------------------------------------ signals


def ignored_mask(pid: int) -> int:
    """The process's ignored-signal mask as the kernel reports it (``SigIgn`` in ``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("SigIgn:")), 16)


def ignores(mask: int, sig: int) -> bool:
    """Whether ``sig`` is set in a ``SigIgn`` mask (bit N-1 stands for signal N)."""
    return bool(mask >> (sig - 1) & 1)


_RESET_AND_EXEC = (
    "import os, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGQUIT):\n"
    "    signal.signal(s, signal.SIG_DFL)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def with_default_signals(argv: Sequence[str]) -> list[str]:
    """``argv`` run with SIGINT and SIGQUIT at their default disposition, whatever pytest inherited.

    An ignored signal stays ignored across ``exec``: pytest started as a background job (SIGINT ignored)
    would hand that on to a child a test then tries to stop with SIGINT, as a user's Ctrl-C would. The
    wrapper resets the two job-control signals and ``exec``s ``argv`` (same pid), so the child starts as it
    would from a terminal; a Python child then installs its usual KeyboardInterrupt handler. A wrapper
    rather than ``preexec_fn``, which is unsafe in a process with threads (an in-process daemon runs in one).
    """
    return [sys.executable, "-c", _RESET_AND_EXEC, *argv]


def kill_mid_write(writer: str, args: Sequence[str], delay: float) -> bytes:
    """Run ``writer`` (Python source, the checkout importable) until it prints ``ready``, SIGKILL it ``delay``
    seconds later, as a crash in the middle of its writes; returns what it printed after ``ready``."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", writer, *args], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)  # the moment of the crash is the test's parameter, not an event to wait for
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with proc.stdout:
        return proc.stdout.read()
