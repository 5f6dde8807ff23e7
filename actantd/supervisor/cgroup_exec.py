"""Enter an agent's cgroup before its first instruction, without a ``preexec_fn``: exec through ``/bin/sh``.

Why: a ``preexec_fn`` makes :class:`subprocess.Popen` fork the whole daemon (tens of MiB, several threads)
instead of using vfork, which costs milliseconds per start; writing the pid from the parent after ``Popen``
races the agent's first forks. Here the child is vforked as usual but execs ``/bin/sh`` first, and the shell,
still the same process, writes ``0`` (itself) into the cgroup's ``cgroup.procs`` and then ``exec``s the agent.
The agent therefore starts inside, with the same pid, and nothing it forks can be outside. The shell's
builtins (``echo``, ``export``, ``exec``) never fork, so no process is ever outside either.

What the agent sees is unchanged: ``exec "$@"`` gives it exactly ``argv`` (``argv[0]`` included, so ``ps``
and ``/proc/PID/cmdline`` show the agent), and the environment is the one given, because only environments a
POSIX shell passes through untouched take this path (:func:`plan`): every name a valid shell identifier,
none of the variables a shell sets or resets itself (``IFS``, ``OPTIND``, ``PPID``...), and ``PWD`` put back
(or removed) explicitly. A probe at first use checks that this machine's ``/bin/sh`` really passes such an
environment through byte for byte (:func:`shell_passes_env`); if not, the wrapper is never used.

How the daemon learns the outcome: the shell's stdin is the write end of a status pipe. It writes ``c`` there
if the cgroup write was refused (the agent then runs outside, :mod:`.kill` falls back to the ``/proc`` scan),
and an ``EXIT`` trap writes ``x`` if the agent's ``exec`` failed. The agent's own stdin (``/dev/null``) is
redirected for the ``exec`` only, so the shell's saved copy of the pipe is close-on-exec: the daemon reads
EOF exactly when the agent's ``exec`` succeeded. On ``x`` the caller reaps the shell and spawns again the
slow, exact way, which reports the real errno (permission denied, exec format error...).

Not used (the caller keeps the ``preexec_fn``): agents the daemon talks to over stdio (their stdin is a pipe,
not ``/dev/null``), a daemon that still has ignored signals to reset (embedded), an executable that is neither
ELF nor ``#!`` (a shell would run such a file as a script where ``execve`` fails with ``ENOEXEC``), an argv[0]
the shell could resolve differently from :func:`.spawn.resolve_executable`, or an environment as above.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SHELL = "/bin/sh"

_RESTORED = "PWD"
"""Set by every POSIX shell at start-up from the real cwd: put back as given, or unset when not given."""

SHELL_OWNED = frozenset({
    "IFS", "OPTIND", "OPTARG", "PPID", "LINENO", "MAILPATH", "MAILCHECK", "ENV", "BASH_ENV", "SHELLOPTS",
    "BASHOPTS", "POSIXLY_CORRECT", "RANDOM", "SECONDS", "HISTFILE",
})  # fmt: skip
"""Variables a shell may read, reset or refuse at start-up; an environment carrying one takes the slow path."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_SCRIPT_HEAD = 'echo 0 2>/dev/null >"$0/cgroup.procs" || printf c >&0; '
_SCRIPT_TAIL = "trap 'printf x >&0' EXIT; { exec \"$@\"; } 0<>/dev/null"
"""The agent's stdin is /dev/null opened read-write, as ``subprocess.DEVNULL`` opens it."""

JOIN_REFUSED = b"c"
EXEC_FAILED = b"x"


@dataclass(frozen=True, slots=True)
class Plan:
    """How to start an agent through the shell: the argv for ``Popen`` (executable :data:`SHELL`)."""

    argv: list[str]


def _env_is_plain(env: Mapping[str, str]) -> bool:
    return all(_NAME.match(name) and name not in SHELL_OWNED for name in env)


def _resolves_alike(argv0: str, executable: str, cwd: str, env: Mapping[str, str]) -> bool:
    """Whether the shell's ``exec`` finds the same file as the daemon did: a path without ``..`` (taken
    relative to the cwd by both), or a bare name on a PATH of absolute directories (searched alike)."""
    if argv0.startswith("-"):  # ``exec`` would take it for an option
        return False
    if "/" in argv0:
        return ".." not in argv0.split("/") and os.path.normpath(os.path.join(cwd, argv0)) == executable
    path = env.get("PATH")
    return path is not None and all(d.startswith("/") for d in path.split(":"))


def _is_binary_or_script(executable: str) -> bool:
    try:
        with open(executable, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head == b"\x7fELF" or head.startswith(b"#!")


def _script(env: Mapping[str, str]) -> str:
    restore = f'export {_RESTORED}="$1"; shift; ' if _RESTORED in env else f"unset {_RESTORED}; "
    return _SCRIPT_HEAD + restore + _SCRIPT_TAIL


def _argv(cgroup_dir: Path | str, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    restored = [env[_RESTORED]] if _RESTORED in env else []
    return [SHELL, "-c", _script(env), os.fspath(cgroup_dir), *restored, *argv]


def plan(cgroup_dir: Path, argv: Sequence[str], executable: str, cwd: str, env: Mapping[str, str]) -> Plan | None:
    """The wrapped start of ``argv`` into ``cgroup_dir``, or None where it would not be exact (see module doc)."""
    if not (_env_is_plain(env) and _resolves_alike(argv[0], executable, cwd, env)):
        return None
    if not _is_binary_or_script(executable) or not shell_passes_env():
        return None
    return Plan(_argv(cgroup_dir, argv, env))


def outcome(status_fd: int) -> bytes:
    """Read the status pipe to EOF (the agent's ``exec`` succeeded, or the shell is gone); what it said."""
    said = b""
    while chunk := os.read(status_fd, 64):
        said += chunk
    return said


_PROBE_ENV = {
    "PWD": "/nonexistent\n*",
    "OLDPWD": "/",
    "HOME": "/nonexistent",
    "SHLVL": "7",
    "_": "/usr/bin/env",
    "TERM": "dumb",
    "LANG": "C",
    "PS1": "$ ",
    "SHELL": "/bin/false",
    "PROBE": "a\nb=c $x `y` \\ ' \"",
}


@cache
def shell_passes_env() -> bool:
    """Probe once: does this ``/bin/sh`` hand an environment :func:`plan` accepts to the agent unchanged?

    Runs the wrapper twice (with and without ``PWD``) on ``cat /proc/self/environ``; a shell that adds,
    drops or rewrites anything (bash as ``sh`` exports ``_`` and ``SHLVL`` of its own) disables the wrapper.
    """
    cat = next((p for p in ("/bin/cat", "/usr/bin/cat") if os.access(p, os.X_OK)), None)
    if cat is None or not os.access(SHELL, os.X_OK):
        return False
    for env in (_PROBE_ENV, {"PROBE": _PROBE_ENV["PROBE"]}):
        try:
            done = subprocess.run(
                _argv("/dev/null/none", [cat, "/proc/self/environ"], env),
                executable=SHELL, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, timeout=10, check=False,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return False
        got = {entry for entry in done.stdout.split(b"\0") if entry}
        if done.returncode != 0 or got != {f"{k}={v}".encode() for k, v in env.items()}:
            return False
    return True
