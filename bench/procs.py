"""Every process the benchmarks start, and the guarantee that none outlives the run.

Three layers, so that a failure of the benchmark itself, Ctrl-C, or even a SIGKILL of it leaves nothing behind:

* :class:`Procs` keeps the :class:`subprocess.Popen` of each long-lived process (daemons, supervisord) and
  stops them politely on :meth:`Procs.close` (SIGTERM, bounded wait, SIGKILL); the runner closes it after
  every benchmark, whatever happened;
* every process we start gets ``ACTANT_BENCH_RUN=<token>`` in its environment, which agents and supervisord
  programs inherit, so :func:`sweep` finds and SIGKILLs anything of this run still alive, whoever its parent
  is now (agents live in their own sessions and outlive a SIGKILLed daemon by design);
* long-lived processes get ``PR_SET_PDEATHSIG=SIGTERM``: if the benchmark is killed outright, the daemons
  shut down cleanly and stop their agents on their own.

Long-lived processes are started in their own session, so a Ctrl-C in the terminal reaches only the
benchmark, which then cleans up in order instead of racing its children.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

RUN_ENV = "ACTANT_BENCH_RUN"
RUN_TOKEN = uuid.uuid4().hex

_STRIP = (
    "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "ACTANT_HOME", "ACTANT_CONFIGS", "ACTANT_SOCKET", "NOTIFY_SOCKET",
    "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "SUPERVISOR_ENABLED", "SUPERVISOR_SERVER_URL",
)  # fmt: skip


_pycache: list[Path] = []


def use_pycache(directory: Path) -> None:
    """Give every child a bytecode cache of its own (``PYTHONPYCACHEPREFIX``).

    Interpreters then start as they would from an installed package, with compiled ``.pyc`` files, even
    where ``PYTHONDONTWRITEBYTECODE`` is set or the checkout has no ``__pycache__``; and nothing is written
    next to the sources. The same applies to supervisord and supervisorctl.
    """
    _pycache[:] = [directory]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without anything that would point a child at another daemon, plus the run mark."""
    env = {k: v for k, v in os.environ.items() if k not in _STRIP}
    env[RUN_ENV] = RUN_TOKEN
    if _pycache:
        env["PYTHONPYCACHEPREFIX"] = str(_pycache[0])
    if extra:
        env.update(extra)
    return env


PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child


def _term_with_parent() -> None:
    """In the child before exec: SIGTERM it if the benchmark dies, even by SIGKILL (daemons then shut down
    cleanly and stop their agents). Only async-signal-safe work here: one prctl call."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Procs:
    """The long-lived processes of one benchmark; ``close`` stops them all (idempotent)."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        out: IO[bytes] | int = subprocess.DEVNULL
        handle = open(log, "ab") if log is not None else None  # noqa: SIM115 - closed right after Popen
        try:
            if handle is not None:
                out = handle
            proc = subprocess.Popen(
                list(argv), env=dict(env) if env is not None else child_env(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=out, cwd=cwd, start_new_session=True, preexec_fn=_term_with_parent,
            )  # fmt: skip
        finally:
            if handle is not None:
                handle.close()
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code (None if it had to be killed)."""
        code: int | None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(10)
                code = None
        else:
            code = proc.returncode
        self._procs = [(n, p) for n, p in self._procs if p is not proc]
        return code

    def close(self) -> None:
        for _name, proc in reversed(list(self._procs)):
            with contextlib.suppress(Exception):
                self.stop(proc, timeout=15.0)
        self._procs.clear()
        sweep()


def _marked_pids(token: str) -> Iterator[int]:
    needle = f"{RUN_ENV}={token}".encode()
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            yield pid


def sweep(token: str = RUN_TOKEN, rounds: int = 10) -> list[int]:
    """SIGKILL every live process carrying this run's mark, until none is left; returns the pids killed."""
    killed: list[int] = []
    for _ in range(rounds):
        pids = alive_marked(token)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(0.05)
    return killed


def alive_marked(token: str = RUN_TOKEN) -> list[int]:
    """Live (non-zombie) processes of this run, for the end-of-run check."""
    out = []
    for pid in _marked_pids(token):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            out.append(pid)
    return out


class Interrupted(BaseException):
    """SIGTERM/SIGHUP: unwind like Ctrl-C so every ``finally`` cleans up."""


class Budget(Exception):
    """A figure ran past its time budget."""


def install_signal_handlers() -> None:
    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    # A shell without job control starts background commands with SIGINT ignored; a benchmark must stay
    # interruptible (and clean up) whoever started it.
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def time_budget(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`Budget` in the main thread if the block takes longer than ``seconds``."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise Budget(f"{what}: exceeded its {seconds:.0f}s time budget")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (VmRSS), children not included."""
    with open(f"/proc/{pid}/status", "rb") as fh:
        for line in fh:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ProcessLookupError(pid)


def rss_split(pid: int) -> tuple[int, int]:
    """(anonymous, file-backed) resident bytes: heap and stacks vs mapped interpreter and extension modules."""
    values = {}
    with open(f"/proc/{pid}/status", "rb") as fh:
        for line in fh:
            if line.startswith((b"RssAnon:", b"RssFile:", b"RssShmem:")):
                key, value = line.split()[:2]
                values[key] = int(value) * 1024
    return values.get(b"RssAnon:", 0), values.get(b"RssFile:", 0) + values.get(b"RssShmem:", 0)


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as fh:
        for line in fh:
            if line.startswith(b"Threads:"):
                return int(line.split()[1])
    return 0


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")
