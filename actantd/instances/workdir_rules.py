"""Which directories may never be an instance's ``--work-dir``, as a pure function (hardening #10).

Actant writes its files into a ``--work-dir`` and runs an agent there with write access, and destroy removes
what it wrote: pointed at ``/etc``, ``/dev``, ``/`` or the configs folder that would be a disaster. The
caller resolves the path first (symlinks included), so ``/tmp/link -> /etc`` is judged as ``/etc``.

``~`` is the caller's business: the CLI expands it with the *caller's* home before sending; a path that
still starts with ``~`` (or is relative) reaching the daemon is refused, since the daemon's home and cwd
are not the caller's.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Final

SYSTEM_TREES: Final = tuple(
    PurePosixPath(p)
    for p in (
        "/etc", "/dev", "/proc", "/sys", "/boot", "/run", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
        "/libx32", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec",
        "/usr/include", "/usr/share", "/var/lib", "/var/log", "/var/run", "/var/cache", "/var/spool",
    )
)  # fmt: skip
"""Refused, and everything under them."""

SHARED_ROOTS: Final = tuple(
    PurePosixPath(p)
    for p in ("/", "/home", "/root", "/tmp", "/var", "/var/tmp", "/usr", "/usr/local", "/opt", "/srv", "/mnt",
              "/media", "/dev/shm")
)  # fmt: skip
"""Refused themselves (a project may live below them)."""


def unexpanded_problem(raw: str) -> str | None:
    """Why a work dir as sent by a client cannot be used as is (before any resolution), or None."""
    if raw.startswith("~"):
        return f"--work-dir {raw!r} starts with '~': expand it on the client side (to the caller's home)"
    if not os.path.isabs(raw):
        return f"--work-dir {raw!r} must be an absolute path (resolve it on the client side)"
    return None


def refused_reason(work_dir: Path, *, configs: Path, home_dirs: tuple[Path, ...] = ()) -> str | None:
    """Why the resolved ``work_dir`` may not be a workspace, or None when it may.

    ``configs`` (the configs folder) may neither contain nor be inside the work dir; ``home_dirs`` (users'
    home directories) may hold a workspace but not be one.
    """
    path = PurePosixPath(work_dir)
    for tree in SYSTEM_TREES:
        if path == tree or tree in path.parents:
            return f"--work-dir {work_dir} is a system directory ({tree})"
    if path in SHARED_ROOTS:
        return f"--work-dir {work_dir} is a shared top-level directory; use a project folder inside it"
    for home in home_dirs:
        if path == PurePosixPath(home):
            return f"--work-dir {work_dir} is a whole home directory; use a project folder inside it"
    cfg = PurePosixPath(configs)
    if path == cfg or cfg in path.parents or path in cfg.parents:
        return f"--work-dir {work_dir} overlaps the configs folder {configs}"
    return None


def user_homes() -> tuple[Path, ...]:
    """The daemon user's home, resolved (the caller's, for the usual one-user daemon)."""
    try:
        return (Path.home().resolve(),)
    except (RuntimeError, KeyError, OSError):
        return ()
