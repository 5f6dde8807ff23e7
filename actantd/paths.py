"""Default locations, shared by daemon and client.

Stdlib only: ``actantctl`` imports this module so that both sides compute the socket path with the same
function and never need a discovery file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$")
"""Instance names: no separators, no leading dot, so a name is always one safe path component."""

INSTANCE_FILE = ".actant.json"
CORRUPTED_DIR = ".corrupted"
STAGING_DIR = ".staging"
TRASH_DIR = ".trash"
LOG_STREAMS = ("stdout", "stderr")
"""The streams an agent's output is captured in, one file each under ``logs/{name}/``."""


def _env_path(var: str, env: dict[str, str] | None = None) -> Path | None:
    value = (env if env is not None else os.environ).get(var)
    return Path(value).expanduser() if value else None


def default_home(env: dict[str, str] | None = None) -> Path:
    explicit = _env_path("ACTANT_HOME", env)
    if explicit is not None:
        return explicit.absolute()
    base = _env_path("XDG_STATE_HOME", env) or Path.home() / ".local" / "state"
    return (base / "actant").absolute()


def default_configs(env: dict[str, str] | None = None) -> Path:
    explicit = _env_path("ACTANT_CONFIGS", env)
    if explicit is not None:
        return explicit.absolute()
    base = _env_path("XDG_CONFIG_HOME", env) or Path.home() / ".config"
    return (base / "actant").absolute()


def resolve_socket(
    socket: str | Path | None = None, home: str | Path | None = None, env: dict[str, str] | None = None
) -> Path:
    """The one socket-path function, used by daemon and client alike.

    ``--socket`` wins, then ACTANT_SOCKET, then ``$XDG_RUNTIME_DIR/actant/actantd.sock``, else
    ``{home}/actantd.sock`` where home is ``--home`` or the default home. Always absolute.
    """
    if socket:
        return Path(socket).expanduser().absolute()
    explicit = _env_path("ACTANT_SOCKET", env)
    if explicit is not None:
        return explicit.absolute()
    runtime = _env_path("XDG_RUNTIME_DIR", env)
    if runtime is not None:
        return (runtime / "actant" / "actantd.sock").absolute()
    base = Path(home).expanduser() if home else default_home(env)
    return (base / "actantd.sock").absolute()


@dataclass(frozen=True, slots=True)
class Layout:
    """Every path under a home, in one place, so no module builds one by hand."""

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
