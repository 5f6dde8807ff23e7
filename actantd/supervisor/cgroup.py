"""One cgroup v2 per agent, where the machine lets us: finding and killing an agent's processes in O(its own).

Why: without it, the only way to find an agent's escaped descendants (double-forked, ``setsid``'d, reparented
away) is to look at every process on the machine (see :mod:`.kill`), so stopping N agents cost O(N x all
processes), and a grandchild that both ``setsid``'d *and* cleared its environment escaped anyway. A cgroup is
inherited by every fork and cannot be left without write access to a common ancestor's ``cgroup.procs``;
``cgroup.procs`` lists exactly the agent's live processes and ``cgroup.kill`` SIGKILLs all of them atomically
(a fork racing the kill is killed too). The cgroup outlives the daemon, so a restarted daemon finds an
agent's processes the same way.

Where: ``<the daemon's own cgroup>/actant/<instance id>`` on the cgroup2 mount (``/sys/fs/cgroup`` on a
unified system, ``/sys/fs/cgroup/unified`` on a hybrid one). No controller is enabled, so this needs no
resource delegation, only write access to our own cgroup: root has it; a user service has it with
``Delegate=yes`` (systemd then gives the unit's cgroup to its user). Instance ids are UUIDs, so daemons that
share a cgroup (tests, several homes) never share an agent's cgroup.

How an agent gets in: before its first instruction, so that nothing it forks can be outside. Normally it is
vforked as usual but execs ``/bin/sh`` first, which writes ``0`` (itself) into ``cgroup.procs`` and then
``exec``s the agent, same pid (:mod:`.cgroup_exec`: about one extra ``exec`` of a small shell). Where that
could change what the agent sees, the child writes ``0`` between fork and exec instead (:func:`join_in_child`,
a ``preexec_fn``), which is exact but takes subprocess off its vfork path: the whole daemon is forked, several
milliseconds per spawn on a loaded 2-core machine. Writing the pid from the parent right after ``Popen``
returns would be free but races the agent's first forks: under load the spawning thread can wait tens of
milliseconds for the GIL after the exec, long enough for an interpreter to start and fork, and those children
would then be outside (a soak test caught exactly that).

When it is not available (no cgroup2 mount, no write access, a kernel before 5.14 without ``cgroup.kill``, or
``ACTANT_CGROUPS=0`` in the daemon's environment), :func:`agent_cgroup` returns None and :mod:`.kill` falls
back to one shared ``/proc`` snapshot per batch of stops. Nothing else changes.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from actantd.supervisor import procfs

DISABLE_ENV = "ACTANT_CGROUPS"
"""``ACTANT_CGROUPS=0`` turns cgroups off (the daemon then behaves as on a machine without them)."""

PARENT = "actant"
"""The directory under the daemon's own cgroup that holds one cgroup per agent."""


@cache
def _cgroup2_mount() -> Path | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return Path(left.split()[4])
    except OSError:
        return None
    return None


def _own_cgroup() -> str | None:
    """Our cgroup v2 path (the ``0::`` line of ``/proc/self/cgroup``)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


@cache
def base() -> Path | None:
    """The parent of every agent cgroup of this daemon, created on first use; None when unusable.

    Probed once per process: creates ``actant/`` and checks that a child cgroup offers ``cgroup.kill`` and
    that we may move processes (write access to our own ``cgroup.procs``, the common ancestor of the move).
    """
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None
    mount, own = _cgroup2_mount(), _own_cgroup()
    if mount is None or own is None:
        return None
    ours = mount / own.lstrip("/")
    parent = ours / PARENT
    try:
        if not os.access(ours / "cgroup.procs", os.W_OK):
            return None
        parent.mkdir(exist_ok=True)
        if not (parent / "cgroup.kill").exists() or not os.access(parent / "cgroup.procs", os.W_OK):
            return None
    except OSError:
        return None
    return parent


def path_of(instance_id: str) -> Path | None:
    """Where the cgroup of ``instance_id`` is (or would be), None when cgroups are not in use."""
    root = base()
    if root is None or not instance_id or "/" in instance_id or instance_id.startswith("."):
        return None
    return root / instance_id


def agent_cgroup(instance_id: str) -> Path | None:
    """The cgroup of ``instance_id``, created if needed; None when cgroups are unavailable."""
    path = path_of(instance_id)
    if path is None:
        return None
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return None
    return path


def cgroup_of(pid: int) -> Path | None:
    """The Actant agent cgroup ``pid`` is in (``.../actant/<instance id>``), None if it is in none of ours."""
    root = base()
    mount = _cgroup2_mount()
    if root is None or mount is None:
        return None
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            own = next((line[3:].strip() for line in f if line.startswith("0::")), None)
    except OSError:
        return None
    if own is None:
        return None
    path = mount / own.lstrip("/")
    return path if path.parent == root else None


def open_procs(path: Path) -> int | None:
    """A close-on-exec fd on ``cgroup.procs`` for a child to write ``0`` into (see :func:`join_in_child`).

    Opened in the parent because the child of a threaded process must not allocate; the caller closes it.
    """
    try:
        return os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None


def join_in_child(fd: int) -> None:
    """Run in the child between fork and exec: move the calling process into the cgroup of ``fd``.

    The exact but slow way in (a ``preexec_fn``), for the starts the ``/bin/sh`` wrapper of :mod:`.cgroup_exec`
    does not take.
    One ``write`` syscall and nothing else (no allocation-heavy Python, no locks), because it runs in a fork
    of a threaded process. A failure is ignored: the agent then runs outside, and :mod:`.kill` sees that the
    leader is not a member and falls back to the ``/proc`` scan.
    """
    try:
        os.write(fd, b"0")
    except OSError:
        pass


def members(path: Path) -> list[int] | None:
    """Live pids in the cgroup (zombies are not listed); None when it does not exist."""
    data = procfs.read_small(f"{path}/cgroup.procs")
    return None if data is None else [int(x) for x in data.split()]


def populated(path: Path) -> bool:
    """Whether any live process is in the cgroup (``cgroup.events``: cheaper than listing them)."""
    data = procfs.read_small(f"{path}/cgroup.events")
    return data is not None and b"populated 1" in data


def kill_all(path: Path) -> bool:
    """SIGKILL every process in the cgroup at once (``cgroup.kill``); False when that was not possible."""
    try:
        with open(path / "cgroup.kill", "wb", buffering=0) as f:
            f.write(b"1")
    except OSError:
        return False
    return True


def remove(path: Path) -> bool:
    """Remove the cgroup if it is empty (it is recreated on the next start); False if it is still in use."""
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
