"""Default locations, shared by daemon and client.

Stdlib only: ``actantctl`` imports this module so that both sides compute the socket path with the same
function and never need a discovery file. The computations are done on strings with ``os.path`` and wrapped
in ``Path`` only for the daemon's callers, so that importing this module costs the CLI neither ``pathlib``
(with ``urllib.parse`` and ``fnmatch`` behind it) nor ``dataclasses``: ``actantctl agent list`` runs on
:func:`socket_path` alone.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$")
"""Instance names: no separators, no leading dot, so a name is always one safe path component."""

INSTANCE_FILE = ".actant.json"
CORRUPTED_DIR = ".corrupted"
STAGING_DIR = ".staging"
TRASH_DIR = ".trash"
LOG_STREAMS = ("stdout", "stderr")
"""The streams an agent's output is captured in, one file each under ``logs/{name}/``."""


def _as_path(path: str) -> Path:
    from pathlib import Path  # the daemon's callers want a Path; the CLI never asks

    return Path(path)


def _absolute(path: str) -> str:
    """``str(Path(path).absolute())`` without pathlib: joined to the working directory if relative, ``.``
    components and repeated or trailing slashes dropped, ``..`` kept (no symlink may be assumed away)."""
    if not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    root = "//" if path.startswith("//") and not path.startswith("///") else "/"
    return root + "/".join(part for part in path.split("/") if part and part != ".")


def _env_str(var: str, env: dict[str, str] | None) -> str | None:
    value = (env if env is not None else os.environ).get(var)
    return os.path.expanduser(value) if value else None


def _home(env: dict[str, str] | None) -> str:
    explicit = _env_str("ACTANT_HOME", env)
    if explicit is not None:
        return _absolute(explicit)
    base = _env_str("XDG_STATE_HOME", env) or os.path.join(os.path.expanduser("~"), ".local", "state")
    return _absolute(os.path.join(base, "actant"))


def default_home(env: dict[str, str] | None = None) -> Path:
    return _as_path(_home(env))


def default_configs(env: dict[str, str] | None = None) -> Path:
    explicit = _env_str("ACTANT_CONFIGS", env)
    if explicit is not None:
        return _as_path(_absolute(explicit))
    base = _env_str("XDG_CONFIG_HOME", env) or os.path.join(os.path.expanduser("~"), ".config")
    return _as_path(_absolute(os.path.join(base, "actant")))


def socket_path(
    socket: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """The one socket-path function, used by daemon and client alike (the daemon through :func:`resolve_socket`).

    ``--socket`` wins, then ACTANT_SOCKET, then ``$XDG_RUNTIME_DIR/actant/actantd.sock``, else
    ``{home}/actantd.sock`` where home is ``--home`` or the default home. Always absolute.
    """
    if socket:
        return _absolute(os.path.expanduser(os.fspath(socket)))
    explicit = _env_str("ACTANT_SOCKET", env)
    if explicit is not None:
        return _absolute(explicit)
    runtime = _env_str("XDG_RUNTIME_DIR", env)
    if runtime is not None:
        return _absolute(os.path.join(runtime, "actant", "actantd.sock"))
    base = os.path.expanduser(os.fspath(home)) if home else _home(env)
    return _absolute(os.path.join(base, "actantd.sock"))


def resolve_socket(
    socket: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> Path:
    """:func:`socket_path` as a ``Path``."""
    return _as_path(socket_path(socket, home, env))


class Layout(NamedTuple):
    """Every path under a home, in one place, so no module builds one by hand (immutable, like the tuple it is)."""

    home: Path
    configs: Path
    socket: Path

    @property
    def instances(self) -> Path:
        return self.home / "instances"

    @property
    def corrupted(self) -> Path:
        return self.instances / CORRUPTED_DIR

    @property
    def staging(self) -> Path:
        return self.instances / STAGING_DIR

    @property
    def trash(self) -> Path:
        return self.instances / TRASH_DIR

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def journal(self) -> Path:
        return self.home / "journal.sqlite"

    @property
    def lock(self) -> Path:
        return self.home / "actantd.lock"

    def instance_dir(self, name: str) -> Path:
        return self.instances / name

    def log_dir(self, name: str) -> Path:
        return self.logs / name

    def log_file(self, name: str, stream: str) -> Path:
        """The one place a log path is built: ``logs/{name}/{stream}.log``, ``stream`` one of LOG_STREAMS."""
        return self.logs / name / f"{stream}.log"


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None
