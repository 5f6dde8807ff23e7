"""A template's ``setup`` command (``["npm", "ci"]``), run once in a new workspace before it is Ready.

It runs like a health probe, not like an agent: a child of the daemon in its own session, its exit awaited
through a pidfd (so the daemon's orphan reaper never takes its status), its whole process group killed on
timeout or cancellation. Output (stdout and stderr together, in order) goes to ``{logs}/<name>/setup.log``;
the record keeps a bounded tail so ``agent status`` can say why a setup failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from actantd.instances.record import SetupResult, utc_now
from actantd.supervisor import exits

TAIL_BYTES = 4096
"""The output tail kept in ``.actant.json``: enough for an npm or pip error, small enough for every status call."""


def output_tail(path: Path, limit: int = TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > limit:  # start at a line boundary, and say that something was cut
        text = "…" + text.partition("\n")[2]
    return text


async def run_setup(
    argv: Sequence[str], workspace: Path, env: Mapping[str, str], log_path: Path, timeout: float
) -> SetupResult:
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    loop = asyncio.get_running_loop()
    with open(log_path, "wb") as out:
        os.chmod(log_path, 0o600)
        try:
            popen = subprocess.Popen(  # noqa: ASYNC220 - only forks and execs; the exit is awaited via pidfd
                list(argv),
                cwd=workspace,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            out.write(f"cannot run {argv[0]}: {exc.strerror or exc}\n".encode())
            out.flush()
            return SetupResult(argv=list(argv), exit_code=None, at=utc_now(), output_tail=output_tail(log_path))
    pgid = popen.pid

    def kill_group() -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    exited = exits.watch_exit(loop, popen.pid, is_child=True, popen=popen, before_reap=kill_group)
    timed_out = False
    try:
        info = await asyncio.wait_for(asyncio.shield(exited), timeout)
    except TimeoutError:
        timed_out = True
        kill_group()
        info = await exited
    except asyncio.CancelledError:
        kill_group()
        raise
    code = info.code if info.code is not None else (-info.signal if info.signal else None)
    return SetupResult(
        argv=list(argv), exit_code=code, at=utc_now(), output_tail=output_tail(log_path), timed_out=timed_out
    )
